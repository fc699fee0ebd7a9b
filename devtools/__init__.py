"""What tests, scripts and benchmarks share: stores, ports, servers and `shop` processes,
GraphQL clients over HTTP and WebSocket, the read-model check, store snapshots and faults.

Imported from a checkout (the repository root on the path); the app never imports it.
"""
