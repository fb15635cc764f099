"""The runtime: observe Consul, decide with consulha.core, act on Consul and DNS; the loop of one
group, the host of many groups, and the operator's operations."""
