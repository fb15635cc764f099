"""The ZooKeeper design (bench/peers) in the chaos lab: its ensemble on sa, sb, sw, its kazoo
agents on ha and hb, its own record zk.example.test. in the lab's BIND. Site a starts active with
DNS on a; a's service fails; DNS moves to b and the agents' event files show the switch. Then
the active app host is cut off for longer than the session timeout: the standby takes over when
its session expires, and once healed the cut-off agent creates its znode again on a new session.

Runs with the chaos suite (root, namespaces) when kazoo (the `bench` extra) and Debian's
zookeeper package are installed; skipped otherwise.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

pytest.importorskip("kazoo", reason="kazoo not installed (pip install -e '.[bench]')")

from kazoo.client import KazooClient  # noqa: E402

from bench.peers import ensemble  # noqa: E402
from bench.peers.zksystem import ZkSystem  # noqa: E402
from lab.pair import wait_until  # noqa: E402

pytestmark = pytest.mark.chaos


def _metric(tmp_path_factory, **figures) -> None:
    path = Path(os.environ.get("CONSULHA_CHAOS_METRICS")
                or tmp_path_factory.getbasetemp() / "chaos-metrics.jsonl")
    with open(path, "a") as out:
        out.write(json.dumps({"scenario": "zk_peer", **figures}) + "\n")


@pytest.fixture(scope="module")
def zk(lab):
    reason = ensemble.preflight()
    if reason:
        pytest.skip(f"ZooKeeper design skipped: {reason}")
    system = ZkSystem()
    try:
        began = time.monotonic()
        system.start(lab)
        system.start_s = time.monotonic() - began
        yield system
    finally:
        system.stop()


def _steps(events, since: float) -> list[tuple[str, str]]:
    return [(e["site"], e["event"]) for e in events if e["t"] >= since]


def test_service_failure_moves_dns_to_b(lab, zk, tmp_path_factory):
    primary = lab.named.address[0]
    assert zk.active_sites() == ["a"]
    assert lab.net.observe(zk.dns_site, primary) == "a"
    assert _steps(zk.events(), 0) == [("a", "active"), ("a", "dns_write"), ("b", "standby")]

    fault = time.monotonic()
    zk.fail_service("a")
    try:
        wait_until(lambda: lab.net.observe(zk.dns_site, primary) == "b", 30, step=0.05,
                   what="zookeeper record on b", logs=zk.logs)
        failover_s = time.monotonic() - fault
        wait_until(lambda: zk.active_sites() == ["b"], 15, step=0.1,
                   what="b active, a standby", logs=zk.logs)
    finally:
        zk.heal_service("a")
    healed = time.monotonic()
    assert _steps(zk.events(), fault) == [("b", "active"), ("b", "dns_write"), ("a", "standby")]
    write = [e for e in zk.events() if e["t"] >= fault and e["event"] == "dns_write"][0]
    assert write["ok"] and write["value"] == lab.values["b"], write

    # a's service is back: a stays the standby, nothing switches back.
    time.sleep(3)
    assert zk.active_sites() == ["b"]
    assert lab.net.observe(zk.dns_site, primary) == "b"
    assert _steps(zk.events(), healed) == []
    _metric(tmp_path_factory, ensemble_start_s=round(zk.ensemble.started_in, 3),
            system_start_s=round(zk.start_s, 3), failover_check_s=round(failover_s, 3))


def _znodes(system: ZkSystem, site: str) -> list[str]:
    """The service znodes `site` holds, read with a client of our own (call in the observer)."""
    client = KazooClient(hosts=system.ensemble.connect_string())
    client.start(timeout=5)
    try:
        return client.get_children(f"/consulha-zk/{system.runs}/sites/{site}")
    finally:
        client.stop()
        client.close()


def test_isolated_active_host_loses_its_session_and_comes_back_on_a_new_one(lab, zk, tmp_path_factory):
    primary = lab.named.address[0]
    old = zk.active_sites()[0]          # b after the test above; a when run alone
    new = "a" if old == "b" else "b"
    assert lab.net.observe(_znodes, zk, old) == ["api"]
    cut = time.monotonic()
    lab.net.isolate([f"h{old}"])
    try:
        wait_until(lambda: lab.net.observe(zk.dns_site, primary) == new, 40, step=0.1,
                   what=f"zookeeper record on {new} after {old}'s session expired", logs=zk.logs)
        failover_s = time.monotonic() - cut
        assert lab.net.observe(_znodes, zk, old) == []
        # No fencing in this design: the cut-off agent cannot know, and still believes it is active.
        both_active = sorted(zk.active_sites()) == ["a", "b"]
    finally:
        lab.net.heal()
    healed = time.monotonic()
    wait_until(lambda: zk.active_sites() == [new], 40, step=0.1, what=f"{old} standby again",
               logs=zk.logs)
    wait_until(lambda: lab.net.observe(_znodes, zk, old) == ["api"], 20, step=0.2,
               what=f"{old}'s znode created again on its new session", logs=zk.logs)
    back_s = time.monotonic() - healed
    assert _steps(zk.events(), cut) == [(new, "active"), (new, "dns_write"), (old, "standby")]
    assert lab.net.observe(zk.dns_site, primary) == new
    _metric(tmp_path_factory, isolation_failover_s=round(failover_s, 3),
            both_active_during_cut=both_active, standby_with_znode_after_heal_s=round(back_s, 3))
