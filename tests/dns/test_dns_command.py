"""The command provider: the example for PowerDNS's HTTP API against a real PowerDNS, and every
way a command can fail (timeout, hang, garbage, missing binary, exit codes)."""

from __future__ import annotations

import dataclasses
import logging
import stat
from pathlib import Path

import pytest

from consulha.config import RecordConfig
from consulha.dns import EXIT_STALE, CommandProvider, DnsError, StaleEpochError
from lab.pair import SitePair, wait_until
from lab.pdns import PowerDnsServer
from lab.records import NAMES, answers_of, multi_record_config, server_answers
from tests.conftest_named import dns_config_for
from tests.dns.publishing import running_publisher

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pdns-api-switch"
APP = ("app.example.test.", "A")
WWW = ("www.example.test.", "CNAME")


def records_of(site_ip: str, site: str) -> tuple[RecordConfig, ...]:
    return (RecordConfig("app.example.test.", "A", site_ip, "example.test."),
            RecordConfig("www.example.test.", "CNAME", f"{site}.example.net.", "example.test."))


@pytest.fixture
def pdns(tmp_path):
    with PowerDnsServer(tmp_path / "pdns", records=("app.example.test.", "www.example.test.")) as server:
        yield server


def api_provider(pdns, site: str, site_ip: str, api_key: str | None = None) -> CommandProvider:
    cfg = dns_config_for(pdns, provider="command", server=None, tsig=None, timeout=10.0,
                         records=records_of(site_ip, site),
                         command=(str(EXAMPLE), "--api-url", pdns.api_url),
                         secret_env=(("PDNS_API_KEY", api_key or pdns.api_key),))
    return CommandProvider(cfg, site)


@pytest.mark.integration
def test_example_publishes_every_record_through_the_api(pdns):
    east = api_provider(pdns, "east", "192.0.2.1")
    serial = pdns.soa_serial()

    assert east.publish(5).changed

    state = east.read_state()
    assert (state.values, state.epoch) == (east.wanted, 5)
    assert pdns.soa_serial() > serial
    assert not east.publish(5).changed
    # What clients ask: the verify server answers the new values.
    wait_until(lambda: not east.verifier.laggards(5), 10, what="PowerDNS to answer the new values")


@pytest.mark.integration
def test_example_refuses_a_stale_epoch_and_a_newer_one_wins(pdns):
    east, west = api_provider(pdns, "east", "192.0.2.1"), api_provider(pdns, "west", "192.0.2.2")
    east.publish(5)
    assert west.publish(7).changed

    with pytest.raises(StaleEpochError) as caught:
        east.publish(6)

    assert (caught.value.ours, caught.value.stored) == (6, 7)
    assert west.read_state().values == west.wanted


@pytest.mark.integration
def test_example_refusal_exit_code_is_reported_as_stale(pdns, monkeypatch):
    east, west = api_provider(pdns, "east", "192.0.2.1"), api_provider(pdns, "west", "192.0.2.2")
    stale = east.read_state()
    west.publish(9)
    # east read before west wrote: the agent's own compare passes, the command's compare refuses.
    reads = iter([stale])
    real_read = east.read_state
    monkeypatch.setattr(east, "read_state", lambda: next(reads, None) or real_read())

    with pytest.raises(StaleEpochError) as caught:
        east.publish(8)

    assert caught.value.stored == 9
    assert west.read_state().values == west.wanted


@pytest.mark.integration
def test_example_repairs_drift(pdns):
    east = api_provider(pdns, "east", "192.0.2.1")
    east.publish(5)
    intruder = api_provider(pdns, "east", "198.51.100.9")
    intruder.publish(5)
    assert east.read_state().values[APP] == ("198.51.100.9",)

    assert east.publish(5).changed
    assert east.read_state().values == east.wanted


@pytest.mark.integration
def test_example_with_a_wrong_api_key_is_an_error_without_the_key(pdns):
    provider = api_provider(pdns, "east", "192.0.2.1", api_key="wrong-key-0123")

    with pytest.raises(DnsError, match=r"pdns-api-switch read: exit code 1: .*HTTP 401") as caught:
        provider.publish(5)

    assert "wrong-key-0123" not in str(caught.value) and "wrong-key-0123" not in repr(provider)


def script(tmp_path: Path, body: str, name: str = "switch") -> Path:
    """An executable shell script; every run appends its arguments to runs.log."""
    path = tmp_path / name
    path.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/runs.log\n{body}\n')
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_provider(tmp_path, body: str, timeout: float = 2.0, **changes) -> CommandProvider:
    cfg = dataclasses.replace(
        dns_config_for(_Loopback(), provider="command", server=None, tsig=None, verify=(), timeout=timeout),
        command=(str(script(tmp_path, body)),), **changes)
    return CommandProvider(cfg, "east")


class _Loopback:
    """Enough of a server for dns_config_for: the command provider never talks DNS itself."""

    zone, records, address, key_name, secret = "example.test.", ("app.example.test.",), ("127.0.0.1", 53), "k", ""


READ_EMPTY = 'echo \'{"records": [], "epoch": null}\''


def test_a_hanging_command_is_killed_after_the_timeout(tmp_path):
    provider = fake_provider(tmp_path, f"sleep 60 & echo $! > {tmp_path}/child.pid\nwait", timeout=0.3)

    with pytest.raises(DnsError, match=r"switch read: no answer within 0.3s \(dns.timeout\); killed it"):
        provider.read_state()

    # The script's child went with it: the whole process group is killed.
    child = int((tmp_path / "child.pid").read_text())
    wait_until(lambda: not Path(f"/proc/{child}").exists() or "Z" in Path(f"/proc/{child}/stat").read_text(),
               5, what="the child to be killed")


def test_garbage_output_is_an_error_quoting_it(tmp_path):
    provider = fake_provider(tmp_path, "echo 'HTTP/1.1 502 Bad Gateway'")

    with pytest.raises(DnsError, match=r"switch read printed no valid reply .*HTTP/1.1 502 Bad Gateway"):
        provider.read_state()


@pytest.mark.parametrize("reply", ['{"records": []}', '{"records": [], "epoch": "5"}',
                                   '{"records": [{"record": "app.example.test.", "type": "A", "values": ["x"]}], '
                                   '"epoch": 1}'])
def test_replies_outside_the_contract_are_errors(tmp_path, reply):
    provider = fake_provider(tmp_path, f"echo '{reply}'")

    with pytest.raises(DnsError, match="printed no valid reply"):
        provider.read_state()


def test_a_missing_binary_is_an_error_naming_it(tmp_path):
    provider = fake_provider(tmp_path, READ_EMPTY)
    Path(provider.cfg.command[0]).unlink()

    with pytest.raises(DnsError, match=rf"switch read: cannot run {tmp_path}/switch: No such file or directory"):
        provider.publish(5)


def test_an_error_exit_reports_the_code_and_stderr_with_secrets_masked(tmp_path):
    provider = fake_provider(tmp_path, 'echo "API said no to key $PDNS_API_KEY" >&2; exit 7',
                             secret_env=(("PDNS_API_KEY", "s3cr3t-api-key"),))

    with pytest.raises(DnsError) as caught:
        provider.read_state()

    assert str(caught.value) == "switch read: exit code 7: API said no to key ***"


def test_publish_runs_with_the_contract_arguments_and_secrets_only_in_the_environment(tmp_path):
    body = f'''case "$1" in
  read) {READ_EMPTY} ;;
  publish) env > {tmp_path}/publish.env ;;
esac'''
    provider = fake_provider(tmp_path, body, secret_env=(("PDNS_API_KEY", "s3cr3t-api-key"),))

    result = provider.publish(5)

    assert result.changed and result.before.epoch is None
    runs = (tmp_path / "runs.log").read_text().splitlines()
    assert runs == ["read --record app.example.test. --type A",
                    "publish --epoch 5 --site east --ttl 30 --record app.example.test. --type A --value 192.0.2.1"]
    environment = (tmp_path / "publish.env").read_text()
    assert "PDNS_API_KEY=s3cr3t-api-key" in environment and "CONSULHA_SITE=east" in environment


def test_the_reserved_exit_code_is_a_stale_epoch(tmp_path):
    # The command's back end stores epoch 9: the first read (before) says 4, the write refuses.
    body = f'''case "$1" in
  read) if [ -f {tmp_path}/refused ]; then echo '{{"records": [], "epoch": 9}}'; else {READ_EMPTY}; fi ;;
  publish) touch {tmp_path}/refused; exit {EXIT_STALE} ;;
esac'''
    provider = fake_provider(tmp_path, body)

    with pytest.raises(StaleEpochError) as caught:
        provider.publish(5)

    assert (caught.value.ours, caught.value.stored) == (5, 9)


def test_a_newer_stored_epoch_is_refused_before_running_publish(tmp_path):
    provider = fake_provider(tmp_path, 'echo \'{"records": [], "epoch": 9}\'')

    with pytest.raises(StaleEpochError):
        provider.publish(5)

    assert [line.split()[0] for line in (tmp_path / "runs.log").read_text().splitlines()] == ["read"]


def test_the_publisher_keeps_retrying_a_failing_command_with_backoff(tmp_path, caplog):
    body = f'''if [ ! -f {tmp_path}/fixed ]; then echo "in-house API unreachable" >&2; exit 1; fi
case "$1" in read) {READ_EMPTY} ;; publish) touch {tmp_path}/published ;; esac'''
    provider = fake_provider(tmp_path, body)
    runs = tmp_path / "runs.log"
    with caplog.at_level(logging.WARNING, logger="consulha.dns"), running_publisher(provider, 5) as publisher:
        wait_until(lambda: runs.exists() and len(runs.read_text().splitlines()) >= 3, 20, what="three tries")
        (tmp_path / "fixed").touch()
        wait_until(lambda: publisher.last is not None, 20, what="the publish after the fix")

    assert "DNS update failed (switch read: exit code 1: in-house API unreachable); retrying in" in caplog.text
    assert (tmp_path / "published").exists() and publisher.last["epoch"] == 5


@pytest.mark.integration
def test_agents_fail_over_every_record_through_the_example_command(tmp_path, consul_server):
    """End to end: two agents switch four records in two zones through PowerDNS's HTTP API."""
    with PowerDnsServer(tmp_path / "pdns", records=NAMES, extra_zones=("other.test.",)) as pdns:
        pair = SitePair(tmp_path, consul_server, pdns)
        verify = [f"127.0.0.1:{pdns.port}"]
        command = {"provider": "command", "server": None, "tsig": None,
                   "command": [str(EXAMPLE), "--api-url", pdns.api_url],
                   "secret_env": {"PDNS_API_KEY": str(pdns.api_key_file())}}
        try:
            pair.start("a", multi_record_config(pair, "a", verify, **command))
            pair.wait_leader("a")
            wait_until(lambda: server_answers(pdns.address) == answers_of("a"), 20, what="site a in DNS",
                       logs=pair.logs)
            pair.start("b", multi_record_config(pair, "b", verify, **command))
            pair.wait_candidates("a", "b")

            pair.toy("a").fail()

            wait_until(lambda: server_answers(pdns.address) == answers_of("b"), 30, what="site b in DNS",
                       logs=pair.logs)
            wait_until(lambda: "converged on every verify server" in pair.agents["b"].log_text(), 20,
                       what="b to report convergence", logs=pair.logs)
            assert pdns.api_key not in pair.agents["a"].log_text() + pair.agents["b"].log_text()
        finally:
            pair.close()
