"""Projections: one module per read model, its tables, and the registry of them all."""
