"""The ASGI application: the GraphQL HTTP and WebSocket view, request ids, the body limit,
the playground."""
