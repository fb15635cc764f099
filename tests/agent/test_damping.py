"""Flap damping against real agents, Consul and BIND: the failure record, what status and
history show, a restart, the only candidate, explicit handover and takeover, cleanup."""

from __future__ import annotations

import json

import pytest

from lab.pair import wait_until
from tests.agent.test_operations import a_fails_once, consulha, wait_back_in_election

pytestmark = pytest.mark.integration


def status(config: str) -> dict:
    return json.loads(consulha("status", "-c", config, "--json").stdout)


def history(config: str) -> list[dict]:
    return json.loads(consulha("history", "-c", config, "--json").stdout)


def test_a_lost_leadership_is_recorded_shown_survives_a_restart_and_never_bans(lab):
    config, first = a_fails_once(lab)
    failures = status(config)["failures"]
    assert list(failures) == ["a"], failures
    record = failures["a"]
    assert record["damped"] and record["total"] == 1 and 30 < record["hold_down_s"] <= 60, record
    assert record["recent"][0]["epoch"] == first["epoch"]
    assert record["summary"].startswith("damped: 1 failure") and "hold-down" in record["summary"]
    table = consulha("status", "-c", config).stdout   # the sites table's column "failures"
    assert "failures" in table and "damped: 1" in table and "hold-down" in table, table
    events = [entry for entry in history(config) if entry["kind"] == "failure"]
    assert len(events) == 1 and events[0]["cause"].startswith(f"site a lost leadership at epoch {first['epoch']}")
    stored = lab.store.get("consulha/app/control/failures/a")[1].json()   # what the Consul UI shows
    assert stored["site"] == "a" and stored["damped_until_time"], stored

    # A restarted agent reads its record from Consul ...
    assert lab.agents["a"].stop() == 0
    lab.start("a")
    lab.wait_candidates("a", "b")
    assert status(config)["failures"]["a"]["damped"]
    # ... and, once it is the only candidate, leads although damped, and says so.
    assert lab.agents["b"].stop() == 0
    second = lab.wait_leader("a")
    lab.wait_dns("a")
    win = [entry for entry in history(config) if entry["to"] == "a"][-1]
    assert win["epoch"] == second["epoch"] and "leading although damped: 1 failure" in win["cause"], win


def test_handover_and_takeover_still_move_leadership_to_a_damped_site_when_asked(lab):
    config, _ = a_fails_once(lab)
    done = consulha("handover", "-c", config, "--to", "a", "--json")
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs()
    assert lab.leader()["site"] == "a"
    lab.toy("a").fail()
    lab.wait_leader("b")
    lab.toy("a").recover()
    wait_back_in_election(lab, "a")
    lab.wait_candidates("a", "b")
    assert status(config)["failures"]["a"]["total"] == 2
    done = consulha("takeover", "-c", config, "--site", "a", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs()
    assert lab.leader()["site"] == "a"
    # The takeover destroyed b's session: no failure of b's own.
    assert "b" not in status(config)["failures"]


def test_cleanup_clears_the_failures_and_says_so(lab):
    config, _ = a_fails_once(lab)
    dry = consulha("cleanup", "-c", config, "--site", "a", "--dry-run", "--json")
    assert dry.returncode == 0 and json.loads(dry.stdout)["data"]["would_clear"] == ["a"], dry.stdout
    assert status(config)["failures"]["a"]["damped"]
    done = consulha("cleanup", "-c", config)
    assert done.returncode == 0 and "cleared the failures of site a: damped: 1 failure" in done.stdout, done.stdout
    wait_until(lambda: status(config)["failures"] == {}, 5, what="no failures left")
    assert history(config)[-1]["kind"] == "cleanup" and "cleared by" in history(config)[-1]["cause"]
    again = consulha("cleanup", "-c", config, "--site", "a")
    assert again.returncode == 0 and "nothing to clear" in again.stdout
    # Undamped again: with b gone a takes the lock on equal terms (no damped note in the history).
    assert lab.agents["b"].stop() == 0
    lab.wait_leader("a")
    assert "damped" not in [entry for entry in history(config) if entry["to"] == "a"][-1]["cause"]
