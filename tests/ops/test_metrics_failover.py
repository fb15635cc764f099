"""Metrics and health endpoints of real agents (real Consul, real BIND) across a failover, and a
real Prometheus scraping them."""

from __future__ import annotations

import socket
import time
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from lab.pair import wait_until
from lab.ports import free_port
from lab.prometheus import PrometheusServer
from tests.ops.test_alert_rules import RULES
from tests.ops.test_metrics import status_of

pytestmark = pytest.mark.integration


class Scrape:
    """One scrape of an agent's /metrics: value(name, **labels) without group and site."""

    def __init__(self, port: int):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
        self.samples = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                labels = {k: v for k, v in sample.labels.items() if k not in ("group", "site")}
                self.samples[(sample.name, tuple(sorted(labels.items())))] = sample.value

    def value(self, name: str, **labels: str) -> float:
        return self.samples[(name, tuple(sorted(labels.items())))]

    def total(self, name: str, **labels: str) -> float:
        """Sum over every series of `name` whose labels include `labels`."""
        return sum(v for (n, sample_labels), v in self.samples.items()
                   if n == name and set(labels.items()) <= set(sample_labels))


def codes(port: int) -> tuple[int, int, int]:
    return status_of(port, "/leader"), status_of(port, "/standby"), status_of(port, "/health")


def pair_with_metrics(lab) -> dict[str, int]:
    """a leads, b stands by, DNS answers a; returns each site's metrics port."""
    ports = {site: free_port() for site in ("a", "b")}
    configs = {site: lab.config(site, metrics={"listen": f"127.0.0.1:{port}"})
               for site, port in ports.items()}
    lab.start("a", configs["a"])
    lab.wait_leader("a")
    lab.start("b", configs["b"])
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    return ports


def test_each_metric_and_endpoint_changes_on_a_failover(lab):
    ports = pair_with_metrics(lab)
    first = lab.leader()
    wait_until(lambda: Scrape(ports["a"]).value("consulha_dns_converged") == 1, 15,
               what="a's DNS converged metric", logs=lab.logs)
    a, b = Scrape(ports["a"]), Scrape(ports["b"])
    assert (a.value("consulha_leader"), b.value("consulha_leader")) == (1, 0)
    assert a.value("consulha_role", role="leader") == 1 and b.value("consulha_role", role="standby") == 1
    assert (a.value("consulha_epoch"), b.value("consulha_epoch")) == (first["epoch"], 0)
    assert a.value("consulha_lease_remaining_seconds") > 0 == b.value("consulha_lease_remaining_seconds")
    assert a.value("consulha_dns_updates_total", result="written") == 1
    assert a.value("consulha_dns_convergence_seconds_count") == 1
    assert b.value("consulha_dns_updates_total", result="written") == 0
    assert b.value("consulha_dns_converged") == 0
    for scrape in (a, b):
        assert scrape.value("consulha_check_status", service="api") == 0
        assert scrape.value("consulha_paused") == 0
        assert scrape.total("consulha_consul_requests_total", result="ok") > 0
        assert time.time() - scrape.value("consulha_consul_last_contact_timestamp_seconds") < 30
    assert codes(ports["a"]) == (200, 503, 200)
    assert codes(ports["b"]) == (503, 200, 200)

    lab.toy("a").fail()
    second = lab.wait_leader("b")
    lab.wait_dns("b")
    wait_until(lambda: Scrape(ports["b"]).value("consulha_dns_converged") == 1
               and Scrape(ports["a"]).value("consulha_check_status", service="api") == 2, 15,
               what="b's DNS converged and a's check critical in the metrics", logs=lab.logs)
    a2, b2 = Scrape(ports["a"]), Scrape(ports["b"])
    assert (a2.value("consulha_leader"), b2.value("consulha_leader")) == (0, 1)
    assert a2.value("consulha_role", role="leader") == 0 and b2.value("consulha_role", role="leader") == 1
    assert (a2.value("consulha_epoch"), b2.value("consulha_epoch")) == (0, second["epoch"])
    assert second["epoch"] > first["epoch"]
    assert a2.value("consulha_lease_remaining_seconds") == 0 < b2.value("consulha_lease_remaining_seconds")
    assert b2.value("consulha_transitions_total", **{"from": "standby"}, to="leader",
                    cause="check_failed") == 1
    assert a2.total("consulha_transitions_total", **{"from": "leader"}) == 1
    for before, after in ((a, a2), (b, b2)):
        assert (after.value("consulha_last_transition_timestamp_seconds")
                > before.value("consulha_last_transition_timestamp_seconds"))
        assert after.total("consulha_consul_requests_total") > before.total("consulha_consul_requests_total")
    assert a2.value("consulha_dns_converged") == 0
    assert b2.value("consulha_dns_updates_total", result="written") == 1
    assert b2.value("consulha_dns_convergence_seconds_count") == 1
    assert a2.value("consulha_check_status", service="api") == 2
    assert b2.value("consulha_check_status", service="api") == 0
    assert codes(ports["a"]) == (503, 503, 200), lab.logs()  # a cannot compete now: neither role answers 200
    assert codes(ports["b"]) == (200, 503, 200)
    lab.toy("a").recover()
    wait_until(lambda: codes(ports["a"]) == (503, 200, 200), 15, what="a to stand by again",
               logs=lab.logs)


def test_prometheus_scrapes_both_agents_before_and_after_a_failover(lab, tmp_path):
    ports = pair_with_metrics(lab)
    prometheus = PrometheusServer(tmp_path / "prometheus",
                                  [f"127.0.0.1:{port}" for port in ports.values()],
                                  rule_files=[str(RULES)]).start()
    try:
        def leaders():
            return {dict(labels)["site"]: value
                    for labels, value in prometheus.query("consulha_leader").items()}

        wait_until(lambda: leaders() == {"a": 1, "b": 0}, 30, what="prometheus to see a lead",
                   logs=prometheus.log_tail)
        groups = prometheus.api("rules")["groups"]
        assert {rule["name"] for group in groups for rule in group["rules"]} >= {
            "ConsulhaNoLeader", "ConsulhaTwoLeaders", "ConsulhaPausedTooLong"}
        assert all(rule["health"] == "ok" for group in groups for rule in group["rules"])
        lab.toy("a").fail()
        lab.wait_leader("b")
        wait_until(lambda: leaders() == {"a": 0, "b": 1}, 30, what="prometheus to see b lead",
                   logs=prometheus.log_tail)
        moves = prometheus.query('sum by (group) (changes(consulha_leader[5m]))')
        assert list(moves.values()) == [2.0]
    finally:
        prometheus.stop()


def test_a_taken_metrics_port_never_costs_leadership(lab):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        config = lab.config("a", metrics={"listen": f"127.0.0.1:{holder.getsockname()[1]}"})
        lab.start("a", config)
        lab.wait_leader("a")
        lab.wait_dns("a")
        assert "metrics listener not started" in lab.agents["a"].log_text()
