"""GraphQL subscriptions: live updates as projections catch up."""
