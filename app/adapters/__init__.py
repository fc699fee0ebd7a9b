"""Infrastructure adapters: PostgreSQL engines, Redis clients, migrations. No GraphQL here."""
