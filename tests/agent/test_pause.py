"""What the agents do while the group is paused (real agents, Consul and BIND): a failing leader
check moves nothing, planned handover still works, a dead leader is not replaced, and after
resume the standby takes over within the usual bound."""

from __future__ import annotations

import json
import signal
import time

import pytest

from lab.pair import SITE_VALUES, wait_until
from lab.ports import free_port
from tests.agent.test_operations import consulha
from tests.ops.test_metrics_failover import Scrape

pytestmark = pytest.mark.integration

# Longer than a failover takes without the pause: the check goes critical within its 1 s
# interval, Consul invalidates the session at once, lock_delay is 1 s, and the standby retries
# every 100 ms. A correct agent never moves, so waiting longer cannot make this test flaky.
NOTHING_MOVES_FOR = 6.0


def paused_pair(lab) -> tuple[str, dict]:
    """a leads, b stands by, both agents have seen the pause (their consulha_paused is 1)."""
    ports = {site: free_port() for site in ("a", "b")}
    configs = {site: lab.config(site, metrics={"listen": f"127.0.0.1:{port}"})
               for site, port in ports.items()}
    lab.start("a", configs["a"])
    first = lab.wait_leader("a")
    lab.start("b", configs["b"])
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    done = consulha("pause", "-c", configs["a"], "--reason", "risky work", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    for port in ports.values():
        wait_until(lambda: Scrape(port).value("consulha_paused") == 1, 15,
                   what="the agents to see the pause", logs=lab.logs)
    return configs["a"], first


def api_check_status(lab, site: str) -> str:
    checks = lab.store.local_checks()
    return checks[f"service:app-{site}-api"]["Status"]


def test_a_failing_leader_check_moves_nothing_while_paused_and_resume_fails_over(lab):
    config, first = paused_pair(lab)
    serial = lab.soa_serial()
    lab.toy("a").fail()
    wait_until(lambda: api_check_status(lab, "a") == "critical", 15, what="a's check critical")
    time.sleep(NOTHING_MOVES_FOR)
    leader = lab.leader()
    assert leader is not None and (leader["site"], leader["epoch"]) == ("a", first["epoch"]), \
        lab.logs()
    assert lab.dns_answer() == (SITE_VALUES["a"],)
    assert lab.soa_serial() == serial

    done = consulha("resume", "-c", config)
    assert done.returncode == 0, done.stdout + done.stderr
    second = lab.wait_leader("b", timeout=20)
    lab.wait_dns("b")
    assert second["epoch"] > first["epoch"]
    history = json.loads(consulha("history", "-c", config, "--json").stdout)
    won = [entry for entry in history if entry["to"]][-1]
    assert won["to"] == "b" and won["kind"] == "check_failed", history


def test_planned_handover_still_works_while_paused(lab):
    config, first = paused_pair(lab)
    done = consulha("handover", "-c", config, "--to", "b", "--json")
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs()
    assert lab.leader()["site"] == "b"
    lab.wait_dns("b")
    assert lab.store.get("consulha/app/control/pause")[1] is not None  # still paused


def test_a_dead_leader_is_not_replaced_until_resume(lab):
    config, first = paused_pair(lab)
    lab.agents["a"].send(signal.SIGKILL)
    # The heartbeat check lapses (3 s), Consul invalidates a's session and frees the lock.
    wait_until(lambda: lab.leader() is None, 20, what="a's session to expire", logs=lab.logs)
    time.sleep(NOTHING_MOVES_FOR)
    assert lab.leader() is None, lab.logs()
    assert lab.dns_answer() == (SITE_VALUES["a"],)
    done = consulha("resume", "-c", config)
    assert done.returncode == 0, done.stdout + done.stderr
    lab.wait_leader("b", timeout=20)
    lab.wait_dns("b")
