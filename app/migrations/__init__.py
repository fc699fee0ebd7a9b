"""Two Alembic histories, `write/` and `read/`, with one shared `env.py`."""
