"""`consulha validate --connect` against a real Consul and BIND: the Consul versions of the local
agent and the servers, the round trips it measured, and a warning naming the setting when a slow
link to Consul leaves too little margin (the lab Consul's proxy holds every request 150 ms)."""

from __future__ import annotations

import pytest

from lab.pair import wait_until
from tests.cli.test_cli import consulha

pytestmark = pytest.mark.integration


def test_versions_and_round_trips_are_named_and_the_agent_logs_the_versions(lab):
    done = consulha("validate", "-c", lab.config("a"), "--connect")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "consul version: ok local agent: Consul 1.8.7 (tested)" in out
    assert f"consul version: ok server {lab.consul.node_name}: Consul 1.8.7 (tested)" in out
    assert "round trip: consul consistent reads (local agent -> leader -> quorum): median" in out
    assert "round trip: dns primary" in out and "round trip: check target of api" in out
    assert "warning:" not in out, out
    agent = lab.start("a")
    wait_until(lambda: "consul version: local agent: Consul 1.8.7 (tested)" in agent.log_text(), 15,
               what="the versions in the agent's log", logs=lab.logs)
    assert f"consul version: server {lab.consul.node_name}: Consul 1.8.7 (tested)" in agent.log_text()


def test_a_slow_link_to_consul_names_lock_delay_and_what_to_set(lab):
    lab.consul.delay_requests(0.150)
    done = consulha("validate", "-c", lab.config("a"), "--connect")
    assert done.returncode == 0, done.stdout + done.stderr  # a warning, not a failure
    warnings = [line for line in done.stdout.splitlines() if "warning:" in line]
    assert len(warnings) == 1, done.stdout
    # lock_delay 1 s: lease 0.8 s, confirmed every 0.2 s: a read may take 0.1 s, it took >= 150 ms
    assert "warning: session.lock_delay 1s: the leader's lease is 800 ms, confirmed every 200 ms" in warnings[0]
    assert "set lock_delay to at least" in warnings[0]
