"""Shared fixtures: a real Consul server, a real BIND, and two sites driving agent processes.

Every lab Consul of the suite serves its HTTP API through a recording proxy (lab/apirecord.py):
after each test, every request consulha sent (agents, CLI, the tests through its adapter) must
be in the reviewed list docs/consul-api.yaml, or the test fails naming what is new."""

from __future__ import annotations

import pytest

from lab import apirecord, apisurface
from lab.consul import ConsulDev
from lab.pair import SitePair
from tests.conftest_named import *  # noqa: F401,F403  (named, make_dns_config)

RECORDING = apirecord.enable()
SURFACE = apisurface.load()


@pytest.fixture(autouse=True)
def consul_api_surface():
    """Autouse, so it is set up first and torn down last: the agents' requests while the other
    fixtures stop them count too."""
    yield
    problems = apisurface.violations(SURFACE, RECORDING.drain())
    if problems:
        pytest.fail("Consul API requests not in docs/consul-api.yaml (review them, then add them "
                    "there and run python -m lab.apisurface):\n  " + "\n  ".join(problems),
                    pytrace=False)


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
