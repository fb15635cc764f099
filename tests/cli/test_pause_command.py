"""`consulha pause` / `resume`, operator side: the mark in Consul, status, history, the metric,
refusals. (What the agents do while paused: tests/test_pause.py; Consul failing under them:
tests/test_cli_errors.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from consulha.core.control import PauseMark
from consulha.core.records import KvEntry
from lab.pair import wait_until
from lab.ports import free_port
from tests.agent.test_operations import a_leads_b_stands_by
from tests.ops.test_metrics_failover import Scrape

PAUSE_KEY = "consulha/app/control/pause"


def consulha(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consulha.cli", *args], capture_output=True,
                          text=True, timeout=90, stdin=subprocess.DEVNULL)


@pytest.mark.integration
def test_pausing_a_group_without_leader_says_nobody_will_take_over(lab):
    config = lab.config("a")
    done = consulha("pause", "-c", config, "--yes")
    assert done.returncode == 0 and "no leader now" in done.stdout.replace("\n", " ")
    assert consulha("resume", "-c", config).returncode == 0


@pytest.mark.integration
def test_pause_and_resume_show_in_status_history_and_metrics(lab):
    port = free_port()
    config = lab.config("a", metrics={"listen": f"127.0.0.1:{port}"})
    lab.start("a", config)
    first = lab.wait_leader("a")
    done = consulha("pause", "-c", config, "--reason", "db migration")
    assert done.returncode == 1 and "aborted" in done.stderr.lower()  # no --yes, no terminal: no
    assert lab.store.get(PAUSE_KEY)[1] is None

    done = consulha("pause", "-c", config, "--reason", "db migration", "--yes", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["data"]["pause"]["reason"] == "db migration"
    status = json.loads(consulha("status", "-c", config, "--json").stdout)
    assert status["pause"]["reason"] == "db migration" and "@" in status["pause"]["by"]
    table = consulha("status", "-c", config).stdout
    assert "PAUSED" in table and "db migration" in table
    wait_until(lambda: Scrape(port).value("consulha_paused") == 1, 15, what="consulha_paused 1",
               logs=lab.logs)
    again = consulha("pause", "-c", config, "--reason", "other", "--yes")
    assert again.returncode == 1 and "already paused" in again.stdout and "db migration" in again.stdout

    done = consulha("resume", "-c", config)
    assert done.returncode == 0, done.stdout + done.stderr
    assert lab.store.get(PAUSE_KEY)[1] is None
    status = json.loads(consulha("status", "-c", config, "--json").stdout)
    assert status["pause"] is None
    assert "PAUSED" not in consulha("status", "-c", config).stdout
    wait_until(lambda: Scrape(port).value("consulha_paused") == 0, 15, what="consulha_paused 0",
               logs=lab.logs)
    done = consulha("resume", "-c", config)
    assert done.returncode == 0 and "not paused" in done.stdout

    history = json.loads(consulha("history", "-c", config, "--json").stdout)
    causes = [entry["cause"] for entry in history]
    assert causes[-2].startswith("paused by ") and causes[-2].endswith(": db migration")
    assert causes[-1].startswith("resumed by ") and "db migration" in causes[-1]
    assert history[-1]["epoch"] == first["epoch"]
    table = consulha("history", "-c", config).stdout
    assert "paused by" in table and "resumed by" in table


@pytest.mark.integration
def test_maintenance_of_the_leader_is_refused_while_paused(lab):
    config, first = a_leads_b_stands_by(lab)
    assert consulha("pause", "-c", config, "--yes").returncode == 0
    for dry_run in (["--dry-run"], []):
        done = consulha("maintenance", "on", "-c", config, *dry_run)
        assert done.returncode == 1 and "paused" in done.stdout, done.stdout + done.stderr
    assert lab.store.get("consulha/app/control/maintenance/a")[1] is None
    assert lab.leader()["epoch"] == first["epoch"]
    done = consulha("maintenance", "on", "-c", config, "--site", "b")  # a standby: fine
    assert done.returncode == 0, done.stdout + done.stderr


def test_pause_mark_round_trip_and_a_mark_written_by_hand():
    mark = PauseMark(by="ops@host", reason="db migration", since=1700000000.5)
    assert PauseMark.decode(KvEntry(PAUSE_KEY, mark.encode(), None, 9, 0)) == mark
    by_hand = PauseMark.decode(KvEntry(PAUSE_KEY, b"stop it", None, 9, 0))
    assert by_hand == PauseMark(by="", reason="", since=0.0)  # still a pause
    odd = PauseMark.decode(KvEntry(PAUSE_KEY, b'{"by": 3, "since": "yesterday"}', None, 9, 0))
    assert (odd.by, odd.since) == ("3", 0.0)
