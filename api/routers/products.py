"""Loan products: anyone reads the current terms; operators create and change them."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select

from api.deps import OperatorOrCompliance, OperatorUser, SessionDep
from api.schemas.products import ProductOut
from models.product_terms import ProductTerms
from models.products import LoanProduct
from products.service import change_product, create_product, current_product, product_versions, terms_of

router = APIRouter(tags=["products"])


def product_out(product: LoanProduct) -> ProductOut:
    return ProductOut(
        **terms_of(product).model_dump(),
        id=product.id,
        version=product.version,
        is_current=product.is_current,
        created_at=product.created_at,
    )


@router.get("/v1/products", response_model=list[ProductOut])
def list_products(session: SessionDep) -> list[ProductOut]:
    rows = session.scalars(select(LoanProduct).where(LoanProduct.is_current).order_by(LoanProduct.code))
    return [product_out(p) for p in rows]


@router.get("/v1/products/{code}", response_model=ProductOut)
def get_product(code: str, session: SessionDep) -> ProductOut:
    return product_out(current_product(session, code))


@router.get("/v1/operator/products/{code}/versions", response_model=list[ProductOut], tags=["operator"])
def get_product_versions(code: str, user: OperatorOrCompliance, session: SessionDep) -> list[ProductOut]:
    versions = product_versions(session, code)
    if not versions:
        current_product(session, code)  # raises the 404
    return [product_out(p) for p in versions]


@router.post("/v1/operator/products", status_code=status.HTTP_201_CREATED, response_model=ProductOut, tags=["operator"])
def post_product(body: ProductTerms, operator: OperatorUser, session: SessionDep) -> ProductOut:
    product = create_product(session, body, operator.id)
    session.refresh(product)
    return product_out(product)


@router.put("/v1/operator/products/{code}", response_model=ProductOut, tags=["operator"])
def put_product(
    code: str, body: ProductTerms, operator: OperatorUser, session: SessionDep, response: Response
) -> ProductOut:
    """Writes a new version (loans keep theirs). The same terms again make no new version."""
    before = current_product(session, code).version
    product = change_product(session, code, body, operator.id)
    session.refresh(product)
    response.headers["X-Product-Version-Created"] = "true" if product.version != before else "false"
    return product_out(product)
