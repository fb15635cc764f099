"""Unit tests of script checks, the shipped check scripts, hooks and small agent helpers.

No Consul, no BIND: only local subprocesses, a loopback HTTP server and loopback sockets.
"""

from __future__ import annotations

import json
import os
import shlex
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from consulha.agent.hooks import HookRunner
from consulha.agent.transitions import TransitionRecorder
from consulha.config import CheckConfig, HooksConfig
from consulha.consul.health import Debounce, run_script, script_ttl
from consulha.consul.registration import consul_check
from consulha.core.backoff import Backoff
from consulha.core.election import Election, Lease, Role
from consulha.core.reasons import Cause, Reason
from lab.toy import ToyService

REPO = Path(__file__).resolve().parents[2]
CHECKS = REPO / "checks"
PY = shlex.quote(sys.executable)


class FakeClock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def sh(script: str) -> str:
    return f"/bin/sh -c {shlex.quote(script)}"


# -- run_script -----------------------------------------------------------------------------------


class TestRunScript:
    def test_exit_0_is_passing_and_output_kept(self, tmp_path):
        status, output = run_script(sh("echo all good"), 5, tmp_path)
        assert status == "passing"
        assert output == "exit 0: all good"

    def test_exit_1_is_warning(self, tmp_path):
        status, output = run_script(sh("echo slow; exit 1"), 5, tmp_path)
        assert status == "warning"
        assert output == "exit 1: slow"

    @pytest.mark.parametrize("code", [2, 3, 127, 255])
    def test_other_exit_codes_are_critical(self, tmp_path, code):
        status, output = run_script(sh(f"exit {code}"), 5, tmp_path)
        assert status == "critical"
        assert output == f"exit {code}"

    def test_stderr_is_kept_too(self, tmp_path):
        status, output = run_script(sh("echo out; echo err >&2; exit 2"), 5, tmp_path)
        assert status == "critical"
        assert output.startswith("exit 2: ")
        assert "out" in output and "err" in output

    def test_timeout_is_critical(self, tmp_path):
        started = time.monotonic()
        status, output = run_script("sleep 10", 0.3, tmp_path)
        assert time.monotonic() - started < 5
        assert status == "critical"
        assert "timed out" in output
        assert "0.3" in output

    def test_missing_program_is_critical_not_an_exception(self, tmp_path):
        status, output = run_script("/nonexistent/consulha-probe --x", 5, tmp_path)
        assert status == "critical"
        assert "could not run" in output
        assert "/nonexistent/consulha-probe" in output

    def test_missing_program_on_path_is_critical(self, tmp_path):
        status, output = run_script(f"consulha-no-such-program-{uuid.uuid4().hex}", 5, tmp_path)
        assert status == "critical"
        assert "could not run" in output

    def test_not_executable_is_critical(self, tmp_path):
        script = tmp_path / "probe.sh"
        script.write_text("#!/bin/sh\nexit 0\n")
        script.chmod(0o644)
        status, output = run_script(str(script), 5, tmp_path)
        assert status == "critical"
        assert "could not run" in output

    def test_relative_script_resolved_beside_config_dir(self, tmp_path, monkeypatch):
        config_dir = tmp_path / "etc"
        (config_dir / "checks").mkdir(parents=True)
        script = config_dir / "checks" / "probe.sh"
        script.write_text('#!/bin/sh\necho "probe $1 from $0"\nexit 1\n')
        script.chmod(0o755)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)  # not resolved against the working directory
        status, output = run_script("checks/probe.sh hello", 5, config_dir)
        assert status == "warning"
        assert output == f"exit 1: probe hello from {script}"

    def test_relative_script_missing_beside_config_is_critical(self, tmp_path, monkeypatch):
        monkeypatch.chdir(tmp_path)
        status, output = run_script("checks/nope.sh", 5, tmp_path)
        assert status == "critical"
        assert "could not run" in output

    def test_script_ttl_is_two_intervals_plus_timeout(self):
        assert script_ttl(CheckConfig("script", "x", interval=5.0, timeout=2.0)) == 12.0
        assert script_ttl(CheckConfig("script", "x", interval=1.0, timeout=0.5)) == 2.5


# -- shipped check scripts ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def toy_server():
    service = ToyService("web").start()
    yield service
    service.stop()


class TestCheckHttp:
    @pytest.fixture
    def toy(self, toy_server):
        toy_server.recover()
        yield toy_server
        toy_server.recover()

    def test_200_is_passing(self, toy):
        status, output = run_script(f"{PY} {CHECKS / 'check_http.py'} {toy.url}", 10, REPO)
        assert status == "passing"
        assert output.startswith("exit 0: HTTP 200")

    def test_503_is_critical(self, toy):
        toy.fail()
        status, output = run_script(f"{PY} {CHECKS / 'check_http.py'} {toy.url}", 10, REPO)
        assert status == "critical"
        assert output == "exit 2: HTTP 503"

    def test_direct_exit_codes(self, toy):
        argv = [sys.executable, str(CHECKS / "check_http.py"), toy.url]
        assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 0
        toy.fail()
        assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 2
        toy.recover()
        assert subprocess.run(argv, capture_output=True, timeout=10).returncode == 0

    def test_refused_is_critical(self):
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
            port = closed.getsockname()[1]
            status, output = run_script(
                f"{PY} {CHECKS / 'check_http.py'} http://127.0.0.1:{port}/health", 10, REPO)
        assert status == "critical"
        assert output.startswith("exit 2: error:")


class TestCheckTcp:
    def test_open_port_is_passing(self):
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(4)
            port = listener.getsockname()[1]
            status, output = run_script(f"{PY} {CHECKS / 'check_tcp.py'} 127.0.0.1:{port}", 10, REPO)
        assert status == "passing"
        assert output == f"exit 0: connected to 127.0.0.1:{port}"

    def test_closed_port_is_critical(self):
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            status, output = run_script(f"{PY} {CHECKS / 'check_tcp.py'} 127.0.0.1:{port}", 10, REPO)
        assert status == "critical"
        assert output.startswith(f"exit 2: cannot connect to 127.0.0.1:{port}")


class TestCheckProcess:
    @pytest.fixture
    def sleeper(self):
        # A unique argument no other process carries.
        seconds = f"{3000 + os.getpid() % 1000}.{uuid.uuid4().int % 10**6:06d}"
        proc = subprocess.Popen(["sleep", seconds])
        yield f"sleep {seconds}"
        proc.kill()
        proc.wait()

    def test_matching_pattern_is_passing(self, sleeper):
        status, output = run_script(f"{CHECKS / 'check_process.sh'} {shlex.quote(sleeper)}", 10, REPO)
        assert status == "passing"
        assert "match" in output

    def test_bracketed_pattern_matching_only_the_sleeper(self, sleeper):
        # "[s]leep ..." cannot match the check script's own command line.
        pattern = "[s]" + sleeper[1:]
        status, output = run_script(f"{CHECKS / 'check_process.sh'} {shlex.quote(pattern)}", 10, REPO)
        assert status == "passing"
        assert output.startswith("exit 0: 1 process(es) match")

    def test_bracketed_pattern_matching_nothing_is_critical(self):
        pattern = f"[c]onsulha-no-such-process-{uuid.uuid4().hex}"
        status, output = run_script(f"{CHECKS / 'check_process.sh'} {shlex.quote(pattern)}", 10, REPO)
        assert status == "critical"
        assert output.startswith("exit 2: only 0 process(es) match")

    def test_plain_pattern_matching_nothing_is_critical(self):
        pattern = f"consulha-no-such-process-{uuid.uuid4().hex}"
        status, output = run_script(f"{CHECKS / 'check_process.sh'} {pattern}", 10, REPO)
        assert status == "critical"
        assert output.startswith("exit 2: only 0 process(es) match")

    def test_min_count_not_met_is_critical(self, sleeper):
        status, output = run_script(f"{CHECKS / 'check_process.sh'} {shlex.quote(sleeper)} 2", 10, REPO)
        assert status == "critical"


# -- hooks ----------------------------------------------------------------------------------------


ENV_KEYS = ("CONSULHA_EVENT", "CONSULHA_SITE", "CONSULHA_GROUP", "CONSULHA_EPOCH", "CONSULHA_REASON")


def dump_env_command(path: Path) -> str:
    script = "import json, os; print(json.dumps({k: os.environ.get(k) for k in %r}))" % (ENV_KEYS,)
    return f"{PY} -c {shlex.quote(script)} >> {shlex.quote(str(path))}"


class TestHookRunner:
    def test_on_promote_gets_its_environment(self, tmp_path):
        out = tmp_path / "env.jsonl"
        runner = HookRunner(HooksConfig(on_promote=dump_env_command(out), timeout=10), "east", "web")
        runner.start()
        runner.submit("promote", 17, "won the lock: east's checks pass")
        runner.stop(10)
        lines = out.read_text().splitlines()
        assert [json.loads(line) for line in lines] == [{
            "CONSULHA_EVENT": "promote",
            "CONSULHA_SITE": "east",
            "CONSULHA_GROUP": "web",
            "CONSULHA_EPOCH": "17",
            "CONSULHA_REASON": "won the lock: east's checks pass",
        }]

    def test_demote_with_no_epoch_and_order(self, tmp_path):
        out = tmp_path / "env.jsonl"
        command = dump_env_command(out)
        runner = HookRunner(HooksConfig(on_promote=command, on_demote=command, timeout=10), "west", "db")
        runner.start()
        runner.submit("promote", 3, "won")
        runner.submit("demote", None, "self-fenced")
        runner.submit("promote", 4, "won again")
        runner.stop(10)
        events = [json.loads(line) for line in out.read_text().splitlines()]
        assert [(e["CONSULHA_EVENT"], e["CONSULHA_EPOCH"], e["CONSULHA_REASON"]) for e in events] == [
            ("promote", "3", "won"), ("demote", "", "self-fenced"), ("promote", "4", "won again")]

    def test_slow_hook_is_killed_and_next_hook_runs(self, tmp_path):
        late = tmp_path / "late"
        after = tmp_path / "after"
        slow = f"sleep 0.8; touch {shlex.quote(str(late))}"
        quick = f"touch {shlex.quote(str(after))}"
        runner = HookRunner(HooksConfig(on_demote=slow, on_promote=quick, timeout=0.2), "east", "web")
        runner.start()
        started = time.monotonic()
        runner.submit("demote", None, "lost")
        runner.submit("promote", 2, "won")
        runner.stop(0.7)
        assert after.exists(), "the hook after the slow one did not run before the slow one's end"
        assert not runner._thread.is_alive()
        # Past the slow hook's own end: its shell was killed, so its `touch` never ran.
        time.sleep(max(0.0, started + 1.3 - time.monotonic()))
        assert not late.exists()

    def test_submit_with_no_command_does_nothing(self, tmp_path):
        out = tmp_path / "env.jsonl"
        runner = HookRunner(HooksConfig(on_promote=dump_env_command(out), on_demote=None, timeout=10),
                            "east", "web")
        runner.submit("demote", None, "lost")
        assert runner._queue.empty()
        runner.start()
        runner.submit("demote", None, "lost")
        runner.submit("promote", 1, "won")
        runner.stop(10)
        events = [json.loads(line)["CONSULHA_EVENT"] for line in out.read_text().splitlines()]
        assert events == ["promote"]

    def test_no_commands_at_all(self):
        runner = HookRunner(HooksConfig(), "east", "web")
        runner.submit("promote", 1, "won")
        runner.submit("demote", None, "lost")
        assert runner._queue.empty()

    def test_failing_hook_does_not_stop_the_runner(self, tmp_path):
        out = tmp_path / "env.jsonl"
        runner = HookRunner(HooksConfig(on_demote="exit 3", on_promote=dump_env_command(out), timeout=10),
                            "east", "web")
        runner.start()
        runner.submit("demote", None, "lost")
        runner.submit("promote", 2, "won")
        runner.stop(10)
        assert [json.loads(line)["CONSULHA_EPOCH"] for line in out.read_text().splitlines()] == ["2"]


# -- agent helpers --------------------------------------------------------------------------------


class TestBackoff:
    def test_doubles_from_first_to_cap_and_resets(self):
        backoff = Backoff()
        assert [backoff.next() for _ in range(8)] == pytest.approx(
            [0.2, 0.4, 0.8, 1.6, 3.2, 5.0, 5.0, 5.0])
        backoff.reset()
        assert backoff.next() == pytest.approx(0.2)
        assert backoff.next() == pytest.approx(0.4)

    def test_custom_first_and_cap(self):
        backoff = Backoff(first=1.0, cap=3.0)
        assert [backoff.next() for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]


def seconds(value: str) -> float:
    assert value.endswith("s")
    return float(value[:-1])


class TestDebounce:
    @pytest.mark.parametrize("fall, rise, results, reported", [
        (1, 1, ["passing", "critical", "passing"], ["passing", "critical", "passing"]),
        (3, 1, ["passing", "critical", "critical", "critical"], ["passing", "passing", "passing", "critical"]),
        (3, 1, ["passing", "critical", "passing", "critical", "critical"], ["passing"] * 5),
        (1, 2, ["passing", "passing", "critical", "passing", "passing"],
         ["critical", "passing", "critical", "critical", "passing"]),
        (2, 1, ["passing", "warning", "warning"], ["passing", "passing", "warning"]),
    ])
    def test_status_changes_only_after_enough_results_in_a_row(self, fall, rise, results, reported):
        debounce = Debounce(fall, rise)
        assert [debounce.observe(result) for result in results] == reported


class TestConsulCheck:
    def test_http(self):
        check = consul_check(CheckConfig("http", "http://127.0.0.1:8080/health", interval=5.0, timeout=2.0,
                                         failures_before_critical=3))
        assert set(check) == {"HTTP", "Interval", "Timeout", "FailuresBeforeCritical", "SuccessBeforePassing"}
        assert (check["FailuresBeforeCritical"], check["SuccessBeforePassing"]) == (3, 1)
        assert check["HTTP"] == "http://127.0.0.1:8080/health"
        assert seconds(check["Interval"]) == 5.0
        assert seconds(check["Timeout"]) == 2.0

    def test_tcp(self):
        check = consul_check(CheckConfig("tcp", "127.0.0.1:5432", interval=1.5, timeout=0.5))
        assert set(check) == {"TCP", "Interval", "Timeout", "FailuresBeforeCritical", "SuccessBeforePassing"}
        assert check["TCP"] == "127.0.0.1:5432"
        assert seconds(check["Interval"]) == 1.5
        assert seconds(check["Timeout"]) == 0.5

    def test_script_becomes_ttl(self):
        check = consul_check(CheckConfig("script", "checks/check_process.sh nginx", interval=5.0, timeout=2.0))
        assert set(check) == {"TTL", "Notes"}
        assert seconds(check["TTL"]) == 12.0  # 2 * interval + timeout
        assert "checks/check_process.sh nginx" in check["Notes"]
        assert "HTTP" not in check and "TCP" not in check


class TestTransitionRecorder:
    def test_one_json_line_per_transition(self, tmp_path):
        path = tmp_path / "transitions.jsonl"
        clock, wall = FakeClock(100.0), FakeClock(1_700_000_000.0)
        election = Election(Lease(4.0, clock), clock, wall)
        election.subscribe(TransitionRecorder(str(path), "east"))
        election.candidate(r("session s1"))
        clock.now = 101.0
        election.promote(8, 100.5, r("won the lock"))
        clock.now = 105.0
        election.fence_if_expired()

        records = [json.loads(line) for line in path.read_text().splitlines()]
        assert len(records) == 3
        assert [(r["site"], r["old"], r["role"], r["epoch"]) for r in records] == [
            ("east", "starting", "standby", None),
            ("east", "standby", "leader", 8),
            ("east", "leader", "standby", 8),
        ]
        assert records[0]["reason"] == "session s1"
        assert records[1]["reason"] == "won the lock"
        assert "self-fenced" in records[2]["reason"]
        assert [r["monotonic"] for r in records] == [100.0, 101.0, 105.0]
        assert records[0]["wall"] == 1_700_000_000.0

    def test_appends_to_an_existing_file(self, tmp_path):
        path = tmp_path / "transitions.jsonl"
        path.write_text('{"site": "old"}\n')
        clock = FakeClock()
        election = Election(Lease(4.0, clock), clock, FakeClock())
        election.subscribe(TransitionRecorder(str(path), "west"))
        election.stop(r("bye"))
        lines = path.read_text().splitlines()
        assert lines[0] == '{"site": "old"}'
        assert json.loads(lines[1])["role"] == Role.STOPPED.value
        assert len(lines) == 2


def r(text: str) -> Reason:
    """A reason for the state-machine tests: the kind does not matter to them, the text does."""
    return Reason(Cause.COMPETING, text)
