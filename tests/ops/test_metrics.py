"""The metrics module without Consul: names, causes, the endpoints' codes, the listen address."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from consulha.config import ConfigError, load_config
from consulha.core.control import ControlState, PauseMark
from consulha.core.damping import FailureRecord
from consulha.core.election import Election, Lease
from consulha.core.reasons import Cause, Reason
from consulha.ops.metrics import Metrics, MetricsServer, listen_conflict
from lab.ports import free_port
from lab.site import http_service, site_config, write_config

METRIC_NAMES = {
    "consulha_role", "consulha_leader", "consulha_epoch", "consulha_transitions",
    "consulha_last_transition_timestamp_seconds", "consulha_lease_remaining_seconds",
    "consulha_dns_converged", "consulha_dns_convergence_seconds", "consulha_dns_updates",
    "consulha_consul_requests", "consulha_consul_last_contact_timestamp_seconds",
    "consulha_check_status", "consulha_paused", "consulha_damping_penalty", "consulha_damped",
    "consulha_damping_hold_down_seconds",
}


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def write_site(tmp_path, **sections) -> str:
    dns = {"zone": "example.test.", "record": "app.example.test.", "server": "127.0.0.1:53"}
    # Port 1 on loopback refuses at once: the scrape-time check read fails fast.
    document = site_config("a", "http://127.0.0.1:1", dns,
                           [http_service("api", "http://127.0.0.1:1/")], "192.0.2.1", **sections)
    return str(write_config(tmp_path / "a.yaml", document))


def samples(metrics: Metrics) -> dict[tuple[str, tuple], float]:
    text = metrics.exposition().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(metrics: Metrics, name: str, **labels) -> float:
    wanted = tuple(sorted({"group": "app", "site": "a", **labels}.items()))
    return samples(metrics)[(name, wanted)]


@pytest.fixture
def running(tmp_path):
    port = free_port()
    cfg = load_config(write_site(tmp_path, metrics={"listen": f"127.0.0.1:{port}"}))
    clock = FakeClock()
    election = Election(Lease(1.0, clock), clock, wall_clock=lambda: 1700000000.0)
    alive = {"value": True}
    metrics = Metrics(cfg)
    metrics.follow(election, lambda: alive["value"])
    server = MetricsServer(cfg, metrics)
    assert server.start()
    yield metrics, election, clock, alive, port
    server.stop()


def status_of(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code


def test_every_metric_of_the_issue_is_exported_with_group_and_site(running):
    metrics, *_ = running
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    assert METRIC_NAMES - {"consulha_check_status"} <= set(families)
    for family in families.values():
        for sample in family.samples:
            assert sample.labels["group"] == "app" and sample.labels["site"] == "a", sample


def test_role_leader_epoch_and_lease_follow_the_election(running):
    metrics, election, clock, _, _ = running
    assert value(metrics, "consulha_role", role="starting") == 1
    election.candidate(Reason(Cause.SESSION_CREATED, "session 1234 created"))
    assert value(metrics, "consulha_role", role="standby") == 1
    assert value(metrics, "consulha_role", role="starting") == 0
    assert value(metrics, "consulha_leader") == 0
    assert election.promote(42, clock.now, Reason(Cause.INITIAL_ELECTION))
    assert value(metrics, "consulha_leader") == 1
    assert value(metrics, "consulha_epoch") == 42
    assert value(metrics, "consulha_lease_remaining_seconds") == pytest.approx(1.0)
    clock.now += 0.25
    assert value(metrics, "consulha_lease_remaining_seconds") == pytest.approx(0.75)
    assert value(metrics, "consulha_transitions_total", **{"from": "standby"}, to="leader",
                 cause="initial_election") == 1
    assert value(metrics, "consulha_last_transition_timestamp_seconds") == 1700000000.0
    clock.now += 1.0
    election.fence_if_expired()
    assert value(metrics, "consulha_leader") == 0 and value(metrics, "consulha_epoch") == 0
    assert value(metrics, "consulha_transitions_total", **{"from": "leader"}, to="standby",
                 cause="self_fenced") == 1


def test_endpoint_codes(running):
    metrics, election, clock, alive, port = running
    assert (status_of(port, "/leader"), status_of(port, "/standby")) == (503, 503)  # starting
    election.candidate(Reason(Cause.SESSION_CREATED))
    assert (status_of(port, "/leader"), status_of(port, "/standby")) == (503, 200)
    election.promote(7, clock.now, Reason(Cause.INITIAL_ELECTION))
    assert (status_of(port, "/leader"), status_of(port, "/standby")) == (200, 503)
    clock.now += 2  # the lease ran out before the watchdog noticed: no longer a leader
    assert status_of(port, "/leader") == 503
    assert status_of(port, "/health") == 200
    alive["value"] = False
    assert status_of(port, "/health") == 503
    assert status_of(port, "/metrics") == 200
    assert status_of(port, "/nope") == 404


def test_paused_dns_and_consul_counters(running):
    metrics, *_ = running
    assert value(metrics, "consulha_paused") == 0
    metrics.observe_control(ControlState(None, {}, PauseMark(by="ops@host", reason="upgrade")))
    assert value(metrics, "consulha_paused") == 1
    metrics.observe_control(ControlState(None, {}))
    assert value(metrics, "consulha_paused") == 0
    assert value(metrics, "consulha_dns_updates_total", result="failed") == 0
    metrics.dns_update("written")
    assert value(metrics, "consulha_dns_converged") == 0
    metrics.dns_verified(True, 0.3)
    assert value(metrics, "consulha_dns_converged") == 1
    assert value(metrics, "consulha_dns_convergence_seconds_bucket", le="0.25") == 0
    assert value(metrics, "consulha_dns_convergence_seconds_bucket", le="0.5") == 1
    metrics.count_consul_request("kv.get", "unavailable")
    assert ("consulha_consul_last_contact_timestamp_seconds",
            (("group", "app"), ("site", "a"))) not in samples(metrics)
    metrics.count_consul_request("kv.get", "ok")
    assert value(metrics, "consulha_consul_requests_total", endpoint="kv.get", result="ok") == 1
    assert value(metrics, "consulha_consul_last_contact_timestamp_seconds") > 0


def test_damping_of_this_site_penalty_decays_at_scrape_time(running, tmp_path):
    metrics, *_ = running
    assert value(metrics, "consulha_damped") == 0 and value(metrics, "consulha_damping_penalty") == 0
    now = time.time()
    ours = FailureRecord("a", penalty=2.0, as_of=now - 60, damped_until=now + 30)
    theirs = FailureRecord("b", penalty=5.0, as_of=now, damped_until=now + 200)
    metrics.observe_control(ControlState(None, {}, failures={"a": ours, "b": theirs}))
    assert value(metrics, "consulha_damped") == 1
    assert value(metrics, "consulha_damping_penalty") == pytest.approx(1.0, rel=0.01)  # one half-life on
    assert value(metrics, "consulha_damping_hold_down_seconds") == pytest.approx(30, abs=1)
    metrics.observe_control(ControlState(None, {}))   # cleared (consulha cleanup)
    assert value(metrics, "consulha_damped") == 0 and value(metrics, "consulha_damping_hold_down_seconds") == 0
    switched_off = Metrics(load_config(write_site(tmp_path, election={"damping": {"enabled": False}})))
    switched_off.observe_control(ControlState(None, {}, failures={"a": ours}))
    assert value(switched_off, "consulha_damped") == 0   # the rules ignore the record: so do we


def test_listen_address_is_validated(tmp_path):
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "not an address:1"):
        with pytest.raises(ConfigError, match="metrics.listen"):
            load_config(write_site(tmp_path, metrics={"listen": bad}))
    assert load_config(write_site(tmp_path)).metrics.listen is None


def test_a_taken_port_is_a_config_error_for_validate_only(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        path = write_site(tmp_path, metrics={"listen": f"127.0.0.1:{port}"})
        assert load_config(path).metrics.listen == ("127.0.0.1", port)  # the agent loads it
        done = subprocess.run([sys.executable, "-m", "consulha.cli", "validate", "-c", path],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"{path}:" in done.stderr and "metrics.listen" in done.stderr
        assert "in use" in done.stderr


def test_the_address_held_by_this_sites_own_agent_is_no_conflict(running):
    _, _, _, _, port = running
    assert listen_conflict(("127.0.0.1", port), "app/a") is None
    assert "held by the consulha agent of app/a" in listen_conflict(("127.0.0.1", port), "app/b")


def test_a_taken_port_at_run_time_is_logged_not_fatal(tmp_path, caplog):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        cfg = load_config(write_site(
            tmp_path, metrics={"listen": f"127.0.0.1:{holder.getsockname()[1]}"}))
        assert MetricsServer(cfg, Metrics(cfg)).start() is False
    assert "metrics listener not started" in caplog.text
