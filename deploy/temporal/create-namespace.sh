#!/bin/sh
# The namespace and the custom search attributes of loan workflows (see models/search_attributes.py).
set -eu
temporal operator namespace describe --namespace default >/dev/null 2>&1 \
  || temporal operator namespace create --namespace default --retention 3650d
for attr in LoanStatus RiskGrade BorrowerId Product; do
  temporal operator search-attribute create --namespace default --name "$attr" --type Keyword || true
done
