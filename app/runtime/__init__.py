"""The composition root (bootstrap) and the supervised background loops (worker)."""
