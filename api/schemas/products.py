from __future__ import annotations

import uuid
from datetime import datetime

from models.product_terms import ProductTerms


class ProductOut(ProductTerms):
    """The product's terms, with its version."""

    id: uuid.UUID
    version: int
    is_current: bool
    created_at: datetime
