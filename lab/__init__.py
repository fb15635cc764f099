"""Throw-away local servers (Consul dev agent, BIND) for the demo, tests and benchmarks."""
