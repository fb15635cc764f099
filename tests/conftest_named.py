"""Pytest fixtures for a real, throw-away BIND primary (and secondary) on loopback.

Exports:
- `named`: a started NamedServer (zone example.test., managed record
  app.example.test.), stopped after the test. Besides the granted key it
  knows `NO_GRANT_KEY`, a key the update-policy grants nothing.
- `make_dns_config`: a factory `(**changes) -> DnsConfig` for that server.
- `dns_config_for(server, **changes)`: the same, as a plain function.
- `primary_and_secondary`: a primary with zones example.test. and other.test. (the records of
  lab.records) that NOTIFYs a started secondary.
"""

from __future__ import annotations

import dataclasses

import pytest

from consulha.config import DnsConfig, RecordConfig, TsigConfig
from lab.named import NamedSecondary, NamedServer, random_secret
from lab.ports import free_port
from lab.records import NAMES

__all__ = ["named", "make_dns_config", "dns_config_for", "NO_GRANT_KEY", "primary_and_secondary"]

NO_GRANT_KEY = "no-grant-key"


def dns_config_for(server, /, **changes) -> DnsConfig:
    """A DnsConfig that publishes 192.0.2.1 for the server's first record, signed with its
    key and verified against the server itself. `record`, `type` and `value` change that one
    record; any other change is a DnsConfig field (e.g. `records`)."""
    record = RecordConfig(name=changes.pop("record", server.records[0]), type=changes.pop("type", "A"),
                          value=changes.pop("value", "192.0.2.1"), zone=server.zone)
    cfg = DnsConfig(
        zone=server.zone,
        records=(record,),
        server=server.address,
        verify=(server.address,),
        ttl=30,
        tsig=TsigConfig(name=server.key_name, secret=server.secret),
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


@pytest.fixture
def primary_and_secondary(tmp_path):
    secondary_port = free_port()
    primary = NamedServer(tmp_path / "primary", records=NAMES, extra_zones=("other.test.",),
                          notify_ports=(secondary_port,))
    with primary, NamedSecondary(tmp_path / "secondary", primary, port=secondary_port) as secondary:
        yield primary, secondary
