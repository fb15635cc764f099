"""The shipped alert rules and Grafana dashboard: valid for promtool, unit-tested, and naming only
metrics the agent exports."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from consulha.config import load_config
from consulha.core.election import Election, Lease
from consulha.core.reasons import Cause, Reason
from consulha.ops.metrics import Metrics
from tests.ops.test_metrics import write_site

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "conf/prometheus/consulha-alerts.yml"
RULE_TESTS = ROOT / "conf/prometheus/consulha-alerts.test.yml"
DASHBOARD = ROOT / "conf/grafana/consulha-dashboard.json"
ISSUE_ALERTS = {"ConsulhaNoLeader", "ConsulhaTwoLeaders", "ConsulhaDnsNotConverged",
                "ConsulhaFlapping", "ConsulhaPausedTooLong"}

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None,
                                reason="promtool missing: run scripts/install-deps")


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def rule_exprs() -> dict[str, str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def dashboard_exprs() -> list[str]:
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel["targets"]]


def exported_names(tmp_path) -> set[str]:
    """Every sample name the agent exports once it has made a transition, asked Consul and
    begun a resolver sweep (service checks come from Consul at scrape time: here there is none, so it is named)."""
    metrics = Metrics(load_config(write_site(tmp_path)))
    election = Election(Lease(1.0, time.monotonic))
    metrics.follow(election, lambda: True)
    election.candidate(Reason(Cause.SESSION_CREATED))
    metrics.count_consul_request("kv.get", "ok")
    metrics.resolver_event("unbound 127.0.0.1:8953", "pending", None)   # a resolver's series: from its first sweep
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {sample.name for family in families for sample in family.samples} | {
        "consulha_check_status"}


def test_promtool_checks_the_rules():
    done = promtool("check", "rules", str(RULES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ISSUE_ALERTS <= set(rule_exprs())


def test_promtool_rule_unit_tests_pass():
    done = promtool("test", "rules", str(RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr


def test_rules_and_dashboard_name_only_exported_metrics(tmp_path):
    names = exported_names(tmp_path)
    for expr in [*rule_exprs().values(), *dashboard_exprs()]:
        for used in re.findall(r"\bconsulha_\w+", expr):
            assert used in names, (used, expr)


def test_dashboard_queries_parse_as_promql(tmp_path):
    """promtool has no query checker; the queries as recording rules go through its parser."""
    rules = [{"record": f"dashboard:query:{i}", "expr": expr.replace("$group", ".*")}
             for i, expr in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = promtool("check", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
