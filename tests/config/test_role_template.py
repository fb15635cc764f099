"""The consulha role's config template covers the configuration: rendered from the role's own
defaults and vars (the same Jinja the role runs, with Ansible's filters as Ansible defines them)
with every variable set, the result loads, carries each value, and together the renders name
every key of the configuration reference but the documented alternatives."""

from __future__ import annotations

import ast
import json
import pathlib
import re

import jinja2
import pytest
import yaml

from consulha.config import load_config
from consulha.config.reference import KEYS

ROLE = pathlib.Path(__file__).resolve().parents[2] / "ansible" / "roles" / "consulha"
SECRET = "c2VjcmV0LXZhbHVlLW5vdC10by1sZWFr"
# Keys the role writes in one form only (the other form exists for hand-written configs).
ALTERNATIVES = {
    "consul.token",                       # the role writes token_file
    "dns.tsig.secret",                    # the role writes secret_file
    "dns.resolvers[].api_key",            # given as items: the operator picks api_key_file
    "dns.resolvers[].control_key", "dns.resolvers[].control_cert", "dns.resolvers[].server_cert",
    "dns.records[].zone",
}


def ansible_bool(value) -> bool:
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on", "y")


def environment() -> jinja2.Environment:
    """Jinja as Ansible configures it for templates, with the filters the role uses."""
    env = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined, extensions=["jinja2.ext.do"])
    env.filters.update({
        "to_json": json.dumps, "bool": ansible_bool,
        "combine": lambda *dicts: {k: v for d in dicts for k, v in d.items()},
        "dict2items": lambda d: [{"key": k, "value": v} for k, v in d.items()],
        "items2dict": lambda items: {i["key"]: i["value"] for i in items},
        "basename": lambda p: pathlib.PurePath(p).name,
    })
    env.tests["falsy"] = lambda value: not value
    return env


def role_variables(overrides: dict) -> dict:
    """The role's defaults with `overrides`, then its vars (each a template over the others)."""
    env = environment()
    variables = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text()) | overrides

    def resolve(value):
        if isinstance(value, str) and ("{{" in value or "{%" in value):
            try:
                rendered = env.from_string(value).render(**variables)
            except jinja2.UndefinedError:
                return value   # refers to what is resolved in a later round
            try:   # Ansible reads a rendered list or dict back as a Python literal
                return ast.literal_eval(rendered.strip())
            except (ValueError, SyntaxError):
                return rendered
        return value
    for _ in range(3):   # defaults refer to each other (config_dir -> groups_dir -> config_file)
        variables = {name: resolve(value) for name, value in variables.items()}
    for name, value in yaml.safe_load((ROLE / "vars" / "main.yml").read_text()).items():
        variables[name] = resolve(value)
    return variables


def render(tmp_path: pathlib.Path, overrides: dict) -> pathlib.Path:
    variables = role_variables({"consulha_config_dir": str(tmp_path), "consulha_site": "a",
                                "consulha_dns_value": "192.0.2.1", "consulha_consul_token": "t",
                                "consulha_tsig_secret": SECRET, "ansible_managed": "test"} | overrides)
    (item,) = variables["consulha_group_settings"]
    template = environment().from_string((ROLE / "templates" / "consulha.yaml.j2").read_text())
    (tmp_path / "groups.d").mkdir(exist_ok=True)
    path = pathlib.Path(item["config_file"])
    path.write_text(template.render(**variables, consulha_item=item))
    for secret in (item["token_file"], item["tsig_file"]):
        pathlib.Path(secret).write_text(SECRET + "\n")
        pathlib.Path(secret).chmod(0o600)
    return path


EVERYTHING = {
    "consulha_group": "billing", "consulha_key_prefix": "consulha/billing",
    "consulha_consul_address": "https://127.0.0.1:8501",
    "consulha_session_ttl": "20s", "consulha_lock_delay": "2s", "consulha_heartbeat_ttl": "4s",
    "consulha_heartbeat_address": "127.0.0.2", "consulha_node_checks": [],
    "consulha_services": [
        {"name": "api", "port": 8080, "check": {"http": "http://127.0.0.1:8080/health", "interval": "2s",
                                                "timeout": "1s", "failures_before_critical": 3,
                                                "success_before_passing": 2}},
        {"name": "db", "check": {"tcp": "127.0.0.1:5432", "interval": "1s"}},
        {"name": "worker", "check": {"script": "/usr/bin/true", "interval": "5s"}}],
    "consulha_dns_zone": "example.test.", "consulha_dns_ttl": 10, "consulha_dns_server": "127.0.0.1:5353",
    "consulha_dns_verify": ["127.0.0.1:5353", "127.0.0.1:5354"], "consulha_dns_tsig_name": "billing-key",
    "consulha_dns_tsig_algorithm": "hmac-sha512", "consulha_dns_fencing": False,
    "consulha_dns_reconcile_interval": "20s", "consulha_dns_timeout": "3s",
    "consulha_dns_resolvers": [{"unbound": "127.0.0.1:8953", "address": "127.0.0.1:53"},
                               {"pdns_recursor": "http://127.0.0.1:8082", "api_key_file": "RECURSOR_KEY"}],
    "consulha_hooks_on_promote": "/usr/local/bin/promote", "consulha_hooks_on_demote": "/usr/local/bin/demote",
    "consulha_hooks_timeout": "40s", "consulha_preferred_site": "a", "consulha_failback_delay": "10m",
    "consulha_leader_probes": False,
    "consulha_damping": {"enabled": False, "half_life": "2m", "suppress": 2, "max_hold_down": "10m"},
    "consulha_consul_ca_file": "TLS_FILE", "consulha_consul_cert_file": "TLS_FILE",
    "consulha_consul_key_file": "TLS_FILE",
    "consulha_metrics_listen": "127.0.0.1:9470",
}


def key_paths(node, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            paths |= {path} | key_paths(value, path)
    elif isinstance(node, list):
        for item in node:
            paths |= key_paths(item, prefix + "[]")
    return paths


@pytest.fixture
def recursor_key(tmp_path):
    """The recursor's key file; a TLS file beside it (the loader only reads them)."""
    key = tmp_path / "recursor.key"
    key.write_text("k\n")
    key.chmod(0o600)
    (tmp_path / "tls.pem").write_text("pem\n")
    return key


def with_key(everything: dict, key: pathlib.Path) -> dict:
    text = json.dumps(everything).replace("RECURSOR_KEY", str(key)).replace("TLS_FILE", str(key.parent / "tls.pem"))
    return json.loads(text)


def test_every_variable_reaches_the_config(tmp_path, recursor_key):
    config = load_config(render(tmp_path, with_key(EVERYTHING, recursor_key)))
    assert (config.group, config.key_prefix, config.consul.address) == \
        ("billing", "consulha/billing", "https://127.0.0.1:8501")
    assert (config.session.ttl, config.session.lock_delay, config.session.heartbeat_ttl,
            config.session.heartbeat_address, config.session.node_checks) == (20, 2, 4, "127.0.0.2", ())
    api = config.services[0]
    assert (api.port, api.check.interval, api.check.failures_before_critical,
            api.check.success_before_passing) == (8080, 2, 3, 2)
    dns = config.dns
    assert (dns.ttl, dns.server, dns.verify, dns.tsig.name, dns.tsig.algorithm, dns.fencing,
            dns.reconcile_interval, dns.timeout) == (10, ("127.0.0.1", 5353), (("127.0.0.1", 5353), ("127.0.0.1", 5354)),
                                                     "billing-key", "hmac-sha512", False, 20, 3)
    assert [r.name for r in dns.resolvers] == ["unbound 127.0.0.1:8953", "pdns_recursor http://127.0.0.1:8082"]
    assert (config.hooks.on_promote, config.hooks.on_demote, config.hooks.timeout) == \
        ("/usr/local/bin/promote", "/usr/local/bin/demote", 40)
    election = config.election
    assert (election.preferred_site, election.failback_delay, election.leader_probes,
            election.damping.enabled, election.damping.half_life) == ("a", 600, False, False, 120)
    assert config.metrics.listen == ("127.0.0.1", 9470)


def test_records_and_the_command_provider(tmp_path):
    records = [{"record": "app.example.test.", "type": "A", "value": "192.0.2.1"},
               {"record": "www.example.test.", "type": "CNAME", "value": "app.example.test."}]
    secret = tmp_path / "api.token"
    secret.write_text("s\n")
    secret.chmod(0o600)
    config = load_config(render(tmp_path, {"consulha_dns_records": records, "consulha_dns_provider": "command",
                                           "consulha_dns_command": ["/usr/bin/true", "--zone", "x"], "consulha_dns_verify": ["127.0.0.1:53"],
                                           "consulha_dns_secret_env": {"API_TOKEN": str(secret)}}))
    assert [(r.name, r.type) for r in config.dns.records] == [("app.example.test.", "A"), ("www.example.test.", "CNAME")]
    assert (config.dns.provider, config.dns.command[1:], config.dns.server, config.dns.tsig) == \
        ("command", ("--zone", "x"), None, None)
    assert dict(config.dns.secret_env) == {"API_TOKEN": "s"}


def test_the_renders_name_every_key_of_the_reference(tmp_path, recursor_key):
    first, second = tmp_path / "1", tmp_path / "2"
    first.mkdir()
    second.mkdir()
    secret = tmp_path / "api.token"
    secret.write_text("s\n")
    secret.chmod(0o600)
    rendered = key_paths(yaml.safe_load(render(first, with_key(EVERYTHING, recursor_key)).read_text()))
    rendered |= key_paths(yaml.safe_load(render(second, {
        "consulha_dns_records": [{"record": "app.example.test.", "type": "A", "value": "192.0.2.1"}],
        "consulha_dns_provider": "command", "consulha_dns_command": ["/usr/bin/true"], "consulha_dns_verify": ["127.0.0.1:53"],
        "consulha_dns_secret_env": {"API_TOKEN": str(secret)}}).read_text()))
    rendered = {re.sub(r"^dns\.secret_env\..*", "dns.secret_env", path) for path in rendered}
    missing = {key.path for key in KEYS} - rendered - ALTERNATIVES
    assert missing == set(), f"the role cannot write: {sorted(missing)}"
