"""`--dry-run` of handover, takeover and maintenance: says what would happen, exits as the real
command would, and changes nothing in Consul KV or DNS."""

from __future__ import annotations

import json

import pytest

from lab.pair import wait_until
from tests.agent.test_operations import a_leads_b_stands_by, consulha

pytestmark = pytest.mark.integration


def kv_indexes(lab) -> dict[str, int]:
    """Every key under the group's prefix with its ModifyIndex: any write changes one."""
    _, entries = lab.store.get_prefix("consulha/app/")
    return {entry.key: entry.modify_index for entry in entries}


def settled(lab, *sites: str) -> None:
    """Wait for the agents' last writes of a quiet group: each site's report, and the leader's
    report of its converged DNS write."""
    def reports():
        _, entries = lab.store.get_prefix("consulha/app/sites/")
        found = {e.key.rsplit("/", 1)[1]: e.json() or {} for e in entries}
        return all(site in found for site in sites) and any(r.get("dns") for r in found.values())
    wait_until(reports, 15, what="the site reports to settle", logs=lab.logs)


def test_dry_runs_change_nothing_and_exit_as_the_real_command(lab):
    config, first = a_leads_b_stands_by(lab)
    settled(lab, "a", "b")
    kv, serial = kv_indexes(lab), lab.soa_serial()

    done = consulha("handover", "-c", config, "--to", "b", "--dry-run", "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["data"] == {"from": "a", "from_epoch": first["epoch"], "to": "b", "dry_run": True}
    assert result["message"].startswith("dry run: would ask site a")
    done = consulha("handover", "-c", config, "--to", "zz", "--dry-run")
    assert done.returncode == 1 and "not a live candidate" in done.stdout
    done = consulha("takeover", "-c", config, "--to", "b", "--dry-run")  # no --yes needed
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"would destroy session {first['session']}" in done.stdout.replace("\n", "")
    done = consulha("takeover", "-c", config, "--to", "a", "--dry-run")
    assert done.returncode == 1 and "already the leader" in done.stdout
    done = consulha("maintenance", "on", "-c", config, "--dry-run")
    assert done.returncode == 0 and "would hand over to b" in done.stdout.replace("\n", " ")
    done = consulha("maintenance", "on", "-c", config, "--site", "b", "--dry-run")
    assert done.returncode == 0 and "does not lead" in done.stdout
    done = consulha("maintenance", "off", "-c", config, "--dry-run")
    assert done.returncode == 0 and "not in maintenance" in done.stdout

    assert kv_indexes(lab) == kv
    assert lab.soa_serial() == serial
    assert lab.leader()["epoch"] == first["epoch"]


def test_a_refused_dry_run_exits_1_and_changes_nothing(lab):
    config = lab.config("a")
    lab.start("a", config)
    first = lab.wait_leader("a")
    lab.wait_dns("a")
    settled(lab, "a")
    kv, serial = kv_indexes(lab), lab.soa_serial()
    done = consulha("maintenance", "on", "-c", config, "--dry-run")
    assert done.returncode == 1 and "--force" in done.stdout
    done = consulha("handover", "-c", config, "--dry-run")
    assert done.returncode == 1 and "no healthy candidate" in done.stdout
    assert kv_indexes(lab) == kv
    assert lab.soa_serial() == serial
    assert lab.leader()["epoch"] == first["epoch"]
