"""cqrs-shop: a CQRS GraphQL API for an online shop."""

__version__ = "0.1.0"
