"""One `consulha agent -c DIR` process per site serving several groups, on a real Consul and a
real BIND: a broken file is skipped and named, a handover moves one group alone, a site loss
moves every other group once, SIGTERM releases every group's lock; the operator commands
still take one group's file."""

from __future__ import annotations

import json
import time

import pytest

from lab.consul import ConsulDev
from lab.fleet import Fleet, fleet_records
from lab.named import NamedServer
from lab.pair import wait_until
from tests.cli.test_cli import consulha

GROUPS = 3


@pytest.fixture
def fleet(tmp_path):
    with ConsulDev(tmp_path / "consul") as consul, \
            NamedServer(tmp_path / "named", records=fleet_records(GROUPS)) as named:
        fleet = Fleet(tmp_path, consul, named, GROUPS)
        yield fleet
        fleet.close()


@pytest.mark.integration
def test_one_process_per_site_fails_every_group_over_once_and_releases_on_sigterm(fleet):
    broken = fleet.config_dir("a") / "zz-broken.yaml"
    broken.parent.mkdir(parents=True)
    broken.write_text("site: a\ngroup: zz\nsession:\n  lock_delay: 1 parsec\n")
    [host_a] = fleet.start("a")
    fleet.wait_settled(60)
    assert f"config error, group skipped: {broken}:4: session.lock_delay" in host_a.log_text()
    assert "one watch over consulha/ serves every group" in host_a.log_text()
    [host_b] = fleet.start("b")
    fleet.wait_candidates(60)

    # A planned handover of one group: the leader sees the request through the shared watch.
    moved = consulha("handover", "-c", str(fleet.config_dir("a") / "g00.yaml"), "--to", "b")
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert fleet.leaders() == {"g00": "b", "g01": "a", "g02": "a"}

    fault = time.monotonic()
    fleet.toys["a"].fail()
    wait_until(lambda: len(fleet.groups_answering("b")) == GROUPS, 60, step=0.1,
               what="DNS naming site b for every group", logs=fleet.logs)
    assert fleet.leaders() == {group: "b" for group in fleet.groups}
    assert fleet.promotions_since(fault) == {"g00": [], "g01": ["b"], "g02": ["b"]}
    status = consulha("status", "-c", str(fleet.config_dir("b") / "g01.yaml"), "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    assert json.loads(status.stdout)["leader"]["site"] == "b"

    assert fleet.stop("b") == [0]
    for group in fleet.groups:
        _, entry = fleet.store.get(f"consulha/{group}/leader")
        record = entry.json()
        assert entry.session is None and record["site"] == "b", record
        assert record["released"]["cause"] == "graceful_stop", record
