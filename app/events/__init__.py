"""The event contract: versioned event types and their one JSON serialization."""

from app.events.serialization import RecordedEvent, UnknownEventError, decode_json, encode
from app.events.types import (
    EVENT_TYPES,
    CustomerRegistered,
    Event,
    OrderCancelled,
    OrderPaid,
    OrderPlaced,
    OrderShipped,
    PlacedLine,
    ProductCreated,
    ProductPriceChanged,
    ProductRestocked,
)

__all__ = [
    "EVENT_TYPES",
    "CustomerRegistered",
    "Event",
    "OrderCancelled",
    "OrderPaid",
    "OrderPlaced",
    "OrderShipped",
    "PlacedLine",
    "ProductCreated",
    "ProductPriceChanged",
    "ProductRestocked",
    "RecordedEvent",
    "UnknownEventError",
    "decode_json",
    "encode",
]
