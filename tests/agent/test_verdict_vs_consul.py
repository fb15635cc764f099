"""The leader's own probe judges every answer as Consul's check of the same definition does
(docs/own-probes.md): a real Consul HTTP check and the own probe get the same answers from one
service, one by one, and their verdicts are compared after each answer."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from consulha.agent.ownchecks import probe
from consulha.config import CheckConfig, ConsulConfig
from consulha.consul.store import ConsulStore
from consulha.core.verdict import CRITICAL, PASSING, CheckVerdict
from lab.pair import wait_until
from lab.toy import ToyTcpService, answer

pytestmark = pytest.mark.integration

TIMEOUT = 1.5  # the check's timeout: a "slow" answer comes after it
SLOW = 2.5

# Each answer as the service gives it: a status code, "slow" (200 after the timeout), or a
# redirect to a path that answers 200 or 503. Chosen to cross every rule of Consul's counting
# at failures_before_critical 2, success_before_passing 2: a warning between two failures
# restarts the failure count (where counting it as a failure would hand over), a warning after
# critical counts towards passing and is then reported as warning.
ANSWERS = [200, 503, 429, 503, 503, 429, 200, 200, "slow", "redirect-ok", 503, "redirect-fail",
           404, 204, 429, 200, 500, 429, 503]


class ScriptedService:
    """GET /health answers each client its own copy of ANSWERS, in order. Consul's requests are
    told apart by their User-Agent and held until the test lets each through, so that the test
    reads Consul's status between two answers: when request k arrives, Consul has taken answer
    k-1 (its check runs, reports, then waits its interval)."""

    def __init__(self, answers: list):
        self.answers = answers
        self.arrived = [threading.Event() for _ in range(len(answers) + 1)]
        self.release = [threading.Event() for _ in range(len(answers) + 1)]
        self.served = {"consul": 0, "probe": 0}
        self.user_agents: set[str] = set()
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path in ("/ok", "/fail"):  # a redirect's target
                    return self.answer(200 if self.path == "/ok" else 503)
                agent = self.headers.get("User-Agent", "")
                service.user_agents.add(agent)
                client = "consul" if "Consul" in agent else "probe"
                index = service.served[client]
                service.served[client] += 1
                if client == "consul" and index < len(service.arrived):
                    service.arrived[index].set()
                    service.release[index].wait(30)
                answer = service.answers[index] if index < len(service.answers) else 200
                if answer == "slow":
                    time.sleep(SLOW)
                    return self.answer(200)
                if isinstance(answer, str):  # a redirect
                    self.send_response(302)
                    self.send_header("Location", "/ok" if answer == "redirect-ok" else "/fail")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return self.answer(answer)

            def answer(self, code: int):
                answer(self, code, f"answer {code}\n")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/health"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        for event in self.release:
            event.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def store(consul_server):
    return ConsulStore(ConsulConfig(address=consul_server.address))


def consul_status(store: ConsulStore, check_id: str) -> str:
    return store.local_checks()[check_id]["Status"]


def test_the_own_probe_and_consuls_http_check_agree_answer_by_answer(store):
    service = ScriptedService(ANSWERS)
    check = CheckConfig("http", service.url, interval=1.0, timeout=TIMEOUT,
                        failures_before_critical=2, success_before_passing=2)
    try:
        store.register_check("verdict", "verdict", {
            "HTTP": check.target, "Interval": "1s", "Timeout": f"{TIMEOUT}s",
            "FailuresBeforeCritical": 2, "SuccessBeforePassing": 2}, "own probe vs Consul")
        # Our verdict counts from where Consul's does: a check just registered.
        ours = CheckVerdict(check.failures_before_critical, check.success_before_passing)
        rows = []
        for index, answer in enumerate(ANSWERS):
            assert service.arrived[index].wait(15), f"Consul never asked for answer {index}"
            if index:
                rows[-1] = (*rows[-1], consul_status(store, "verdict"))
            service.release[index].set()
            rows.append((answer, ours.observe(probe(check)[0])))
        assert service.arrived[len(ANSWERS)].wait(15), "Consul never asked after the last answer"
        rows[-1] = (*rows[-1], consul_status(store, "verdict"))
    finally:
        service.close()
        store.deregister_check("verdict")
    assert any("Consul" in agent for agent in service.user_agents), service.user_agents
    disagreements = [(index, *row) for index, row in enumerate(rows) if row[1] != row[2]]
    assert not disagreements, f"(index, answer, own probe, Consul): {disagreements}\nall: {rows}"
    # The script is only worth something if it crossed each kind of verdict.
    assert {row[2] for row in rows} == {PASSING, "warning", CRITICAL}, rows


def test_tcp_and_unreachable_targets_are_judged_alike(store):
    tcp = ToyTcpService().start()
    checks = {"tcp": CheckConfig("tcp", tcp.address, interval=1.0, timeout=1.0),
              "no-http": CheckConfig("http", f"http://{tcp.address}/health", interval=1.0, timeout=1.0)}
    try:
        for check_id, check in checks.items():
            store.register_check(check_id, check_id, {check.kind.upper(): check.target, "Interval": "1s",
                                                      "Timeout": "1s"}, "own probe vs Consul")
        # The open port passes a TCP check; an HTTP check of a port that does not speak HTTP fails.
        expected = {"tcp": PASSING, "no-http": CRITICAL}
        wait_until(lambda: {c: consul_status(store, c) for c in checks} == expected, 10,
                   what=f"Consul's checks {expected}")
        assert {c: probe(check)[0] for c, check in checks.items()} == expected
        tcp.fail()
        wait_until(lambda: consul_status(store, "tcp") == CRITICAL, 10, what="Consul's TCP check critical")
        assert probe(checks["tcp"])[0] == CRITICAL
    finally:
        tcp.stop()
        for check_id in checks:
            store.deregister_check(check_id)
