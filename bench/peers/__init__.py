"""Peers consulha is measured against (bench tooling, not product): the ZooKeeper design it replaces."""
