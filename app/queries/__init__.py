"""The read side's GraphQL: types and resolvers that read only projected read tables."""
