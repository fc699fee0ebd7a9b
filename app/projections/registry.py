"""Every projection the read side keeps, one instance each, in a fixed order."""

from __future__ import annotations

from app.projections.base import Projection
from app.projections.customer_summary import CustomerSummary
from app.projections.daily_sales import DailySales
from app.projections.order_history import OrderHistory
from app.projections.order_view import OrderView
from app.projections.product_catalogue import ProductCatalogue

PROJECTIONS: tuple[Projection, ...] = (
    OrderView(),
    CustomerSummary(),
    ProductCatalogue(),
    DailySales(),
    OrderHistory(),
)
