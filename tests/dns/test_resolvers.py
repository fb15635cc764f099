"""Resolvers the leader flushes after a switch, against the real servers: Debian's unbound
(remote control plain and TLS) and PowerDNS Recursor (HTTP API), each caching in front of a
real BIND. A client that asked before the switch holds the old answer for the record's TTL
(30 s); with the resolver in dns.resolvers it gets the new one as soon as the sweep ran."""

from __future__ import annotations

import dataclasses
import time

import pytest

from consulha.agent.connectivity import resolver_probe
from consulha.config import Config, ConsulConfig, ResolverConfig, SessionConfig, UnboundTls
from consulha.dns import Rfc2136Provider
from consulha.dns.resolvers import ResolverError, answer, flush, probe
from lab.ports import free_port
from lab.resolvers import Recursor, Unbound, preflight
from tests.conftest_named import dns_config_for, named  # noqa: F401 - the fixture
from tests.dns.publishing import running_publisher

pytestmark = pytest.mark.integration

RECORD = "app.example.test."
OLD, NEW = "192.0.2.1", "192.0.2.2"


@pytest.fixture(autouse=True)
def resolvers_installed():
    reason = preflight()
    if reason:
        pytest.fail(f"resolver tests need the real servers: {reason}")


def unbound_config(server: Unbound, **changes) -> ResolverConfig:
    tls = UnboundTls(**server.files()) if server.tls else None
    return dataclasses.replace(ResolverConfig(kind="unbound", control=server.control, tls=tls,
                                              address=server.address), **changes)


def recursor_config(server: Recursor, **changes) -> ResolverConfig:
    return dataclasses.replace(ResolverConfig(kind="pdns_recursor", url=server.api_url, api_key=server.api_key,
                                              address=server.address), **changes)


@pytest.fixture(params=["unbound", "unbound-tls", "pdns_recursor"])
def resolver(request, named, tmp_path):  # noqa: F811 - the fixture
    if request.param == "pdns_recursor":
        server = Recursor(tmp_path / "recursor", named.zone, named.address)
        make = recursor_config
    else:
        server = Unbound(tmp_path / "unbound", named.zone, named.address, tls=request.param == "unbound-tls")
        make = unbound_config
    with server:
        yield server, make(server)


def wait_for(condition, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")


def cache_old_value(named, config: ResolverConfig) -> None:  # noqa: F811
    """DNS holds OLD and the resolver has cached it (as a client's lookup would)."""
    provider = Rfc2136Provider(dns_config_for(named, value=OLD), "a")
    provider.publish(1)
    assert answer(config, RECORD, "A", 2.0) == (OLD,)


def test_the_sweep_flushes_after_the_switch_and_the_resolver_answers_the_new_value(named, resolver):  # noqa: F811
    server, config = resolver
    cache_old_value(named, config)
    provider = Rfc2136Provider(dns_config_for(named, value=NEW, resolvers=(config,)), "b")
    started = time.monotonic()
    with running_publisher(provider, epoch=2) as publisher:
        report = wait_for(lambda: (publisher.last or {}).get("resolvers", {}).get(config.name, {}).get("converged")
                          and publisher.last["resolvers"][config.name], 10, "the sweep to converge")
    took = time.monotonic() - started
    assert answer(config, RECORD, "A", 2.0) == (NEW,)
    assert report["last_flush"] and report["error"] is None and 0 < report["converged_s"] < took
    metrics = publisher.metrics.exposition().decode()
    assert f'consulha_resolver_converged{{group="app",resolver="{config.name}",site="b"}} 1.0' in metrics
    assert f'consulha_resolver_flushes_total{{group="app",resolver="{config.name}",result="ok",site="b"}} 1.0' \
        in metrics


def test_without_a_flush_the_resolver_keeps_the_old_value_for_the_ttl(named, resolver):  # noqa: F811
    """What the sweep is for: the same switch, no resolver configured."""
    server, config = resolver
    cache_old_value(named, config)
    Rfc2136Provider(dns_config_for(named, value=NEW), "b").publish(2)
    assert answer(config, RECORD, "A", 2.0) == (OLD,)
    flush(config, RECORD, 2.0)
    assert answer(config, RECORD, "A", 2.0) == (NEW,)


def test_validate_connect_reaches_the_control_channel_and_flushes_nothing(named, resolver):  # noqa: F811
    server, config = resolver
    cache_old_value(named, config)
    Rfc2136Provider(dns_config_for(named, value=NEW), "b").publish(2)
    assert ("unbound 1." if config.kind == "unbound" else "PowerDNS Recursor 4.") in probe(config, 2.0)
    site = Config(path="site.yaml", site="b", group="app", key_prefix="consulha/app", consul=ConsulConfig(),
                  session=SessionConfig(), services=(), dns=dns_config_for(named, value=NEW, resolvers=(config,)))
    name, ok, detail = resolver_probe(site, config)
    assert ok and f"answers {RECORD} A {OLD}" in detail, detail   # still cached: nothing was flushed


def wrong_ones(server, config: ResolverConfig, tmp_path) -> list[tuple[ResolverConfig, str]]:
    """Configs of the running `server` that must fail, with what the error says."""
    closed = ("127.0.0.1", free_port())
    if config.kind == "pdns_recursor":
        return [(dataclasses.replace(config, api_key="wrong"), "HTTP 401 Unauthorized: check api_key"),
                (dataclasses.replace(config, url=f"http://127.0.0.1:{closed[1]}"), "Connection refused")]
    cases = [(dataclasses.replace(config, control=closed), "Connection refused")]
    if server.tls:
        cases.append((dataclasses.replace(config, tls=None), "does its control-use-cert match plain"))
        other = Unbound(tmp_path / "other-certs", server.zone, server.upstream, tls=True)
        other._write_files()   # another key pair: unbound refuses it
        cases.append((dataclasses.replace(config, tls=UnboundTls(**other.files())), "TLS with the control port failed"))
    else:
        cases.append((dataclasses.replace(config, tls=UnboundTls(**unbound_files_of(tmp_path))),
                      "does its control-use-cert match TLS"))
    return cases


def unbound_files_of(tmp_path) -> dict[str, str]:
    certs = Unbound(tmp_path / "certs", "example.test", ("127.0.0.1", 53), tls=True)
    certs._write_files()
    return certs.files()


def test_an_unreachable_or_unauthorised_control_channel_is_a_clear_error(named, resolver, tmp_path):  # noqa: F811
    server, config = resolver
    for wrong, message in wrong_ones(server, config, tmp_path):
        with pytest.raises(ResolverError) as caught:
            flush(wrong, RECORD, 2.0)
        assert message in str(caught.value) and wrong.name in str(caught.value), (wrong, caught.value)
        assert "wrong" not in str(caught.value)   # never the key


def test_a_failing_resolver_never_blocks_or_repeats_the_write_and_is_retried(named, tmp_path):  # noqa: F811
    """unbound is down when the switch happens: DNS is written once, the leader keeps leading,
    the flush fails (warning, metric, backoff) and succeeds once unbound is up."""
    server = Unbound(tmp_path / "late", named.zone, named.address)
    config = unbound_config(server)
    provider = Rfc2136Provider(dns_config_for(named, value=NEW, resolvers=(config,)), "b")
    with running_publisher(provider, epoch=2) as publisher:
        wait_for(lambda: (publisher.last or {}).get("resolvers", {}).get(config.name, {}).get("error"),
                 10, "the failed flush")
        metrics = publisher.metrics.exposition().decode()
        assert f'consulha_resolver_flushes_total{{group="app",resolver="{config.name}",result="failed",site="b"}}' \
            in metrics
        with server:
            report = wait_for(lambda: publisher.last["resolvers"][config.name]["converged"]
                              and publisher.last["resolvers"][config.name], 15, "the retried flush")
        assert publisher.election.demoted is None
        written = publisher.metrics.exposition().decode()
    assert 'consulha_dns_updates_total{group="app",result="written",site="b"} 1.0' in written
    assert report["error"] is None and report["last_flush"]
