"""End-to-end behaviour of two agents on a real Consul and a real BIND."""

from __future__ import annotations

import signal
import time

import pytest

from tests.conftest import SITE_VALUES, wait_until

pytestmark = pytest.mark.integration


def test_one_leader_among_two_and_dns_names_it(lab):
    lab.start("a")
    first = lab.wait_leader("a")
    lab.start("b")
    wait_until(lambda: len(lab.store.get_prefix("consulha/app/candidates/")[1]) == 2, 15,
               what="both candidates")
    lab.wait_dns("a")
    time.sleep(1.5)  # several confirm and standby cycles: nothing may change
    assert lab.leader()["site"] == "a"
    assert lab.leader()["epoch"] == first["epoch"]
    roles = {(t["site"], t["role"]) for t in lab.transitions()}
    assert ("a", "leader") in roles and ("b", "leader") not in roles
    assert ("b", "standby") in roles


def test_failing_http_check_moves_leadership_and_dns(lab):
    lab.start("a")
    first = lab.wait_leader("a")
    lab.start("b")
    lab.wait_dns("a")
    wait_until(lambda: len(lab.store.get_prefix("consulha/app/candidates/")[1]) == 2, 15,
               what="both candidates")
    lab.toys["a"].fail()
    second = lab.wait_leader("b")
    lab.wait_dns("b")
    assert second["epoch"] > first["epoch"]
    demotions = [t for t in lab.transitions() if t["site"] == "a" and t["old"] == "leader"]
    assert demotions, lab.logs()
