"""End-to-end behaviour of two agents on a real Consul and a real BIND."""

from __future__ import annotations

import signal
import time

import pytest

from consulha.consul.control import read_history
from consulha.core.control import ControlKeys
from lab.pair import wait_until
from lab.site import http_service

pytestmark = pytest.mark.integration


def led_for(lab, site: str, seconds: float) -> bool:
    """`site` has led for `seconds` (transition times are CLOCK_MONOTONIC, shared by processes)."""
    entered = [t["monotonic"] for t in lab.transitions() if t["site"] == site and t["role"] == "leader"]
    return bool(entered) and time.monotonic() - entered[-1] >= seconds


def wait_history(lab, entries: int) -> list[dict]:
    """The history once it holds `entries` changes: a new leader writes DNS first and appends
    its win to the history after, so DNS can answer before the history says so."""
    def read():
        history, _ = read_history(lab.store, ControlKeys("consulha/app"))
        return history if len(history) >= entries else None
    return wait_until(read, 10, what=f"{entries} history entries", logs=lab.logs)


def test_one_leader_among_two_and_dns_names_it(lab):
    lab.start("a")
    first = lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    time.sleep(1.5)  # several confirm and standby cycles: nothing may change
    assert lab.leader()["site"] == "a"
    assert lab.leader()["epoch"] == first["epoch"]
    roles = {(t["site"], t["role"]) for t in lab.transitions()}
    assert ("a", "leader") in roles and ("b", "leader") not in roles
    assert ("b", "standby") in roles
    assert lab.named.secret not in lab.logs()


@pytest.mark.parametrize("leader_probes,cause", [
    (True, "check failed: api (own probe)"),  # a found it first and released the lock
    (False, "check failed: api"),             # Consul invalidated a's session: b read a's checks
])
def test_failing_http_check_moves_leadership_and_dns(lab, leader_probes, cause):
    lab.start("a", lab.config("a", election={"leader_probes": leader_probes}))
    first = lab.wait_leader("a")
    lab.start("b", lab.config("b", election={"leader_probes": leader_probes}))
    lab.wait_dns("a")
    lab.wait_candidates("a", "b")
    # A leader's registration with one failure more before critical follows its promotion by a
    # pass, and its probes start with it: a failure in its first second may reach Consul first.
    wait_until(lambda: led_for(lab, "a", 2.0), 10, what="a led for 2 s")
    lab.toy("a").fail()
    second = lab.wait_leader("b")
    lab.wait_dns("b")
    assert second["epoch"] > first["epoch"]
    history = wait_history(lab, 3)   # with the failure of a (flap damping)
    assert [h["cause"] for h in history if h["to"]] == ["initial election", cause], lab.logs()
    # ... and a's loss, counted for flap damping (the failure record, docs/damping.md).
    failures = [h for h in history if h["kind"] == "failure"]
    assert len(failures) == 1 and failures[0]["epoch"] == first["epoch"], history
    demotions = [t for t in lab.transitions() if t["site"] == "a" and t["old"] == "leader"]
    assert demotions, lab.logs()


def _two_sites_with_a_leading(lab, **config_a):
    lab.start("a", lab.config("a", **config_a) if config_a else None)
    first = lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    return first


def test_failing_script_check_moves_leadership(lab, tmp_path):
    flag = tmp_path / "worker-healthy"
    flag.write_text("ok")
    services = [{"name": "worker",
                 "check": {"script": f"sh -c 'test -e {flag} || exit 2'", "interval": "500ms",
                           "timeout": "2s"}}]
    _two_sites_with_a_leading(lab, services=services)
    checks = lab.store.local_checks()
    assert checks["service:app-a-worker"]["Type"] == "ttl"  # pushed by the agent, not a Consul script check
    flag.unlink()
    lab.wait_leader("b")
    lab.wait_dns("b")
    # a stepped down on its own verdict; Consul's copy follows with the next pushed result.
    status = wait_until(lambda: (s := lab.store.local_checks()["service:app-a-worker"])["Status"] == "critical"
                        and s, 5, what="a's script check critical in Consul")
    assert "exit 2" in status["Output"]


def test_sigkill_of_the_leader_hands_over_once_its_heartbeat_fails(lab):
    first = _two_sites_with_a_leading(lab)
    killed_at = time.monotonic()
    lab.agents["a"].kill()
    second = lab.wait_leader("b", timeout=30)
    took = time.monotonic() - killed_at
    lab.wait_dns("b")
    history = wait_history(lab, 3)   # with the failure of a (flap damping)
    assert [h for h in history if h["to"]][-1]["cause"] == "agent lost heartbeat", history
    # The killed leader could not count its own failure: its successor did.
    assert history[-1]["cause"] == (f"site a lost leadership at epoch {first['epoch']}: agent lost heartbeat; "
                                    f"damped: 1 failure just now, hold-down 60 s left"), history
    assert second["epoch"] > first["epoch"]
    # Consul invalidated the session (two refused probes), which puts lock-delay (1 s) on the
    # key: a faster handover would mean the lock was not held by a health-tied session at all.
    assert took >= 1.0, took
    heartbeat = lab.store.local_checks()["consulha-app-a-heartbeat"]
    assert heartbeat["Status"] == "critical" and "refused" in heartbeat["Output"], heartbeat


def test_a_leader_takes_its_candidate_key_once_it_is_free(lab):
    # Another session holds candidates/a when a starts, as a's previous session would during
    # its lock-delay: a leads without the key and takes it as soon as it is free.
    key = "consulha/app/candidates/a"
    blocker = lab.store.create_session("blocker", [], ttl=10, lock_delay=0)
    assert lab.store.acquire(key, b"{}", blocker)
    lab.start("a")
    leader = lab.wait_leader("a")
    assert lab.store.get(key)[1].session == blocker
    lab.store.destroy_session(blocker)
    wait_until(lambda: lab.store.get(key)[1].session == leader["session"], 10,
               what="a to hold its candidate key", logs=lab.logs)


def test_graceful_stop_frees_the_candidate_key_without_lock_delay(lab):
    # A session that ends while it holds a key (destroyed, or invalidated because the heartbeat
    # lapsed while the agent was stopping) puts lock-delay (1 s here) on it; an explicit release
    # does not. The agent keeps its heartbeat until the session is gone and releases first, so
    # a restarted agent can take its candidate key at once.
    _two_sites_with_a_leading(lab)
    assert lab.agents["b"].stop() == 0
    probe = lab.store.create_session("probe", [], ttl=10, lock_delay=0)
    assert lab.store.acquire("consulha/app/candidates/b", b"{}", probe)


def test_graceful_stop_releases_at_once(lab):
    _two_sites_with_a_leading(lab)
    code = lab.agents["a"].stop()
    assert code == 0, lab.logs()
    lab.wait_leader("b", timeout=8)  # less than ttl (10 s): the release, not the TTL, moved it
    lab.wait_dns("b")
    assert "released the lock" in lab.agents["a"].log_text()
    history = wait_history(lab, 2)
    assert history[-1]["cause"] == "graceful stop" and history[-1]["from"] == "a"
    # The stopped site left no services behind in Consul.
    assert not [s for s in lab.store.local_services() if s.startswith("app-a-")]


def test_stale_epoch_in_dns_makes_the_leader_demote_without_writing(lab, make_dns_config):
    from consulha.dns import make_provider

    lab.start("a")
    first = lab.wait_leader("a")
    lab.wait_dns("a")
    # A newer leader (epoch far ahead) wrote DNS for site b behind a's back.
    newer = make_provider(make_dns_config(value="192.0.2.2"), "b")
    newer.publish(first["epoch"] + 1_000_000)
    # a's next reconcile (forced by restarting its DNS view: drift check every 10 s) must see the
    # higher epoch, refuse to write and demote.
    wait_until(lambda: any(t["site"] == "a" and t["old"] == "leader" and "stale" in t["reason"]
                           for t in lab.transitions()), 15, what="stale demotion", logs=lab.logs)
    assert lab.dns_answer() == ("192.0.2.2",)
    assert newer.read_state().epoch == first["epoch"] + 1_000_000


def test_dns_drift_is_repaired_by_the_leader(lab, make_dns_config):
    from consulha.dns import make_provider

    lab.start("a")
    leader = lab.wait_leader("a")
    lab.wait_dns("a")
    # Somebody with the key rewrites the record under the leader's epoch (manual drift).
    make_provider(make_dns_config(value="198.51.100.7"), "a").publish(leader["epoch"])
    assert lab.dns_answer() == ("198.51.100.7",)
    lab.wait_dns("a", timeout=15)  # reconcile_interval is 10 s
    assert lab.leader()["epoch"] == leader["epoch"]


def test_consul_restart_under_a_running_agent(lab):
    first = _two_sites_with_a_leading(lab)
    lab.consul.restart()
    leader = lab.wait_leader(timeout=40)
    lab.wait_dns(leader["site"], timeout=20)
    lab.wait_candidates("a", "b", timeout=30)
    assert leader["epoch"] >= first["epoch"]
    for agent in lab.agents.values():
        assert agent.running(), lab.logs()
        assert "Traceback" not in agent.log_text()


def test_consul_down_at_start_is_retried_not_a_crash(tmp_path, named):
    from lab.consul import ConsulDev
    from lab.pair import SitePair

    consul = ConsulDev(tmp_path / "late-consul")  # ports chosen, not started yet
    pair = SitePair(tmp_path, consul, named)
    try:
        agent = pair.start("a")
        wait_until(lambda: "consul unavailable" in agent.log_text(), 10, what="a retry message")
        time.sleep(2)
        assert agent.running()
        consul.start()
        pair.wait_leader("a", timeout=20)
        pair.wait_dns("a")
        assert "Traceback" not in agent.log_text()
    finally:
        pair.close()
        consul.stop()


def test_second_signal_exits_at_once(lab):
    config = lab.config("a", hooks={"on_demote": "sleep 20", "timeout": "30s"})
    agent = lab.start("a", config)
    lab.wait_leader("a")
    agent.send(signal.SIGTERM)
    time.sleep(1.0)
    assert agent.running(), "the graceful stop should still wait for the on_demote hook"
    agent.send(signal.SIGTERM)
    assert agent.process.wait(5) == 1


def test_a_short_freeze_fences_the_leader_then_it_resumes_at_the_same_epoch(lab):
    first = _two_sites_with_a_leading(lab)
    serial = lab.soa_serial()
    lab.agents["a"].send(signal.SIGSTOP)
    time.sleep(1.5)  # past the 0.8 s lease, well inside heartbeat_ttl (3 s): the lock stays a's
    lab.agents["a"].send(signal.SIGCONT)
    wait_until(lambda: any(t["site"] == "a" and "lease restored" in t["reason"]
                           for t in lab.transitions()), 10, what="a to resume", logs=lab.logs)
    reasons = [t["reason"] for t in lab.transitions() if t["site"] == "a"]
    assert any(r.startswith("self-fenced") for r in reasons), reasons
    assert lab.leader()["epoch"] == first["epoch"] and lab.leader()["site"] == "a"
    time.sleep(0.5)
    assert lab.soa_serial() == serial  # same epoch, same record: nothing to write


@pytest.mark.parametrize("how", ["delete", "release"])
def test_operator_freeing_the_key_never_gives_two_leaders(lab, how):
    first = _two_sites_with_a_leading(lab)
    if how == "delete":
        lab.store.delete(lab.leader_key)
    else:
        lab.store.release(lab.leader_key, first["session"], b'{"site": "a"}')
    second = lab.wait_leader(timeout=15)
    assert second["epoch"] > first["epoch"]
    lab.wait_dns(second["site"])
    leaders = set()
    for move in sorted(lab.transitions(), key=lambda t: t["monotonic"]):
        if move["role"] == "leader":
            leaders.add(move["site"])
        elif move["old"] == "leader":
            leaders.discard(move["site"])
        assert len(leaders) <= 1, lab.transitions()


def test_debounced_http_check_rides_out_a_short_failure_and_fails_over_on_a_long_one(lab):
    """failures_before_critical: 3 at interval 1 s: one or two failed probes move nothing
    (Consul itself debounces HTTP checks), three in a row fail over."""
    service = http_service("api", lab.toy("a").url)
    service["check"]["failures_before_critical"] = 3
    first = _two_sites_with_a_leading(lab, services=[service])
    # Consul 1.8.7 counts failures only once the check has passed since it was registered, and
    # the agent re-registers its services when it becomes leader (the UI tags): let it pass.
    time.sleep(2.5)
    lab.toy("a").fail()
    time.sleep(1.5)  # at most two probes at 1 s intervals see the failure
    lab.toy("a").recover()
    time.sleep(3)
    assert lab.leader()["site"] == "a" and lab.leader()["epoch"] == first["epoch"]
    lab.toy("a").fail()
    lab.wait_leader("b")
    lab.wait_dns("b")


def test_debounced_script_check_counts_failures_in_the_agent(lab, tmp_path):
    flag = tmp_path / "worker-healthy"
    flag.write_text("ok")
    services = [{"name": "worker",
                 "check": {"script": f"sh -c 'test -e {flag} || exit 2'", "interval": "500ms",
                           "timeout": "2s", "failures_before_critical": 4}}]
    first = _two_sites_with_a_leading(lab, services=services)
    flag.unlink()
    time.sleep(0.8)  # one or two failed runs of four needed
    flag.write_text("ok")
    time.sleep(2)
    assert lab.leader()["site"] == "a" and lab.leader()["epoch"] == first["epoch"], lab.logs()
    flag.unlink()
    lab.wait_leader("b")
