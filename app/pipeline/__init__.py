"""From the outbox to the read models: the relay, the projection runner and its consumers,
leases, the applier, dead letters, rebuilds, status, metrics, the change feed, catch-up."""
