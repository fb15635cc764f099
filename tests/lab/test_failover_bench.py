"""bench/failover.py's scenario names: any fault, with or without a leader_probes suffix."""

import pytest

from bench.failover import FAULTS, PROBE_SUFFIXES, fault_of


@pytest.mark.parametrize("scenario, fault", [
    ("check", "check"), ("check-fbc3-own", "check-fbc3"), ("check-consul-only", "check"),
    ("sigkill-consul-only", "sigkill"), ("handover-own", "handover"), ("stop", "stop"),
])
def test_a_suffix_names_the_setting_not_the_fault(scenario, fault):
    assert fault_of(scenario) == fault and fault in FAULTS


def test_every_suffix_sets_leader_probes_one_way():
    assert PROBE_SUFFIXES == {"-own": True, "-consul-only": False}
