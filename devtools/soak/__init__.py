"""The soak: the service as `shop` processes under mixed load with faults for a set time, then
an audit of everything the stores hold (run by scripts/soak.py, and briefly by the tests)."""
