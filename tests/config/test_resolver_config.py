"""dns.resolvers: the caching resolvers a leader flushes after a switch (consulha/config/resolvers.py)."""

import pytest

from consulha.config import ConfigError, ResolverConfig, load_config
from tests.config.test_config import BASE, SECRET, line_containing, write_config

API_KEY = "recursor-api-key-not-to-leak"


def with_resolvers(block: str) -> str:
    """BASE with `block` after `  resolvers:` (a list on the next lines, or a flow value)."""
    return BASE + "  resolvers:" + (block if block.startswith(" ") and not block.startswith("    ") else "\n" + block)


def test_no_resolvers_is_todays_behaviour(tmp_path):
    assert load_config(write_config(tmp_path, BASE)).dns.resolvers == ()


def test_the_short_form_is_a_plain_unbound_on_its_control_port(tmp_path):
    (resolver,) = load_config(write_config(tmp_path, with_resolvers(
        "    - unbound: 127.0.0.1:8953\n"))).dns.resolvers
    assert resolver == ResolverConfig(kind="unbound", control=("127.0.0.1", 8953), address=("127.0.0.1", 53))
    assert resolver.name == "unbound 127.0.0.1:8953" and resolver.tls is None


def test_unbound_with_tls_files_and_a_recursor_with_a_key_file(tmp_path):
    for name in ("control.key", "control.pem", "server.pem"):
        (tmp_path / name).write_text("pem\n")
    key_file = tmp_path / "recursor.key"
    key_file.write_text(API_KEY + "\n")
    key_file.chmod(0o600)
    unbound, recursor = load_config(write_config(tmp_path, with_resolvers(
        "    - unbound: 10.0.0.5\n"
        "      address: 10.0.0.5:5353\n"
        "      control_key: control.key\n"
        "      control_cert: control.pem\n"
        "      server_cert: server.pem\n"
        "    - pdns_recursor: http://127.0.0.1:8082\n"
        "      api_key_file: recursor.key\n"))).dns.resolvers
    assert unbound.control == ("10.0.0.5", 8953) and unbound.address == ("10.0.0.5", 5353)
    assert unbound.tls.server_cert == str(tmp_path / "server.pem")
    assert recursor.url == "http://127.0.0.1:8082" and recursor.api_key == API_KEY
    assert recursor.address == ("127.0.0.1", 53) and recursor.name == "pdns_recursor http://127.0.0.1:8082"
    assert API_KEY not in repr(recursor)


ERRORS = {
    "no kind": ("    - address: 127.0.0.1:53  # <-\n", "dns.resolvers[0]", "needs one of unbound, pdns_recursor"),
    "two kinds": ("    - unbound: 127.0.0.1:8953\n      pdns_recursor: http://127.0.0.1:8082  # <-\n",
                  "dns.resolvers[0]", "one kind per entry"),
    "bad port": ("    - unbound: 127.0.0.1:99999  # <-\n", "dns.resolvers[0].unbound", "port"),
    "a key of the other kind": ("    - unbound: 127.0.0.1:8953\n      api_key: x  # <-\n",
                                "dns.resolvers[0].api_key", "is not a key of a unbound resolver"),
    "half the TLS files": ("    - unbound: 127.0.0.1:8953\n      control_key: tsig.key  # <-\n",
                           "dns.resolvers[0].control_key", "missing: control_cert, server_cert"),
    "TLS file missing": ("    - unbound: 127.0.0.1:8953\n      control_key: nope.key  # <-\n"
                         "      control_cert: tsig.key\n      server_cert: tsig.key\n",
                         "dns.resolvers[0].control_key", "cannot read file"),
    "recursor without a key": ("    - pdns_recursor: http://127.0.0.1:8082  # <-\n", "dns.resolvers[0]",
                               "needs api_key or api_key_file"),
    "recursor not a URL": ("    - pdns_recursor: 127.0.0.1:8082  # <-\n      api_key: k\n",
                           "dns.resolvers[0].pdns_recursor", "is not an http:// or https:// URL"),
    "listed twice": ("    - unbound: 127.0.0.1:8953\n    - unbound: 127.0.0.1  # <-\n",
                     "dns.resolvers[1].unbound", "is listed twice (first on line"),
    "unknown key": ("    - unbound: 127.0.0.1:8953\n      adress: 127.0.0.1:53  # <-\n",
                    "dns.resolvers[0].adress", "did you mean 'address'?"),
    "empty list": (" []  # <-\n", "dns.resolvers", "must list at least one entry"),
}


@pytest.mark.parametrize("block, key_path, message", ERRORS.values(), ids=ERRORS.keys())
def test_a_bad_resolver_names_file_line_and_key_path(tmp_path, block, key_path, message):
    text = with_resolvers(block)
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.file, error.key_path) == (str(path), key_path), str(error)
    assert message in error.message, error.message
    assert error.line == line_containing(text, "# <-")
    assert SECRET not in str(error)
