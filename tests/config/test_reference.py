"""The configuration reference (consulha/config/reference.py) against the loader: every key the
loader accepts is documented, every documented key is accepted, the defaults agree, and
docs/configuration.md is the reference as generated."""

from __future__ import annotations

import pathlib
import re

import pytest

from consulha.config import load_config
from consulha.config.reference import KEYS, REQUIRED, markdown
from consulha.config.values import parse_duration
from consulha.config.yamlnodes import Mapping
from tests.config.test_config import BASE, write_config

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
FREE_FORM = ("dns.secret_env.",)   # its keys are the operator's variable names

EVERY_SECTION = BASE + """\
  resolvers:
    - unbound: 127.0.0.1:8953
    - {pdns_recursor: "http://127.0.0.1:8082", api_key: k}
hooks: {}
election: {damping: {}}
metrics: {}
"""
RECORDS = EVERY_SECTION.replace("  record: app.example.test.\n  type: A\n  value: 192.0.2.1\n",
                                "  records: [{record: app.example.test., type: A, value: 192.0.2.1}]\n")
COMMAND = EVERY_SECTION.replace("  server: 127.0.0.1:53\n  tsig: {name: consulha-key, secret_file: tsig.key}\n",
                                "  provider: command\n  command: [/bin/true]\n  secret_env: {API_TOKEN: tsig.key}\n"
                                "  verify: [127.0.0.1:53]\n")


def accepted_keys(monkeypatch, tmp_path) -> set[str]:
    """Every key path the loader allows, read off the mappings it builds for configs that visit
    every section (both providers, both record forms)."""
    allowed: set[str] = set()
    original = Mapping.__init__

    def recording(self, document, node, key_path, keys, line=None):
        original(self, document, node, key_path, keys, line)
        prefix = re.sub(r"\[\d+\]", "[]", key_path)
        allowed.update(f"{prefix}.{key}" if prefix else key for key in keys)
    monkeypatch.setattr(Mapping, "__init__", recording)
    for number, text in enumerate((EVERY_SECTION, RECORDS, COMMAND)):
        directory = tmp_path / str(number)
        directory.mkdir()
        load_config(write_config(directory, text))
    return {key for key in allowed if not key.startswith(FREE_FORM)}


def test_every_key_the_loader_accepts_is_documented_and_nothing_else(monkeypatch, tmp_path):
    documented = {key.path for key in KEYS}
    accepted = accepted_keys(monkeypatch, tmp_path)
    assert accepted - documented == set(), "accepted but not in consulha/config/reference.py"
    sections = {"consul", "session", "services", "dns", "hooks", "election", "metrics", "dns.records",
                "dns.resolvers", "dns.tsig", "election.damping", "services[].check"}
    assert documented - accepted - sections == set(), "documented but not accepted"


def loaded(tmp_path):
    return load_config(write_config(tmp_path, BASE))


# Where each documented default shows in a loaded config (BASE sets none of these keys).
DEFAULTS = {
    "key_prefix": lambda c: "consulha/<group>" if c.key_prefix == f"consulha/{c.group}" else c.key_prefix,
    "session.heartbeat_address": lambda c: c.session.heartbeat_address,
    "session.node_checks": lambda c: f"[{', '.join(c.session.node_checks)}]",
    "dns.provider": lambda c: c.dns.provider,
    "dns.tsig.algorithm": lambda c: c.dns.tsig.algorithm,
    "dns.fencing": lambda c: str(c.dns.fencing).lower(),
    "dns.resolvers": lambda c: "[]" if c.dns.resolvers == () else c.dns.resolvers,
    "election.leader_probes": lambda c: str(c.election.leader_probes).lower(),
    "election.damping.enabled": lambda c: str(c.election.damping.enabled).lower(),
    "election.damping.suppress": lambda c: f"{c.election.damping.suppress:g}",
    "services[].check.failures_before_critical": lambda c: str(c.services[0].check.failures_before_critical),
    "services[].check.success_before_passing": lambda c: str(c.services[0].check.success_before_passing),
}
DURATIONS = {
    "hooks.timeout": lambda c: c.hooks.timeout,
    "election.failback_delay": lambda c: c.election.failback_delay,
    "election.damping.half_life": lambda c: c.election.damping.half_life,
    "election.damping.max_hold_down": lambda c: c.election.damping.max_hold_down,
    "dns.reconcile_interval": lambda c: c.dns.reconcile_interval,
    "dns.ttl": lambda c: c.dns.ttl,
}


@pytest.mark.parametrize("path", sorted(DEFAULTS))
def test_a_documented_default_is_the_loaders(tmp_path, path):
    default = next(key.default for key in KEYS if key.path == path)
    assert DEFAULTS[path](loaded(tmp_path)) == default


@pytest.mark.parametrize("path", sorted(DURATIONS))
def test_a_documented_duration_default_is_the_loaders(tmp_path, path):
    default = next(key.default for key in KEYS if key.path == path)
    assert DURATIONS[path](loaded(tmp_path)) == parse_duration(default)


def test_the_session_defaults_are_the_models():
    from consulha.config import SessionConfig
    documented = {key.path: key.default for key in KEYS}
    assert parse_duration(documented["session.ttl"]) == SessionConfig.ttl
    assert parse_duration(documented["session.lock_delay"]) == SessionConfig.lock_delay
    assert parse_duration(documented["session.heartbeat_ttl"]) == SessionConfig.heartbeat_ttl


def test_required_keys_are_required(tmp_path):
    for key in KEYS:
        if key.default == REQUIRED and "[]" not in key.path and "." not in key.path:
            text = re.sub(rf"(?m)^{re.escape(key.path)}:.*\n(  .*\n)*", "", BASE)
            with pytest.raises(Exception, match=key.path):
                load_config(write_config(tmp_path, text))


def test_docs_configuration_md_is_generated_from_the_reference():
    assert DOCS.read_text() == markdown(), "run: python -m consulha.config.reference > docs/configuration.md"
