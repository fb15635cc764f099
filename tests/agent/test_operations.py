"""Operator control against real agents, Consul and BIND: handover, takeover, maintenance,
failback and history."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime

import pytest

from lab.pair import SITE_VALUES, wait_until

pytestmark = pytest.mark.integration


def consulha(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consulha.cli", *args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def a_leads_b_stands_by(lab, **sections):
    config_a = lab.config("a", **sections)
    lab.start("a", config_a)
    first = lab.wait_leader("a")
    lab.start("b", lab.config("b", **sections))
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    return config_a, first


def wait_back_in_election(lab, site: str) -> None:
    """After `site` stepped down on a failing service that is back: out of the election (its own
    probe or Consul's check failing), then in again with a new session, whichever way it went."""
    def back() -> bool:
        of_site = [t for t in lab.transitions() if t["site"] == site]
        stepped = [i for i, t in enumerate(of_site) if t["old"] == "leader"]
        return bool(stepped) and stepped[-1] < len(of_site) - 1 and (
            of_site[-1]["old"], of_site[-1]["role"]) == ("ineligible", "standby")
    wait_until(back, 20, what=f"{site} a candidate again", logs=lab.logs)


def a_fails_once(lab, **sections):
    """a leads, its service fails, b takes over, a's service comes back: a is a standby again
    (and, with flap damping, damped)."""
    config_a, first = a_leads_b_stands_by(lab, **sections)
    lab.toy("a").fail()
    lab.wait_leader("b")
    lab.toy("a").recover()

    wait_back_in_election(lab, "a")
    lab.wait_candidates("a", "b")
    return config_a, first


class DnsRecorder:
    """Samples the authoritative answer every 10 ms in a thread (bounded by `stop()`)."""

    def __init__(self, lab):
        self.lab = lab
        self.answers: list[tuple[str, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.01):
            answer = self.lab.dns_answer()
            if not self.answers or self.answers[-1] != answer:
                self.answers.append(answer)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def test_handover_to_a_named_site_moves_dns_once_and_records_history(lab):
    config, first = a_leads_b_stands_by(lab)
    serial = lab.soa_serial()
    with DnsRecorder(lab) as recorder:
        done = consulha("handover", "-c", config, "--to", "b", "--json")
        time.sleep(0.3)
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs()
    result = json.loads(done.stdout)
    assert result["ok"] and result["data"]["to"] == "b"
    assert result["data"]["epoch"] > first["epoch"]
    assert lab.leader()["site"] == "b"
    assert recorder.answers == [(SITE_VALUES["a"],), (SITE_VALUES["b"],)]
    assert lab.soa_serial() == serial + 1  # exactly one DNS update: straight to the target
    history = json.loads(consulha("history", "-c", config, "--json").stdout)
    last = history[-1]
    assert (last["from"], last["to"], last["epoch"]) == ("a", "b", result["data"]["epoch"])
    assert last["cause"].startswith("handover by ")
    assert lab.store.get("consulha/app/control/handover")[1] is None  # request completed


def test_refused_handovers_change_nothing(lab, tmp_path):
    config = lab.config("a")
    done = consulha("handover", "-c", config, "--to", "b")
    assert done.returncode == 1 and "no leader" in done.stdout
    lab.start("a", config)
    first = lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    serial = lab.soa_serial()
    done = consulha("handover", "-c", config, "--to", "zz")
    assert done.returncode == 1 and "not a live candidate" in done.stdout
    done = consulha("handover", "-c", config, "--to", "a")
    assert done.returncode == 1 and "already the leader" in done.stdout
    lab.toy("b").fail()
    wait_until(lambda: lab.candidates() == ["a"], 15, what="b to drop out")
    done = consulha("handover", "-c", config, "--to", "b")
    assert done.returncode == 1 and "not a live candidate" in done.stdout
    done = consulha("handover", "-c", config)
    assert done.returncode == 1 and "no healthy candidate" in done.stdout
    assert lab.leader()["epoch"] == first["epoch"]
    assert lab.soa_serial() == serial
    assert lab.store.get("consulha/app/control/handover")[1] is None


def test_two_concurrent_handover_requests_one_wins(lab):
    config, first = a_leads_b_stands_by(lab)
    command = [sys.executable, "-m", "consulha.cli", "handover", "-c", config, "--to", "b"]
    runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    results = [(run.wait(60), run.stdout.read()) for run in runs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    refused = [out for code, out in results if code == 1][0]
    assert "another handover" in refused or "no healthy candidate" in refused or \
        "already the leader" in refused, refused
    assert lab.leader()["site"] == "b"


def test_takeover_of_a_frozen_leader(lab):
    config, first = a_leads_b_stands_by(lab)
    lab.agents["a"].send(signal.SIGSTOP)
    done = consulha("takeover", "-c", config, "--to", "b", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr + lab.logs()
    result = json.loads(done.stdout)
    assert result["data"]["destroyed_session"] == first["session"]
    lab.wait_dns("b")
    serial = lab.soa_serial()
    fence = lab.named_fence()
    lab.agents["a"].send(signal.SIGCONT)
    wait_until(lambda: any(t["site"] == "a" and t["old"] == "leader" for t in lab.transitions()),
               10, what="the resumed agent to demote")
    time.sleep(1.0)
    assert lab.dns_answer() == (SITE_VALUES["b"],)
    assert lab.soa_serial() == serial, "the resumed stale leader wrote DNS"
    assert lab.named_fence() == fence
    assert lab.leader()["site"] == "b"
    shown = consulha("history", "-c", config, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr + lab.logs()
    history = json.loads(shown.stdout)
    assert [h for h in history if h["to"]][-1]["cause"].startswith("takeover by ")
    # The frozen leader's lock moved on while it was frozen: a failure of its own (damping).
    assert history[-1]["kind"] == "failure" and history[-1]["cause"].startswith("site a lost leadership at epoch")


def test_takeover_needs_confirmation(lab):
    config, first = a_leads_b_stands_by(lab)
    done = consulha("takeover", "-c", config, "--to", "b")
    assert done.returncode == 1
    assert lab.leader()["epoch"] == first["epoch"]


def test_maintenance_on_the_leader_hands_over_and_blocks_reelection(lab):
    config, first = a_leads_b_stands_by(lab)
    done = consulha("maintenance", "on", "-c", config, "--reason", "kernel upgrade")
    assert done.returncode == 0, done.stdout + done.stderr
    lab.wait_leader("b")
    lab.wait_dns("b")
    wait_until(lambda: lab.candidates() == ["b"], 10, what="a to withdraw")
    checks = lab.store.local_checks()
    assert checks["_service_maintenance:app-a-api"]["Notes"].endswith("kernel upgrade")
    # b fails now: a must stay out while in maintenance, so nobody leads.
    lab.toy("b").fail()
    wait_until(lambda: lab.leader() is None, 15, what="b to lose the lock")
    time.sleep(2)
    assert lab.leader() is None and lab.candidates() == []
    status = json.loads(consulha("status", "-c", config, "--json").stdout)
    assert status["maintenance"]["a"]["reason"] == "kernel upgrade"
    done = consulha("maintenance", "off", "-c", config)
    assert done.returncode == 0
    lab.wait_leader("a")
    lab.wait_dns("a")
    assert "_service_maintenance:app-a-api" not in lab.store.local_checks()


def test_maintenance_on_a_lone_leader_is_refused_without_force(lab):
    config = lab.config("a")
    lab.start("a", config)
    first = lab.wait_leader("a")
    done = consulha("maintenance", "on", "-c", config)
    assert done.returncode == 1 and "--force" in done.stdout
    assert lab.leader()["epoch"] == first["epoch"]
    assert lab.store.get("consulha/app/control/maintenance/a")[1] is None


def test_failback_after_the_delay_and_not_before(lab):
    # A hold-down shorter than the delay: this is about the delay (the next test: both).
    sections = {"election": {"preferred_site": "a", "failback_delay": "4s",
                             "damping": {"half_life": "2s", "max_hold_down": "2s"}}}
    config, first = a_fails_once(lab, **sections)
    back_at = time.monotonic()
    time.sleep(2.5)
    assert lab.leader()["site"] == "b", "failback came before the delay"
    lab.wait_leader("a", timeout=15)
    took = time.monotonic() - back_at
    assert took >= 4.0, took
    lab.wait_dns("a")
    history = json.loads(consulha("history", "-c", config, "--json").stdout)
    assert history[-1]["cause"].startswith("failback by ")
    assert any(h["cause"] == "check failed: api (own probe)" for h in history), history


def test_failback_waits_for_the_hold_down_too(lab):
    sections = {"election": {"preferred_site": "a", "failback_delay": "2s",
                             "damping": {"half_life": "8s", "max_hold_down": "8s"}}}
    config, first = a_fails_once(lab, **sections)
    record = lab.store.get("consulha/app/control/failures/a")[1].json()
    time.sleep(4)   # the failback delay is over, the hold-down is not
    assert lab.leader()["site"] == "b", "failback came before the hold-down ended"
    lab.wait_leader("a", timeout=20)
    history = json.loads(consulha("history", "-c", config, "--json").stdout)
    asked = [h for h in history if h["to"] == "a"][-1]
    assert asked["cause"].startswith("failback by ")
    won_at = datetime.fromisoformat(asked["time"]).timestamp()
    assert won_at >= record["damped_until"], (won_at, record)


def test_status_watch_redraws_on_change(lab):
    config, first = a_leads_b_stands_by(lab)
    watcher = subprocess.Popen([sys.executable, "-m", "consulha.cli", "status", "-c", config,
                                "--watch", "--json"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        lab.toy("a").fail()
        lab.wait_leader("b")
        lab.wait_dns("b")
        time.sleep(1)
    finally:
        watcher.send_signal(signal.SIGINT)
        output, _ = watcher.communicate(timeout=10)
    frames = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    leaders = [f["leader"]["site"] for f in frames]
    assert "a" in leaders and leaders[-1] == "b", leaders
