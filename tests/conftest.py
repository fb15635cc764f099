"""Shared fixtures: a real Consul server, a real BIND, and two sites driving agent processes."""

from __future__ import annotations

import pytest

from lab.consul import ConsulDev
from lab.pair import SitePair
from tests.conftest_named import *  # noqa: F401,F403  (named, make_dns_config)


@pytest.fixture
def consul_server(tmp_path):
    server = ConsulDev(tmp_path / "consul")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def lab(tmp_path, consul_server, named):
    pair = SitePair(tmp_path, consul_server, named)
    yield pair
    pair.close()
