"""The dns section: several records, zones, the command provider; errors name FILE:LINE: key."""

import os
import subprocess
import sys

import pytest

from consulha.config import ConfigError, RecordConfig, load_config
from tests.config.test_config import BASE, SECRET, line_containing, write_config

SINGLE = """\
  zone: example.test
  record: app.example.test.
  type: A
  value: 192.0.2.1
"""
assert SINGLE in BASE

RECORDS = """\
  zone: example.test
  records:
    - {record: app.example.test., type: A, value: 192.0.2.1}
    - {record: app.example.test., type: AAAA, value: "2001:db8::1"}
    - {record: www.example.test., type: CNAME, value: app.example.test}
    - {record: api.other.test., zone: other.test, type: A, value: 192.0.2.1}
"""

COMMAND = """\
  provider: command
  command: [switch-dns, --api-url, "http://127.0.0.1:8081"]
  secret_env: {PDNS_API_KEY: api.key}
  verify: [127.0.0.1:53]
"""


def with_dns(text: str) -> str:
    return BASE.replace(SINGLE, text, 1)


def command_config(tmp_path, dns_text: str = COMMAND, program_mode: int = 0o755) -> str:
    """BASE with the command provider: `switch-dns` is a script in tmp_path (config-relative)."""
    program = tmp_path / "switch-dns"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(program_mode)
    (tmp_path / "api.key").write_text("pdns-api-key\n")
    (tmp_path / "api.key").chmod(0o600)
    base = with_dns(SINGLE + dns_text.replace("switch-dns", "./switch-dns"))
    return base.replace("  server: 127.0.0.1:53\n  tsig: {name: consulha-key, secret_file: tsig.key}\n", "")


def test_records_list_keeps_order_zones_and_canonical_values(tmp_path):
    dns = load_config(write_config(tmp_path, with_dns(RECORDS))).dns

    assert dns.records == (
        RecordConfig("app.example.test.", "A", "192.0.2.1", "example.test."),
        RecordConfig("app.example.test.", "AAAA", "2001:db8::1", "example.test."),
        RecordConfig("www.example.test.", "CNAME", "app.example.test.", "example.test."),
        RecordConfig("api.other.test.", "A", "192.0.2.1", "other.test."),
    )
    assert dns.zones == ("example.test.", "other.test.")
    assert (dns.fence_of("example.test."), dns.fence_of("other.test.")) == (
        "_consulha.app.example.test.", "_consulha.api.other.test.")
    # The site's address is the first record's value, as with a single record.
    assert (dns.value, dns.record, dns.type) == ("192.0.2.1", "app.example.test.", "A")


def test_the_fence_does_not_depend_on_the_order_of_the_records(tmp_path):
    lines = RECORDS.splitlines(keepends=True)
    reordered = "".join([lines[0], lines[1], lines[4], lines[3], lines[2], lines[5]])
    assert reordered != RECORDS

    dns = load_config(write_config(tmp_path, with_dns(reordered))).dns

    assert dns.records[0].name == "www.example.test."
    assert dns.fence_of("example.test.") == "_consulha.app.example.test."


def test_single_record_form_still_reads_as_one_record(tmp_path):
    dns = load_config(write_config(tmp_path, BASE)).dns

    assert dns.records == (RecordConfig("app.example.test.", "A", "192.0.2.1", "example.test."),)
    assert dns.fence_record == "_consulha.app.example.test."


def test_command_provider_reads_its_secret_into_the_environment_only(tmp_path):
    path = tmp_path / "site.yaml"
    path.write_text(command_config(tmp_path))

    dns = load_config(path).dns

    assert (dns.provider, dns.server, dns.timeout) == ("command", None, 10.0)
    assert dns.command == (str(tmp_path / "switch-dns"), "--api-url", "http://127.0.0.1:8081")
    assert dict(dns.secret_env) == {"PDNS_API_KEY": "pdns-api-key"}
    assert "pdns-api-key" not in repr(dns)


RECORD_ERRORS = {
    "CNAME beside another type": (
        "    - {record: www.example.test., type: A, value: 192.0.2.1}  # <-\n",
        "dns.records[3].record", "a CNAME cannot share its name with other types: www.example.test. is also CNAME",
    ),
    "duplicate name and type": (
        "    - {record: app.example.test., type: A, value: 192.0.2.7}  # <-\n",
        "dns.records[3].record", "duplicate record app.example.test. A (first given on line",
    ),
    "value of the wrong type": (
        "    - {record: v6.example.test., type: AAAA, value: 192.0.2.1}  # <-\n",
        "dns.records[3].value", "not an IPv6 address",
    ),
    "record outside its zone": (
        "    - {record: api.example.test., zone: other.test, type: A, value: 192.0.2.1}  # <-\n",
        "dns.records[3].record", "api.example.test. is not inside zone other.test.",
    ),
    "fence name as a record": (
        "    - {record: _consulha.x.example.test., type: A, value: 192.0.2.1}  # <-\n",
        "dns.records[3].record", "reserved for the fence",
    ),
    "unknown key in a record": (
        "    - {record: x.example.test., type: A, value: 192.0.2.1, ttl: 5}  # <-\n",
        "dns.records[3].ttl", "unknown key",
    ),
}


@pytest.mark.parametrize("entry, key_path, message", RECORD_ERRORS.values(), ids=RECORD_ERRORS.keys())
def test_bad_record_entries_name_file_line_and_key(tmp_path, entry, key_path, message):
    text = with_dns(RECORDS.replace("    - {record: api.other.test.", entry + "    - {record: api.other.test.", 1))
    path = write_config(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert (caught.value.key_path, caught.value.line) == (key_path, line_containing(text, "# <-"))
    assert message in caught.value.message


DNS_ERRORS = {  # the dns section's text, the error's key path, message, and a fragment of its line
    "both forms": (SINGLE + "  records: [{record: a.example.test., type: A, value: 192.0.2.1}]\n",
                   "dns.record", "either records or record/type/value", "record: app.example.test."),
    "unknown provider": (SINGLE + "  provider: route53\n", "dns.provider",
                         "'route53' is not one of rfc2136, command", "route53"),
    "command for rfc2136": (SINGLE + "  command: [/bin/true]\n", "dns.command",
                            "read only by provider command, not rfc2136", "/bin/true"),
}


@pytest.mark.parametrize("dns_text, key_path, message, line_fragment", DNS_ERRORS.values(), ids=DNS_ERRORS.keys())
def test_bad_dns_section_names_file_line_and_key(tmp_path, dns_text, key_path, message, line_fragment):
    text = with_dns(dns_text)
    path = write_config(tmp_path, text)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.key_path == key_path and message in caught.value.message
    assert caught.value.line == line_containing(text, line_fragment)


@pytest.mark.parametrize(("change", "key_path", "message"), [
    (lambda tmp_path: (tmp_path / "switch-dns").chmod(0o644), "dns.command", "is not an executable file"),
    (lambda tmp_path: (tmp_path / "api.key").unlink(), "dns.secret_env.PDNS_API_KEY", "cannot read file"),
    (lambda tmp_path: (tmp_path / "api.key").write_text(""), "dns.secret_env.PDNS_API_KEY", "is empty"),
])
def test_command_provider_errors_at_load_time(tmp_path, change, key_path, message):
    path = tmp_path / "site.yaml"
    path.write_text(command_config(tmp_path))
    change(tmp_path)

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert (caught.value.key_path, message in caught.value.message) == (key_path, True)
    assert caught.value.line is not None


@pytest.mark.parametrize(("dns_text", "key_path", "message"), [
    (COMMAND.replace("  verify: [127.0.0.1:53]\n", ""), "dns.verify", "required"),
    (COMMAND.replace("PDNS_API_KEY", "pdns-key"), "dns.secret_env.pdns-key", "not an environment variable name"),
    (COMMAND + "  tsig: {name: k, secret: " + SECRET + "}\n", "dns.tsig", "read only by provider rfc2136"),
    (COMMAND.replace("switch-dns", "no-such-program-here"), "dns.command", "is not an executable file"),
])
def test_command_provider_section_errors(tmp_path, dns_text, key_path, message):
    path = tmp_path / "site.yaml"
    path.write_text(command_config(tmp_path, dns_text))

    with pytest.raises(ConfigError) as caught:
        load_config(path)

    assert caught.value.key_path == key_path and message in caught.value.message


def test_validate_exits_2_with_file_line_and_key(tmp_path):
    text = with_dns(RECORDS.replace("type: CNAME, value: app.example.test}", "type: A, value: app.example.test}"))
    path = write_config(tmp_path, text)

    done = subprocess.run([sys.executable, "-m", "consulha.cli", "validate", "-c", str(path)], capture_output=True,
                          text=True, env={**os.environ, "COLUMNS": "300"})

    assert done.returncode == 2
    line = line_containing(text, "www.example.test.")
    assert f"{path}:{line}: dns.records[2].value: 'app.example.test' is not an IPv4 address" in " ".join(
        done.stderr.split())
