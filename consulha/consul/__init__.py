"""Everything that talks to Consul. `consulha.consul.store` is the one module that imports the
Consul client library (python-consul2 today, py-consul later); the others use the store."""
