"""What the GraphQL surface shares: the typed context, scalars, ids, error masking, role
rules."""
