"""The domain model: aggregates and their rules. Pure Python; imports only the event contract."""
