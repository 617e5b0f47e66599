"""Custom search attributes of loan workflows (no PII: ids, codes and statuses only)."""

from temporalio.common import SearchAttributeKey

LOAN_STATUS = SearchAttributeKey.for_keyword("LoanStatus")
RISK_GRADE = SearchAttributeKey.for_keyword("RiskGrade")
BORROWER_ID = SearchAttributeKey.for_keyword("BorrowerId")
PRODUCT = SearchAttributeKey.for_keyword("Product")

ALL = (LOAN_STATUS, RISK_GRADE, BORROWER_ID, PRODUCT)
