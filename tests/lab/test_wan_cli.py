"""bench/wan.py's options per profile and its merging of invocations into one wan.json."""

import pytest

from bench.wan import RUNS, merged, per_profile


def test_runs_for_every_profile_or_some_over_the_defaults():
    assert per_profile(None, RUNS, int) == RUNS
    assert set(per_profile("3", RUNS, int).values()) == {3}
    chosen = per_profile("lan=5,bad=3", RUNS, int)
    assert (chosen["lan"], chosen["bad"], chosen["regional"]) == (5, 3, RUNS["regional"])
    with pytest.raises(ValueError, match="unknown profile 'mars'"):
        per_profile("mars=1", RUNS, int)


def measured(valid):
    return {"valid": valid, "invalid_reasons": [] if valid else ["delayer in ha lags"]}


def test_a_faults_only_invocation_keeps_the_soak_and_the_other_faults():
    soak_run = {"profile": {"rtt_ms": 30}, "soak": {"seconds": 600, "emulator": measured(True)},
                "faults": {}, "emulator_after_faults": [], "durations_s": {"soak_s": 610}}
    check_run = {"profile": {"rtt_ms": 30}, "soak": None, "faults": {"check": {"consulha": {"runs": 10}}},
                 "emulator_after_faults": [{"faults": ["check"], "measurement": measured(False)}],
                 "durations_s": {"check_run_s": 12}}
    sigkill_run = {**check_run, "faults": {"sigkill": {"consulha": {"runs": 10}}},
                   "emulator_after_faults": [{"faults": ["sigkill"], "measurement": measured(True)}],
                   "durations_s": {"sigkill_run_s": 20}}
    once = merged(merged(None, soak_run), check_run)
    assert once["soak"]["seconds"] == 600 and set(once["faults"]) == {"check"}
    assert not once["emulator_verdict"]["valid"]            # the faults' measurement lagged
    twice = merged(once, sigkill_run)
    assert set(twice["faults"]) == {"check", "sigkill"}
    assert twice["durations_s"] == {"soak_s": 610, "check_run_s": 12, "sigkill_run_s": 20}
    assert not twice["emulator_verdict"]["valid"]           # the check series still stands on it
    remeasured = [{"faults": ["check"], "measurement": measured(True)}]
    again = merged(twice, {**check_run, "emulator_after_faults": remeasured})
    assert again["emulator_verdict"]["valid"]               # the check series measured again, validly


def test_an_invocation_of_one_system_keeps_the_others_figures_and_measurements():
    """The check series with own probes and without are two invocations (one consulha per lab):
    the second replaces its own column only, and the first's emulator measurement stays."""
    both = {"profile": {"rtt_ms": 30}, "soak": None, "durations_s": {},
            "faults": {"check": {"consulha": {"runs": 10}, "zookeeper": {"runs": 10}}},
            "emulator_after_faults": [{"faults": ["check"], "systems": ["consulha", "zookeeper"],
                                       "measurement": measured(True)}]}
    old_path = {**both, "faults": {"check": {"consulha-consul-only": {"runs": 10}}},
                "emulator_after_faults": [{"faults": ["check"], "systems": ["consulha-consul-only"],
                                           "measurement": measured(False)}]}
    result = merged(merged(None, both), old_path)
    assert set(result["faults"]["check"]) == {"consulha", "zookeeper", "consulha-consul-only"}
    assert len(result["emulator_after_faults"]) == 2
    assert not result["emulator_verdict"]["valid"]          # the old path's series lagged
    again = merged(result, {**old_path, "emulator_after_faults": [
        {"faults": ["check"], "systems": ["consulha-consul-only"], "measurement": measured(True)}]})
    assert len(again["emulator_after_faults"]) == 2 and again["emulator_verdict"]["valid"]


def test_a_record_before_systems_were_kept_counts_for_consulha_and_zookeeper():
    legacy = {"profile": {}, "soak": None, "durations_s": {},
              "faults": {"check": {"consulha": {"runs": 10}, "zookeeper": {"runs": 10}}},
              "emulator_after_faults": [{"faults": ["check"], "measurement": measured(False)}]}
    rerun = {**legacy, "faults": {"check": {"consulha": {"runs": 10}, "zookeeper": {"runs": 10}}},
             "emulator_after_faults": [{"faults": ["check"], "systems": ["consulha", "zookeeper"],
                                        "measurement": measured(True)}]}
    assert merged(merged(None, legacy), rerun)["emulator_verdict"]["valid"]
