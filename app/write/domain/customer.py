"""Customer: registered once with a unique, lower-cased email."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from app.events import CustomerRegistered
from app.write.domain import rules
from app.write.domain.aggregate import Aggregate
from app.write.domain.errors import UserError, raise_if_any


class Customer(Aggregate):
    def __init__(
        self, customer_id: UUID, version: int, email: str, name: str, registered_at: datetime
    ) -> None:
        super().__init__(customer_id, version)
        self.email = email
        self.name = name
        self.registered_at = registered_at

    @classmethod
    def register(cls, customer_id: UUID, email: str, name: str, now: datetime) -> Customer:
        """A new customer; the email's uniqueness is the repository's to check."""
        errors: list[UserError] = []
        email = rules.email(email, errors)
        name = rules.name(name, errors)
        raise_if_any(errors)
        customer = cls(customer_id, 0, email, name, now)
        customer.record(CustomerRegistered(customer_id, email, name, now))
        return customer
