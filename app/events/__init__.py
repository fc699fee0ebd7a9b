"""The event contract: versioned event types and their one JSON serialization."""
