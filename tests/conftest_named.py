"""Pytest fixtures for a real, throw-away BIND primary on loopback.

Exports:
- `named`: a started NamedServer (zone example.test., managed record
  app.example.test.), stopped after the test. Besides the granted key it
  knows `NO_GRANT_KEY`, a key the update-policy grants nothing.
- `make_dns_config`: a factory `(**changes) -> DnsConfig` for that server.
- `dns_config_for(named_server, **changes)`: the same, as a plain function.
"""

from __future__ import annotations

import dataclasses

import pytest

from consulha.config import DnsConfig, TsigConfig
from lab.named import NamedServer, random_secret

__all__ = ["named", "make_dns_config", "dns_config_for", "NO_GRANT_KEY"]

NO_GRANT_KEY = "no-grant-key"


def dns_config_for(named_server: NamedServer, /, **changes) -> DnsConfig:
    """A DnsConfig that publishes 192.0.2.1 for the server's first record,
    signed with its key and verified against the server itself."""
    cfg = DnsConfig(
        zone=named_server.zone,
        record=named_server.records[0],
        type="A",
        value="192.0.2.1",
        server=named_server.address,
        verify=(named_server.address,),
        ttl=30,
        tsig=TsigConfig(name=named_server.key_name, secret=named_server.secret),
        timeout=2.0,
    )
    return dataclasses.replace(cfg, **changes)


@pytest.fixture
def named(tmp_path):
    server = NamedServer(tmp_path / "named", extra_keys={NO_GRANT_KEY: random_secret()})
    with server:
        yield server


@pytest.fixture
def make_dns_config(named):
    return lambda **changes: dns_config_for(named, **changes)
