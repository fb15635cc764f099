"""End to end: two agents, BIND, and a real unbound in both sites' dns.resolvers. Site a's
service fails; the new leader flushes unbound once BIND answers b, unbound answers b long
before the record's 30 s TTL, and `consulha status` and `validate --connect` show the resolver."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from consulha.config import ResolverConfig
from consulha.dns.resolvers import answer
from lab.pair import SITE_VALUES, wait_until
from lab.resolvers import Unbound, preflight
from tests.cli.test_cli import consulha

pytestmark = pytest.mark.integration


@pytest.fixture
def unbound(named, tmp_path):
    reason = preflight()
    if reason:
        pytest.fail(f"resolver tests need the real servers: {reason}")
    with Unbound(tmp_path / "unbound", named.zone, named.address) as server:
        yield server


def test_a_failover_flushes_unbound_and_status_shows_it(lab, unbound):
    lab.dns_section["resolvers"] = [{"unbound": f"127.0.0.1:{unbound.control_port}",
                                     "address": f"127.0.0.1:{unbound.port}"}]
    resolver = ResolverConfig(kind="unbound", control=unbound.control, address=unbound.address)
    record = lab.named.records[0]
    lab.start("a")
    lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    assert answer(resolver, record, "A", 2.0) == (SITE_VALUES["a"],)   # cached for 30 s from now
    fault = time.monotonic()
    lab.toy("a").fail()
    lab.wait_dns("b")
    wait_until(lambda: answer(resolver, record, "A", 2.0) == (SITE_VALUES["b"],), 10,
               what="unbound to answer b (flushed)", logs=lab.logs)
    assert time.monotonic() - fault < 15, "unbound followed by its TTL, not by a flush"

    def swept():
        status = json.loads(consulha("status", "-c", lab.config("b"), "--json").stdout)
        view = status["resolvers"].get(resolver.name, {})
        return (view.get("sweep") or {}).get("converged") and view
    view = wait_until(swept, 15, what="b's report of the sweep", logs=lab.logs)
    assert view["answers"] == [SITE_VALUES["b"]] and view["matches"]
    # Asked with site a's config (whose own value is a's), it still judges by the leader's value.
    from_a = json.loads(consulha("status", "-c", lab.config("a"), "--json").stdout)["resolvers"][resolver.name]
    assert from_a["answers"] == [SITE_VALUES["b"]] and from_a["matches"], from_a
    assert view["sweep"]["last_flush"] and view["sweep"]["error"] is None and view["sweep"]["converged_s"] > 0
    wide = {**os.environ, "COLUMNS": "250"}   # one line per row: the cells stay whole
    text = subprocess.run([sys.executable, "-m", "consulha.cli", "status", "-c", lab.config("b")], env=wide,
                          capture_output=True, text=True, timeout=60).stdout
    row = next((line for line in text.splitlines() if resolver.name in line), "")
    assert "resolvers (what clients see)" in text and SITE_VALUES["b"] in row and "yes" in row, text
    done = consulha("validate", "-c", lab.config("b"), "--connect")
    assert f"resolver {resolver.name}: ok control reached" in " ".join(done.stdout.split()), done.stdout
    assert "nothing flushed" in done.stdout and "FAILED" not in done.stdout, done.stdout
