"""Config loading: defaults, durations, and errors that name file, line and key path."""

import os
import pathlib
import re

import pytest

from consulha.config import ConfigError, load_config
from consulha.core.durations import format_duration, parse_duration
from consulha.core.keys import Keys
from consulha.ops.listen import HostListenProbe

SECRET = "c2VjcmV0LXZhbHVlLW5vdC10by1sZWFr"  # base64 of "secret-value-not-to-leak"
TOKEN = "3f1c2b9a-token-not-to-leak"
CONF_DIR = pathlib.Path(__file__).resolve().parents[2] / "conf"

BASE = """\
site: a
group: app
consul:
  address: http://127.0.0.1:8500
session:
  ttl: 10s
  lock_delay: 1s
  heartbeat_ttl: 3s
services:
  - name: api
    port: 8080
    check:
      http: http://127.0.0.1:8080/health
      interval: 1s
  - name: worker
    check: {script: "checks/check_process.sh worker", interval: 2s, timeout: 2s}
  - name: db
    check: {tcp: "127.0.0.1:5432", interval: 1s}
dns:
  zone: example.test
  record: app.example.test.
  type: A
  value: 192.0.2.1
  server: 127.0.0.1:53
  tsig: {name: consulha-key, secret_file: tsig.key}
"""


@pytest.fixture(autouse=True)
def no_token_in_environment(monkeypatch):
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)


def write_config(directory: pathlib.Path, text: str, secret_mode: int = 0o600) -> pathlib.Path:
    """Write text as site.yaml next to a tsig.key holding SECRET."""
    key_file = directory / "tsig.key"
    key_file.write_text(SECRET + "\n")
    key_file.chmod(secret_mode)
    path = directory / "site.yaml"
    path.write_text(text)
    return path


def edited(old: str, new: str) -> str:
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def line_containing(text: str, fragment: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if fragment in line)


SERVICES_BLOCK = BASE[BASE.index("services:"):BASE.index("dns:")]


def test_full_config_with_defaults(tmp_path):
    config = load_config(write_config(tmp_path, BASE))

    assert (config.site, config.group, config.key_prefix) == ("a", "app", "consulha/app")
    consul = config.consul
    assert (consul.scheme, consul.host, consul.port, consul.token) == ("http", "127.0.0.1", 8500, None)
    assert (config.session.ttl, config.session.lock_delay, config.session.heartbeat_ttl) == (10.0, 1.0, 3.0)
    api, worker, db = config.services
    assert (api.name, api.port, api.check.kind) == ("api", 8080, "http")
    assert api.check.target == "http://127.0.0.1:8080/health"
    assert (api.check.interval, api.check.timeout) == (1.0, 1.0)
    assert (worker.check.kind, worker.check.interval) == ("script", 2.0)
    assert worker.check.target == "checks/check_process.sh worker"
    assert (db.port, db.check.kind, db.check.target) == (None, "tcp", "127.0.0.1:5432")
    dns = config.dns
    assert (dns.zone, dns.record) == ("example.test.", "app.example.test.")
    assert dns.fence_record == "_consulha.app.example.test."
    assert (dns.server, dns.verify) == (("127.0.0.1", 53), (("127.0.0.1", 53),))
    assert (dns.ttl, dns.fencing, dns.provider) == (30, True, "rfc2136")
    assert (dns.reconcile_interval, dns.timeout) == (10.0, 2.0)
    assert (dns.tsig.name, dns.tsig.algorithm, dns.tsig.secret) == ("consulha-key", "hmac-sha256", SECRET)
    assert (config.hooks.on_promote, config.hooks.timeout) == (None, 30.0)
    assert (config.election.preferred_site, config.election.failback_delay) == (None, 300.0)
    assert config.warnings == ()


def test_check_timeout_defaults_to_interval_capped_at_10s(tmp_path):
    text = edited("      interval: 1s\n", "      interval: 30s\n")
    text = text.replace("interval: 2s, timeout: 2s", "interval: 300ms")
    services = load_config(write_config(tmp_path, text)).services
    assert services[0].check.timeout == 10.0
    assert services[1].check.timeout == 0.3


def test_optional_values_and_normalisation(tmp_path):
    text = edited("  tsig: {name: consulha-key, secret_file: tsig.key}\n", """\
  tsig: null
  type: aaaa
  ttl: 2m
  server: "[2001:db8::53]"
  verify: ["192.0.2.53:5353", ns2.example.test]
hooks: {on_promote: "systemctl start app", timeout: 1m}
election: {preferred_site: a, failback_delay: 1m30s}
""")
    text = text.replace("  type: A\n  value: 192.0.2.1\n  server: 127.0.0.1:53\n", "  value: 2001:DB8:0::1\n")
    text = text.replace("  ttl: 10s\n", "  ttl: 1h\n")
    config = load_config(write_config(tmp_path, text))
    assert (config.dns.type, config.dns.value, config.dns.ttl, config.dns.tsig) == ("AAAA", "2001:db8::1", 120, None)
    assert config.dns.server == ("2001:db8::53", 53)
    assert config.dns.verify == (("192.0.2.53", 5353), ("ns2.example.test", 53))
    assert (config.hooks.on_promote, config.hooks.timeout) == ("systemctl start app", 60.0)
    assert (config.election.preferred_site, config.election.failback_delay, config.session.ttl) == ("a", 90.0, 3600.0)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("500ms", 0.5), ("10s", 10.0), ("2m", 120.0), ("1h", 3600.0), ("1.5s", 1.5), ("1m30s", 90.0),
        (" 7 ", 7.0), (3, 3.0), (0.25, 0.25),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text", ["", "s", "10x", "-1s", "1.s", "10 s", "ms10", "1h-5m", True, None, -2, float("inf"), float("nan")]
)
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(
    "seconds, text",
    [(0.5, "500ms"), (10, "10s"), (120, "2m"), (3600, "1h"), (1.5, "1.5s"), (90, "90s"), (0, "0s"), (0.1, "100ms")],
)
def test_format_duration_round_trips(seconds, text):
    assert format_duration(seconds) == text
    assert parse_duration(text) == pytest.approx(seconds)


ERROR_CASES = {
    "unknown top-level key": ("group: app\n", "group: app\ngrop: app  # <-\n", "grop", "unknown key"),
    "unknown nested key": (
        "  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n  tll: 10s  # <-\n",
        "session.tll", "did you mean 'ttl'",
    ),
    "unknown key in a list entry": (
        "    port: 8080\n", "    port: 8080\n    prot: 1  # <-\n",
        "services[0].prot", "unknown key",
    ),
    "duplicate key": ("  ttl: 10s\n", "  ttl: 10s\n  ttl: 20s  # <-\n", "session.ttl", "duplicate key"),
    "missing top-level key": ("site: a\ngroup: app\n", "site: a  # <-\n", "group", "required"),
    "missing nested key": ("dns:\n  zone: example.test\n", "dns:  # <-\n", "dns.zone", "required"),
    "missing service name": ("  - name: worker\n", "  - port: 1  # <-\n", "services[1].name", "required"),
    "bad site name": ("site: a\n", "site: Site_A  # <-\n", "site", "'Site_A' is not a valid name"),
    "site not a string": ("site: a\n", "site: no  # <-\n", "site", "got a boolean"),
    "ttl out of range": ("  ttl: 10s\n", "  ttl: 5s  # <-\n", "session.ttl", "between 10s and 24h, got 5s"),
    "bad duration": ("  ttl: 10s\n", "  ttl: 10 minutes  # <-\n", "session.ttl", "invalid duration"),
    "lock_delay too small": (
        "  lock_delay: 1s\n", "  lock_delay: 200ms  # <-\n",
        "session.lock_delay", "only grace a leader has",
    ),
    "lock_delay too large": (
        "  lock_delay: 1s\n", "  lock_delay: 2m  # <-\n",
        "session.lock_delay", "between 0s and 1m",
    ),
    "heartbeat_ttl above ttl": (
        "  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 11s  # <-\n",
        "session.heartbeat_ttl", "must not exceed session.ttl",
    ),
    "node check listed twice": (
        "  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n  node_checks: [serfHealth, serfHealth]  # <-\n",
        "session.node_checks", "lists a check twice",
    ),
    "heartbeat address not an IP": (
        "  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n  heartbeat_address: localhost  # <-\n",
        "session.heartbeat_address", "'localhost' is not an IP address",
    ),
    "node checks not a list": (
        "  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n  node_checks: serfHealth  # <-\n",
        "session.node_checks", "expected a list",
    ),
    "two check kinds": (
        '{script: "checks/check_process.sh worker", interval',
        '{script: "checks/check_process.sh worker", tcp: "127.0.0.1:1", interval',
        "services[1].check", "exactly one of http, tcp, script, not tcp and script",
    ),
    "no check kind": (
        'check: {script: "checks/check_process.sh worker", ', "check: {",
        "services[1].check", "needs one of http, tcp, script",
    ),
    "no check at all": (
        '  - name: worker\n    check: {script: "checks/check_process.sh worker", interval: 2s, timeout: 2s}\n',
        "  - name: worker  # <-\n",
        "services[1].check", "required",
    ),
    "duplicate service names": (
        "  - name: db\n", "  - name: api  # <-\n",
        "services[2].name", "duplicate service name 'api' (first used on line 10)",
    ),
    "no services": (SERVICES_BLOCK, "services: []  # <-\n", "services", "at least one"),
    "port out of range": ("    port: 8080\n", "    port: 80800  # <-\n", "services[0].port", "between 1 and 65535"),
    "tcp check without port": ('tcp: "127.0.0.1:5432"', 'tcp: "127.0.0.1"', "services[2].check.tcp", "needs a port"),
    "http check not a URL": (
        "      http: http://127.0.0.1:8080/health\n", "      http: 127.0.0.1:8080  # <-\n",
        "services[0].check.http", "not an http:// or https:// URL",
    ),
    "zero check timeout": ("timeout: 2s}", "timeout: 0s}", "services[1].check.timeout", "greater than 0"),
    "check interval too short": (
        "interval: 2s,", "interval: 10ms,",
        "services[1].check.interval", "between 100ms and 1h",
    ),
    "bad IP for type A": ("  value: 192.0.2.1\n", "  value: 192.0.2.300  # <-\n", "dns.value", "not an IPv4 address"),
    "IPv4 for type AAAA": (
        "  type: A\n  value: 192.0.2.1\n", "  type: AAAA\n  value: 192.0.2.1  # <-\n",
        "dns.value", "not an IPv6 address",
    ),
    "record outside zone": (
        "  record: app.example.test.\n", "  record: app.example.org.  # <-\n",
        "dns.record", "not inside zone example.test.",
    ),
    "CNAME at the apex": (
        "  record: app.example.test.\n  type: A\n  value: 192.0.2.1\n",
        "  record: example.test.  # <-\n  type: CNAME\n  value: a.example.test\n",
        "dns.record", "zone apex",
    ),
    "unknown record type": ("  type: A\n", "  type: MX  # <-\n", "dns.type", "not one of A, AAAA, CNAME"),
    "other provider": ("dns:\n", "dns:\n  provider: route53  # <-\n", "dns.provider", "not one of rfc2136"),
    "verify not a list": (
        "  server: 127.0.0.1:53\n", "  server: 127.0.0.1:53\n  verify: 127.0.0.1:53  # <-\n",
        "dns.verify", "expected a list",
    ),
    "bad verify entry": (
        "  server: 127.0.0.1:53\n",
        "  server: 127.0.0.1:53\n  verify:\n    - 127.0.0.1:53\n    - 127.0.0.1:99999  # <-\n",
        "dns.verify[1]", "invalid port",
    ),
    "dns ttl not whole": ("  type: A\n", "  type: A\n  ttl: 1.5s  # <-\n", "dns.ttl", "whole seconds"),
    "hmac-md5 rejected": (
        "secret_file: tsig.key}", "algorithm: hmac-md5, secret_file: tsig.key}",
        "dns.tsig.algorithm", "RFC 8945",
    ),
    "secret and secret_file": (
        "secret_file: tsig.key}", f"secret: {SECRET}, secret_file: tsig.key}}",
        "dns.tsig", "either secret or secret_file",
    ),
    "neither secret nor secret_file": (", secret_file: tsig.key}", "}", "dns.tsig", "needs secret or secret_file"),
    "secret not base64": ("secret_file: tsig.key}", f"secret: '{SECRET}!!'}}", "dns.tsig.secret", "not valid base64"),
    "missing secret file": (
        "secret_file: tsig.key}", "secret_file: missing.key}",
        "dns.tsig.secret_file", "missing.key",
    ),
    "token and token_file": (
        "  address: http://127.0.0.1:8500\n",
        f"  address: http://127.0.0.1:8500\n  token: {TOKEN}\n  token_file: t  # <-\n",
        "consul.token_file", "not both",
    ),
    "token not a string": (
        "  address: http://127.0.0.1:8500\n", "  address: http://127.0.0.1:8500\n  token: [1]  # <-\n",
        "consul.token", "expected a single value",
    ),
    "consul address scheme": (
        "  address: http://127.0.0.1:8500\n", "  address: consul:8500  # <-\n",
        "consul.address", "http:// or https://",
    ),
    "TLS file with http": (
        "  address: http://127.0.0.1:8500\n", "  address: http://127.0.0.1:8500\n  ca_file: tsig.key  # <-\n",
        "consul.ca_file", "only used with an https://",
    ),
    "key_prefix with slash": (
        "group: app\n", "group: app\nkey_prefix: /consulha/app  # <-\n",
        "key_prefix", "leading/trailing slash",
    ),
    "section not a mapping": (
        "session:\n  ttl: 10s\n  lock_delay: 1s\n  heartbeat_ttl: 3s\n", "session: 10s  # <-\n",
        "session", "must be a mapping",
    ),
    "YAML syntax error": (
        "  ttl: 10s\n", "  ttl: 10s: 5  # <-\n",
        "", "invalid YAML: mapping values are not allowed here",
    ),
}


@pytest.mark.parametrize("old, new, key_path, message", ERROR_CASES.values(), ids=ERROR_CASES.keys())
def test_error_names_file_line_and_key_path(tmp_path, old, new, key_path, message):
    text = edited(old, new)
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.file, error.key_path) == (str(path), key_path)
    assert message in error.message
    # The error points at the '# <-' marker; edits inside a flow mapping cannot carry one, so there it is the
    # edited line.
    assert error.line == (line_containing(text, "# <-") if "# <-" in text else line_containing(BASE, old))
    assert str(error) == ": ".join(part for part in (f"{path}:{error.line}", key_path, error.message) if part)
    assert SECRET not in str(error) and TOKEN not in str(error)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "config file is empty"),
        ("# nothing here\n", "config file is empty"),
        ("- a\n- b\n", "must be a mapping, got a list"),
    ],
    ids=["empty", "only comments", "top-level list"],
)
def test_file_level_errors(tmp_path, text, message):
    path = tmp_path / "site.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path)
    assert caught.value.file == str(path)
    assert caught.value.line == (1 if text.startswith("-") else None)


def test_missing_dns_section_names_the_top_level_mapping(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, BASE[:BASE.index("dns:")]))
    assert (caught.value.key_path, caught.value.line, caught.value.message) == ("dns", 1, "required section is missing")


def test_missing_config_file_has_no_line(tmp_path):
    path = tmp_path / "absent.yaml"
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.line is None
    assert str(caught.value) == f"{path}: cannot read config file: No such file or directory"


def test_token_file_is_relative_to_config_directory(tmp_path, monkeypatch):
    config_dir = tmp_path / "etc"
    (config_dir / "secrets").mkdir(parents=True)
    token_file = config_dir / "secrets" / "consul.token"
    token_file.write_text(f"  {TOKEN}\n")
    token_file.chmod(0o600)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-environment")
    address = "  address: http://127.0.0.1:8500\n"
    path = write_config(config_dir, edited(address, address + "  token_file: secrets/consul.token\n"))
    config = load_config(path)
    assert config.consul.token == TOKEN
    assert TOKEN not in repr(config)


def test_consul_token_comes_from_environment_unless_configured(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", "from-environment")
    assert load_config(write_config(tmp_path, BASE)).consul.token == "from-environment"
    explicit = edited("  address: http://127.0.0.1:8500\n", f"  address: http://127.0.0.1:8500\n  token: {TOKEN}\n")
    assert load_config(write_config(tmp_path, explicit)).consul.token == TOKEN


def test_https_consul_with_tls_files(tmp_path):
    for name in ("ca.pem", "client.pem", "client.key"):
        (tmp_path / name).write_text("pem\n")
    text = edited(
        "  address: http://127.0.0.1:8500\n",
        "  address: https://consul.example.test/\n  ca_file: ca.pem\n  cert_file: client.pem\n  key_file: client.key\n",
    )
    consul = load_config(write_config(tmp_path, text)).consul
    assert (consul.address, consul.scheme, consul.port) == ("https://consul.example.test", "https", 443)
    assert consul.host == "consul.example.test"
    assert (consul.ca_file, consul.key_file) == (str(tmp_path / "ca.pem"), str(tmp_path / "client.key"))


def test_secret_file_readable_by_others_warns(tmp_path):
    config = load_config(write_config(tmp_path, BASE, secret_mode=0o644))
    (warning,) = config.warnings
    assert warning.startswith(f"{tmp_path / 'site.yaml'}:{line_containing(BASE, 'tsig:')}: dns.tsig.secret_file: ")
    assert "readable by group or others (mode 0644)" in warning
    assert SECRET not in warning


def test_secrets_absent_from_repr(tmp_path, monkeypatch):
    monkeypatch.setenv("CONSUL_HTTP_TOKEN", TOKEN)
    config = load_config(write_config(tmp_path, BASE))
    assert (config.consul.token, config.dns.tsig.secret) == (TOKEN, SECRET)
    assert SECRET not in repr(config) and TOKEN not in repr(config)


TSIG_KEYGEN_OUTPUT = f"""\
key "other-key" {{
\talgorithm hmac-sha512;
\tsecret "b3RoZXI=";
}};
key "consulha-key" {{
\talgorithm hmac-sha256;
\tsecret "{SECRET}";
}};
"""


def test_tsig_keygen_key_file(tmp_path):
    path = write_config(tmp_path, BASE)
    (tmp_path / "tsig.key").write_text(TSIG_KEYGEN_OUTPUT)
    assert load_config(path).dns.tsig.secret == SECRET


@pytest.mark.parametrize(
    "tsig, message",
    [
        (
            "{name: consulha-key, algorithm: hmac-sha512, secret_file: tsig.key}",
            "key 'consulha-key' uses hmac-sha256, but dns.tsig.algorithm is hmac-sha512",
        ),
        ("{name: third-key, secret_file: tsig.key}", "holds no key named 'third-key' (found other-key, consulha-key)"),
    ],
)
def test_tsig_keygen_key_file_mismatch(tmp_path, tsig, message):
    path = write_config(tmp_path, edited("{name: consulha-key, secret_file: tsig.key}", tsig))
    (tmp_path / "tsig.key").write_text(TSIG_KEYGEN_OUTPUT)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert (caught.value.key_path, caught.value.message) == ("dns.tsig.secret_file", message)
    assert SECRET not in str(caught.value)


def test_failback_delay_without_preferred_site_warns(tmp_path):
    config = load_config(write_config(tmp_path, BASE + "election: {failback_delay: 1m}\n"))
    location = f"{tmp_path / 'site.yaml'}:{BASE.count(chr(10)) + 1}"
    assert config.warnings == (f"{location}: election.failback_delay: has no effect without election.preferred_site",)


@pytest.mark.parametrize("site, value", [("a", "192.0.2.1"), ("b", "192.0.2.2")])
def test_every_example_validates_as_shipped(site, value):
    """conf/site-<x>/ is one host's directory, as deployed: the file and its group directory
    load with nothing changed; the only warning is the placeholder key's mode after a checkout."""
    from consulha.config.groups import load_groups

    config = load_config(CONF_DIR / f"site-{site}" / "app.yaml")
    assert (config.site, config.dns.value, config.dns.record) == (site, value, "app.example.test.")
    assert [service.check.kind for service in config.services] == ["http", "script", "tcp"]
    assert all("readable by group or others" in warning for warning in config.warnings), config.warnings
    groups = load_groups(CONF_DIR / f"site-{site}")
    assert groups.errors == () and [g.group for g in groups.configs] == ["app"]


def test_the_examples_are_the_same_but_for_the_site():
    import yaml
    a, b = (yaml.safe_load((CONF_DIR / f"site-{site}" / "app.yaml").read_text()) for site in "ab")
    assert (a["site"], b["site"], a["dns"]["value"], b["dns"]["value"]) == ("a", "b", "192.0.2.1", "192.0.2.2")
    for document in (a, b):
        del document["site"], document["dns"]["value"]
    assert a == b


@pytest.mark.parametrize("text, checks", [
    ("", ("serfHealth",)), ("  node_checks: []\n", ()), ("  node_checks: [serfHealth, disk]\n", ("serfHealth", "disk"))])
def test_node_checks_default_to_serf_health_and_may_be_empty(tmp_path, text, checks):
    config = load_config(write_config(tmp_path, edited("  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n" + text)))
    assert config.session.node_checks == checks
    keys = Keys(config)
    assert keys.session_checks[:len(checks)] == list(checks)
    assert not any(check.startswith("service:") for check in keys.paused_session_checks)


def test_validate_names_a_heartbeat_address_this_host_cannot_listen_on(tmp_path):
    text = edited("  heartbeat_ttl: 3s\n", "  heartbeat_ttl: 3s\n  heartbeat_address: 192.0.2.1\n")
    path = write_config(tmp_path, text)
    assert load_config(path).session.heartbeat_address == "192.0.2.1"  # the agent's own host may have it
    with pytest.raises(ConfigError, match="session.heartbeat_address: cannot listen on 192.0.2.1"):
        load_config(path, HostListenProbe())


def test_leader_probes_default_on_and_take_a_boolean_only(tmp_path):
    assert load_config(write_config(tmp_path, BASE)).election.leader_probes is True
    off = load_config(write_config(tmp_path, BASE + "election: {leader_probes: false}\n"))
    assert off.election.leader_probes is False
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, BASE + "election: {leader_probes: sometimes}\n"))
    assert (caught.value.key_path, caught.value.line) == ("election.leader_probes", BASE.count("\n") + 1)
