"""The heartbeat endpoint, and a real Consul agent probing it: what it answers, and how Consul
turns the check critical when the agent dies, freezes, stalls or gives a group up."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request

import pytest

from consulha.config import ConsulConfig
from consulha.consul.registration import FAILURES_BEFORE_CRITICAL, heartbeat_check
from consulha.consul.store import CheckNotPassing, ConsulStore
from consulha.ops.heartbeat import HeartbeatServer, bind_problem
from lab.pair import wait_until


def fetch(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def server():
    server = HeartbeatServer()
    server.start()
    yield server
    server.stop()


def test_it_answers_each_group_from_its_own_liveness(server):
    alive = {"g1": True, "g2": False}
    server.vouch("g1-heartbeat", lambda: alive["g1"])
    server.vouch("g2-heartbeat", lambda: alive["g2"])
    assert fetch(server.url("g1-heartbeat")) == (200, "consulha agent alive")
    assert fetch(server.url("g2-heartbeat")) == (503, "consulha main loop stalled")
    alive["g1"] = False
    assert fetch(server.url("g1-heartbeat"))[0] == 503
    server.withdraw("g2-heartbeat")
    assert fetch(server.url("g2-heartbeat"))[0] == 404
    assert fetch(server.url("").rstrip("/") + "x")[0] == 404
    # Another process that happens to hold a reused port knows none of our check ids.
    assert fetch(server.url("unknown-heartbeat"))[0] == 404


def test_the_check_probes_three_times_per_heartbeat_ttl_and_needs_three_failures():
    check = heartbeat_check("http://127.0.0.1:1/heartbeat/x", 3.0)
    assert (check["Interval"], check["Timeout"]) == ("1.000s", "1.000s")
    assert check["FailuresBeforeCritical"] == FAILURES_BEFORE_CRITICAL == 3
    assert check["Status"] == "passing"  # registered by a live agent: a session may use it at once


def test_an_ipv6_address_is_bracketed_in_the_url():
    if bind_problem("::1"):
        pytest.skip("no IPv6 loopback here")
    server = HeartbeatServer("::1")
    server.start()
    try:
        server.vouch("h", lambda: True)
        assert server.url("h").startswith("http://[::1]:")
        assert fetch(server.url("h"))[0] == 200
    finally:
        server.stop()


def test_an_address_this_host_does_not_have_is_named():
    assert "cannot listen on 192.0.2.1" in bind_problem("192.0.2.1")
    assert bind_problem("127.0.0.1") is None


# -- against a real Consul agent ----------------------------------------------------------------


def refused_session(store: ConsulStore) -> bool:
    try:
        store.destroy_session(store.create_session("s", ["hb"], 10, 1))
        return False
    except CheckNotPassing:
        return True


def check_of(store: ConsulStore, check_id: str) -> dict:
    return store.local_checks()[check_id]


@pytest.fixture
def probed(consul_server, server):
    """A heartbeat check the real Consul agent probes, and a store to watch it with."""
    store = ConsulStore(ConsulConfig(address=consul_server.address))
    alive = {"value": True}
    server.vouch("hb", lambda: alive["value"])
    store.register_check("hb", "heartbeat", heartbeat_check(server.url("hb"), 1.5), "test")
    wait_until(lambda: "alive" in check_of(store, "hb")["Output"], 10, what="a first probe")
    return store, alive


@pytest.mark.integration
def test_consul_sees_a_stalled_loop_as_critical_and_a_recovered_one_as_passing(probed):
    store, alive = probed
    assert check_of(store, "hb")["Status"] == "passing"
    alive["value"] = False
    wait_until(lambda: check_of(store, "hb")["Status"] == "critical", 10, what="critical")
    assert "503" in check_of(store, "hb")["Output"]
    # The servers hear of it with the local agent's next sync: from then on no session can
    # be tied to the check.
    wait_until(lambda: refused_session(store), 10, what="session creation to be refused")
    alive["value"] = True
    wait_until(lambda: check_of(store, "hb")["Status"] == "passing", 10, what="passing again")


@pytest.mark.integration
def test_a_dead_process_turns_the_check_critical(probed, server):
    store, _ = probed
    server.stop()  # what a killed process looks like: the port refuses connections
    wait_until(lambda: check_of(store, "hb")["Status"] == "critical", 10, what="critical")
    assert "refused" in check_of(store, "hb")["Output"]


@pytest.mark.integration
def test_one_failed_probe_is_not_enough(probed, server):
    """Probes lost to a busy moment must not cost leadership: with three failures needed, two
    503s between passes leave the check passing."""
    store, alive = probed
    answers = iter([False, False])  # the next two probes fail, every later one passes
    server.vouch("hb", lambda: next(answers, True))
    statuses = []
    for _ in range(10):  # > 3 probes of 0.5 s each
        statuses.append(check_of(store, "hb")["Status"])
        time.sleep(0.3)
    assert set(statuses) == {"passing"}, statuses


@pytest.mark.integration
def test_a_frozen_process_times_out(consul_server):
    """A listening socket nobody accepts from: what SIGSTOP looks like to Consul."""
    store = ConsulStore(ConsulConfig(address=consul_server.address))
    frozen = socket.socket()
    frozen.bind(("127.0.0.1", 0))
    frozen.listen(0)
    try:
        url = f"http://127.0.0.1:{frozen.getsockname()[1]}/heartbeat/hb"
        store.register_check("hb", "heartbeat", heartbeat_check(url, 1.5), "test")
        wait_until(lambda: check_of(store, "hb")["Status"] == "critical", 10, what="critical")
        assert "timeout" in check_of(store, "hb")["Output"].lower()
    finally:
        frozen.close()
