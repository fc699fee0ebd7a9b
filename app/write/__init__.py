"""The write side: domain model, command bus, executor and handlers, unit of work, outbox."""
