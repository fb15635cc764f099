"""A directory of group configs: broken files and clashing groups are refused with their file
names; the shared HTTP pool runs one request for identical blocking reads."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from consulha.config.groups import load_groups
from consulha.consul.store import HttpPool
from consulha.consul.watch import PrefixWatch, SharedWatch, common_prefix
from consulha.core.control import ControlKeys
from consulha.core.records import KvEntry

SECRET = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA=="


def group_document(group: str, **changes) -> dict:
    document = {
        "site": "a", "group": group, "consul": {"address": "http://127.0.0.1:8500"},
        "services": [{"name": f"{group}-api", "check": {"http": "http://127.0.0.1:9/health"}}],
        "dns": {"zone": "example.test.", "record": f"{group}.example.test.", "type": "A",
                "value": "192.0.2.1", "server": "127.0.0.1:53",
                "tsig": {"name": "key", "secret": SECRET}},
    }
    document.update(changes)
    return document


def write(directory: Path, name: str, document: dict | str) -> Path:
    path = directory / name
    path.write_text(document if isinstance(document, str) else yaml.safe_dump(document, sort_keys=False))
    return path


def consulha(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consulha.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_a_broken_file_is_named_with_line_and_key_and_the_others_load(tmp_path):
    for group in ("g1", "g2"):
        write(tmp_path, f"{group}.yaml", group_document(group))
    broken = write(tmp_path, "g3.yaml", yaml.safe_dump(group_document("g3"), sort_keys=False)
                   .replace("site: a", "site: a\nsession:\n  ttl: 3s"))
    write(tmp_path, "notes.txt", "not a config")
    groups = load_groups(tmp_path)
    assert [c.group for c in groups.configs] == ["g1", "g2"]
    assert len(groups.errors) == 1 and groups.errors[0].startswith(f"{broken}:3: session.ttl")


@pytest.mark.parametrize("second, problem", [
    (group_document("g1"), "both claim group 'g1'"),
    (group_document("other", key_prefix="consulha/g1"), "key prefixes 'consulha/g1' and 'consulha/g1' overlap"),
    (group_document("other", key_prefix="consulha/g1/inner"), "overlap"),
])
def test_two_files_claiming_one_group_or_prefix_are_both_refused(tmp_path, second, problem):
    first = write(tmp_path, "first.yaml", group_document("g1"))
    other = write(tmp_path, "second.yaml", second)
    write(tmp_path, "third.yaml", group_document("g3"))
    groups = load_groups(tmp_path)
    assert [c.group for c in groups.configs] == ["g3"]
    assert len(groups.errors) == 1
    assert str(first) in groups.errors[0] and str(other) in groups.errors[0]
    assert problem in groups.errors[0]


def test_empty_directory_is_an_error(tmp_path):
    assert load_groups(tmp_path).errors == (f"{tmp_path}: no *.yaml group configs in this directory",)


def test_validate_directory_exits_2_naming_both_files_and_the_broken_line(tmp_path):
    write(tmp_path, "a.yaml", group_document("g1"))
    done = consulha("validate", "-c", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "group g1" in done.stdout
    write(tmp_path, "b.yaml", group_document("g1"))
    write(tmp_path, "c.yaml", "site: a\ngroup: g3\nbogus: 1\n")
    done = consulha("validate", "-c", str(tmp_path))
    assert done.returncode == 2
    stderr = " ".join(done.stderr.split())
    assert f"{tmp_path / 'a.yaml'} and {tmp_path / 'b.yaml'}: both claim group 'g1'" in stderr
    assert f"{tmp_path / 'c.yaml'}:3: bogus" in stderr


def test_agent_refuses_a_directory_where_no_group_can_run(tmp_path):
    write(tmp_path, "c.yaml", "site: a\ngroup: g3\nbogus: 1\n")
    done = consulha("agent", "-c", str(tmp_path))
    assert done.returncode == 2
    assert f"{tmp_path / 'c.yaml'}:3: bogus" in done.stderr


def waiting_in_single_flight(thread: threading.Thread) -> bool:
    """The thread sits in Event.wait inside HttpPool.single_flight (joined a flight)."""
    frame = sys._current_frames().get(thread.ident)
    names = []
    while frame is not None:
        names.append(frame.f_code.co_name)
        frame = frame.f_back
    return bool(names) and "single_flight" in names and names[0] == "wait"


def test_single_flight_runs_one_call_for_concurrent_identical_keys():
    pool = HttpPool(groups=3)
    release, calls, results = threading.Event(), [], []

    def slow_read():
        calls.append(1)
        release.wait(30)
        return 42

    def read():
        results.append(pool.single_flight(("node-checks", 7), slow_read))
    threads = [threading.Thread(target=read) for _ in range(4)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 30
    while sum(map(waiting_in_single_flight, threads)) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    release.set()
    for thread in threads:
        thread.join(30)
    assert calls == [1] and results == [42] * 4
    assert pool.single_flight(("node-checks", 7), lambda: 8) == 8  # the flight ended with it


def test_single_flight_passes_the_error_to_every_waiter():
    pool = HttpPool()
    with pytest.raises(ValueError):
        pool.single_flight(("k",), lambda: (_ for _ in ()).throw(ValueError("boom")))
    assert pool.single_flight(("k",), lambda: 1) == 1


class ScriptedAgent:
    """Stands in for consulha.agent.Agent in GroupHost: the first run of group g1 crashes."""
    runs: list["ScriptedAgent"] = []

    def __init__(self, cfg, transitions_file=None, pool=None, shared_watch=None, heartbeat=None,
                 systemd=None):
        self.cfg, self.pool, self.abandoned = cfg, pool, False
        self.heartbeat, self.systemd = heartbeat, systemd
        self._stopped = threading.Event()

    def run(self) -> int:
        ScriptedAgent.runs.append(self)
        if self.cfg.group == "g1" and sum(r.cfg.group == "g1" for r in self.runs) == 1:
            raise RuntimeError("a bug")
        self._stopped.wait(30)
        return 0

    def stop(self) -> None:
        self._stopped.set()

    def abandon(self) -> None:
        self.abandoned = True
        self.stop()


def test_a_crashed_group_is_abandoned_and_restarted_alone(tmp_path, monkeypatch):
    from consulha.agent import host

    monkeypatch.setattr(host, "Agent", ScriptedAgent)
    monkeypatch.setattr(host, "RESTART_PAUSE", 0.01)
    ScriptedAgent.runs = []
    for group in ("g1", "g2"):
        write(tmp_path, f"{group}.yaml", group_document(group))
    served = host.GroupHost(load_groups(tmp_path).configs)
    runner = threading.Thread(target=served.run)
    runner.start()
    deadline = time.monotonic() + 30
    while len(ScriptedAgent.runs) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    served.stop()
    runner.join(30)
    assert not runner.is_alive()
    by_group = {g: [r for r in ScriptedAgent.runs if r.cfg.group == g] for g in ("g1", "g2")}
    assert [r.abandoned for r in by_group["g1"]] == [True, False]
    assert [r.abandoned for r in by_group["g2"]] == [False]
    assert {id(r.pool) for r in ScriptedAgent.runs} == {id(served.pool)}
    assert {id(r.heartbeat) for r in ScriptedAgent.runs} == {id(served.heartbeats["127.0.0.1"])}
    # systemd hears from the host's one notifier, each agent speaking for its own group
    assert {(r.cfg.group, id(r.systemd.host)) for r in ScriptedAgent.runs} == {
        ("g1", id(served.systemd)), ("g2", id(served.systemd))}


@pytest.mark.parametrize("prefixes, shared", [
    (["consulha/g1", "consulha/g2"], "consulha/"),
    (["consulha/g1", "consulha/g10"], "consulha/"),
    (["teams/x/consulha/a", "teams/x/consulha/b"], "teams/x/consulha/"),
    (["consulha/g1", "other/g2"], ""),
    (["consulha/g1"], "consulha/g1/"),
])
def test_common_prefix_is_whole_segments(prefixes, shared):
    assert common_prefix(prefixes) == shared


def test_a_watch_fed_by_a_shared_answer_sees_only_its_own_group():
    def entry(key: str, session: str | None = None, value: bytes = b"{}") -> KvEntry:
        return KvEntry(key=key, value=value, session=session, modify_index=5, lock_index=0)
    watches = {group: PrefixWatch(None, f"consulha/{group}", ControlKeys(f"consulha/{group}"),
                                  f"consulha/{group}/candidates/", clock=lambda: 100.0)
               for group in ("g1", "g10")}
    shared = SharedWatch(None, "consulha/")
    for watch in watches.values():
        shared.add(watch)
    answer = [entry("consulha/g1/candidates/a", "s1"), entry("consulha/g10/candidates/b", "s2"),
              entry("consulha/g10/control/pause", value=b'{"by": "ops", "reason": "x"}')]
    for watch in watches.values():
        watch.accept(answer, answered_at=100.0)
    g1, g10 = watches["g1"].view(), watches["g10"].view()
    assert g1.candidate_holders == {"a": "s1"} and g1.control.pause is None
    assert g10.candidate_holders == {"b": "s2"} and g10.control.pause.by == "ops"
