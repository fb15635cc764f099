"""The leader's own probes (consulha.agent.ownchecks): each probe judged as Consul judges it,
the debounce honoured, a critical service reported and the main loop woken once, nothing left
over from an earlier leadership; and Consul's copy one failure behind while we lead."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from consulha.agent.ownchecks import OwnProbes, probe
from consulha.config import CheckConfig
from consulha.consul.health import Debounce
from consulha.consul.registration import consul_check
from lab.toy import ToyService, ToyTcpService


def answering(code: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.mark.parametrize("code,status", [(200, "passing"), (204, "passing"), (429, "warning"),
                                         (503, "critical"), (404, "critical")])
def test_an_http_probe_judges_the_answer_as_consul_does(code, status):
    server = answering(code)
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/health"
        assert probe(CheckConfig("http", url, timeout=1.0)) == (status, f"HTTP GET {url}: {code}")
    finally:
        server.shutdown()
        server.server_close()


def test_a_tcp_probe_passes_while_the_port_accepts_and_is_critical_once_closed():
    service = ToyTcpService().start()
    check = CheckConfig("tcp", service.address, timeout=1.0)
    assert probe(check)[0] == "passing"
    service.fail()
    status, output = probe(check)
    assert status == "critical" and service.address in output


def test_an_http_probe_of_a_closed_port_is_critical_and_says_why():
    service = ToyTcpService().start()
    address = service.address
    service.fail()
    status, output = probe(CheckConfig("http", f"http://{address}/health", timeout=0.5))
    assert status == "critical" and "refused" in output.lower()


class ScriptedProbe:
    """Answers each probe of a service with the next status of its script, then the last one."""

    def __init__(self, **statuses: list[str]):
        self._statuses = statuses
        self.calls: dict[str, int] = {name: 0 for name in statuses}

    def __call__(self, check: CheckConfig) -> tuple[str, str]:
        name = check.target
        script = self._statuses[name]
        status = script[min(self.calls[name], len(script) - 1)]
        self.calls[name] += 1
        return status, f"{name} {status}"


def checks(*names: str, fall: int = 1) -> dict[str, CheckConfig]:
    return {name: CheckConfig("tcp", name, interval=0.01, timeout=0.01, failures_before_critical=fall)
            for name in names}


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def stop():
    event = threading.Event()
    yield event
    event.set()


def test_a_leader_reports_a_service_critical_after_its_debounce_and_wakes_the_loop_once(stop):
    script = ScriptedProbe(api=["passing", "critical", "passing", "critical", "critical", "critical"],
                           db=["passing"])
    wakes = []
    probes = OwnProbes(checks("api", "db", fall=2), lambda: wakes.append(time.monotonic()), stop,
                       run_probe=script)
    probes.start("probes")
    probes.lead()
    assert wait_for(lambda: probes.failing() == ("api",))
    assert script.calls["api"] >= 5  # the lone failure did not count: two in a row did
    time.sleep(0.05)
    assert len(wakes) == 1 and probes.failing() == ("api",)


def test_a_warning_between_two_failures_starts_no_handover(stop):
    """Consul counts a warning as a success: it ends the failure streak (consulha.core.verdict)."""
    script = ScriptedProbe(api=["critical", "warning"] * 20 + ["warning"])
    wakes = []
    probes = OwnProbes(checks("api", fall=2), lambda: wakes.append(1), stop, run_probe=script)
    probes.start("probes")
    probes.lead()
    assert wait_for(lambda: script.calls["api"] >= 41)
    assert probes.failing() == () and wakes == []


def test_a_standby_probes_nothing_and_a_new_leadership_starts_with_a_clean_slate(stop):
    script = ScriptedProbe(api=["critical"], db=["passing"])
    probes = OwnProbes(checks("api", "db"), lambda: None, stop, run_probe=script)
    probes.start("probes")
    time.sleep(0.05)
    assert script.calls == {"api": 0, "db": 0} and probes.failing() == ()
    probes.lead()
    assert wait_for(lambda: probes.failing() == ("api",))
    probes.lead()  # a new leadership forgets what the last one saw
    assert probes.failing() == ()
    assert wait_for(lambda: probes.failing() == ("api",))


def test_after_stepping_down_the_failing_service_is_probed_until_it_passes(stop):
    script = ScriptedProbe(api=["critical"] * 6 + ["passing"], db=["passing"])
    probes = OwnProbes(checks("api", "db"), lambda: None, stop, run_probe=script)
    probes.start("probes")
    probes.lead()
    assert wait_for(lambda: probes.failing() == ("api",))
    probes.stand_by()
    assert probes.failing() == ("api",)  # we stay out of the election meanwhile
    db_calls = script.calls["db"]
    assert wait_for(lambda: probes.failing() == ())
    assert script.calls["api"] >= 7
    assert script.calls["db"] <= db_calls + 1  # at most the probe under way when we stood down
    calls = dict(script.calls)
    time.sleep(0.05)
    assert script.calls == calls  # nothing failing, not leading: nothing probed


def test_a_standby_with_nothing_failing_probes_nothing(stop):
    script = ScriptedProbe(api=["passing"])
    probes = OwnProbes(checks("api"), lambda: None, stop, run_probe=script)
    probes.start("probes")
    probes.lead()
    assert wait_for(lambda: script.calls["api"] >= 2)
    probes.stand_by()
    time.sleep(0.02)
    calls = script.calls["api"]
    time.sleep(0.05)
    assert script.calls["api"] == calls and probes.failing() == ()


def test_before_taking_a_free_lock_every_service_is_probed_once_and_scripts_count(stop):
    script = ScriptedProbe(api=["passing"], db=["critical"])
    probes = OwnProbes(checks("api", "db"), lambda: None, stop, run_probe=script)
    assert not probes.pass_now()
    assert script.calls == {"api": 1, "db": 1}
    healthy = OwnProbes(checks("api"), lambda: None, stop, run_probe=script)
    assert healthy.pass_now()
    failing_script = OwnProbes(checks("api"), lambda: None, stop, scripts_failing=lambda: ("worker",),
                               run_probe=script)
    assert not failing_script.pass_now() and failing_script.failing() == ("worker",)


def test_script_checks_are_not_probed_here():
    probes = OwnProbes({"worker": CheckConfig("script", "true")}, lambda: None, threading.Event())
    assert not probes.active and probes.pass_now()


def test_a_real_service_failing_is_found_by_the_leaders_probe(stop):
    with ToyService() as toy:
        wakes = threading.Event()
        probes = OwnProbes({"api": CheckConfig("http", toy.url, interval=0.05, timeout=0.5)},
                           wakes.set, stop)
        probes.start("probes")
        probes.lead()
        time.sleep(0.2)
        assert probes.failing() == () and not wakes.is_set()
        toy.fail()
        assert wakes.wait(5) and probes.failing() == ("api",)


class TestLaggingCopy:
    """While we lead, Consul's copy of a check turns critical one failure after ours."""

    def test_consuls_http_check_needs_one_more_failure_while_we_lead(self):
        check = CheckConfig("http", "http://127.0.0.1:1/health", failures_before_critical=2)
        assert consul_check(check)["FailuresBeforeCritical"] == 2
        assert consul_check(check, lagging=True)["FailuresBeforeCritical"] == 3
        assert consul_check(check, lagging=True)["SuccessBeforePassing"] == 1

    def test_a_script_result_reaches_consul_one_failure_after_our_own_verdict(self):
        own, pushed = Debounce(2), Debounce(2)
        results = ["passing", "critical", "critical", "critical"]
        assert [own.observe(r) for r in results] == ["passing", "passing", "critical", "critical"]
        assert [pushed.observe(r, extra_failures=1) for r in results] == ["passing", "passing", "passing",
                                                                           "critical"]

    def test_the_extra_failure_never_delays_recovery(self):
        debounce = Debounce(1, 2, reported="critical")
        assert [debounce.observe(r, extra_failures=1) for r in ["passing", "passing"]] == ["critical", "passing"]

    def test_a_leadership_starts_passing(self):
        debounce = Debounce(2, 1, reported="passing")
        assert [debounce.observe(r) for r in ["critical", "passing", "critical", "critical"]] == [
            "passing", "passing", "passing", "critical"]
