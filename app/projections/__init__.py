"""Projections: one module per read model, and the runner that feeds them events."""
