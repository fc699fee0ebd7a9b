"""Operator scripts, run from a checkout: `python scripts/<name>.py --help`."""
