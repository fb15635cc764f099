"""consulha: one active site of an active/standby pair, chosen by a health-gated Consul lock."""

__version__ = "0.1.0"
