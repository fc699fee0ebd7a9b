"""What tests share that scripts and benchmarks do not; the rest is in devtools."""
