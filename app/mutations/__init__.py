"""GraphQL mutations: inputs and payloads; each resolver builds a command and dispatches it."""
