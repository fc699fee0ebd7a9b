"""Settings and the log format: what every layer may read."""
