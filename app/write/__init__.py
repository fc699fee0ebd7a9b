"""The write side: domain model, command bus and handlers, unit of work, outbox."""
