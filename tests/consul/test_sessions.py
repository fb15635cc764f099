"""Sessions as Consul 1.8 makes them: tied to exactly the checks we list, with the exact
lock-delay. Against a real Consul."""

from __future__ import annotations

import pytest

from consulha.config import ConsulConfig
from consulha.consul.store import CheckNotPassing, ConsulStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(consul_server):
    store = ConsulStore(ConsulConfig(address=consul_server.address))
    store.register_check("heartbeat", "heartbeat", {"TTL": "30s", "Status": "passing"}, "test")
    return store


def session_info(store: ConsulStore, session: str) -> dict:
    return store._fast.session.info(session)[1]


def test_a_session_is_tied_to_exactly_the_listed_checks(store):
    """No serfHealth unless listed: `session.node_checks: []` must really drop it."""
    info = session_info(store, store.create_session("s", ["heartbeat"], 10, 1))
    assert info["NodeChecks"] == ["heartbeat"]
    with_serf = session_info(store, store.create_session("s", ["serfHealth", "heartbeat"], 10, 1))
    assert with_serf["NodeChecks"] == ["serfHealth", "heartbeat"]


def test_a_sub_second_lock_delay_is_kept(store):
    info = session_info(store, store.create_session("s", ["heartbeat"], 10, 0.5))
    assert info["LockDelay"] == 500_000_000  # ns


def test_a_failing_listed_check_invalidates_the_session_and_refuses_a_new_one(store):
    session = store.create_session("s", ["heartbeat"], 10, 1)
    store.update_ttl("heartbeat", "critical", "stalled")
    assert not store.renew_session(session)
    with pytest.raises(CheckNotPassing, match="heartbeat"):
        store.create_session("s", ["heartbeat"], 10, 1)
