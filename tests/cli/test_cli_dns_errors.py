"""Every command that touches DNS, when DNS fails under it, says so in one line naming what
failed and where (server address and port, record or zone, the rcode or how long it waited),
exits as documented, and prints no traceback and no TSIG secret. Consul is fine throughout.

The failures, against real BIND: nothing listening on the DNS port; a server that REFUSES the
zone (queries and updates); a TSIG key whose secret is wrong (BIND answers NOTAUTH, BADSIG).

Which commands touch DNS: `status` (reads the primary and every verify server), `validate
--connect` (a signed prerequisite-only update), `handover` and `takeover` (wait until every
verify server answers the new leader). maintenance, pause, resume, history and `handover
--no-wait` / `--dry-run` ask no DNS server.

Where the fault sits: in the operator's config (the commands' own view of DNS), except for a
wrong secret under handover/takeover: those commands sign nothing, so the new leader's agent
gets the wrong secret and cannot write, and the command names that from the site's report.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lab.named import NamedServer, random_secret
from lab.pair import SitePair
from lab.ports import free_port
from lab.site import write_config

pytestmark = pytest.mark.integration

FAULTS = ("unreachable", "refused", "badsig")
# What each command's line must say, per fault, besides the server's address.
WHY = {
    ("status", "unreachable"): r"error: dns: read of app\.example\.test\. A at {at}: network error: .*refused",
    ("status", "refused"): r"error: dns: read of app\.example\.test\. A at {at}: REFUSED",
    ("validate", "unreachable"): r"dns {at}: FAILED auth probe at {at}: network error: .*refused",
    ("validate", "refused"): r"dns {at}: FAILED auth probe at {at}: REFUSED",
    ("validate", "badsig"): r"dns {at}: FAILED auth probe at {at}: NOTAUTH \(BADSIG\)",
}
# handover and takeover: the lock moved; what DNS said instead of the new leader's address.
MOVED = r"site b leads \(epoch \d+\), but DNS could not be verified within 4s: {at}: {why}"
MOVED_WHY = {
    "unreachable": r"(no answer within 1s|error: .*refused)",
    "refused": r"app\.example\.test\. A REFUSED, want 192\.0\.2\.2; _consulha\.app\.example\.test\. REFUSED, "
               r"want epoch \d+",
    "badsig": r"app\.example\.test\. A 192\.0\.2\.1, want 192\.0\.2\.2; _consulha\.app\.example\.test\. "
              r"epoch \d+, want epoch \d+; site b's DNS update fails: update of zone example\.test\. at {at}: "
              r"NOTAUTH \(BADSIG\)",
}


def consulha(*args: str) -> subprocess.CompletedProcess:
    # No COLUMNS: the one line must stay one line at rich's default width of 80 in a pipe.
    return subprocess.run([sys.executable, "-m", "consulha.cli", *args], capture_output=True, text=True,
                          timeout=60, stdin=subprocess.DEVNULL)


class Faults:
    """Per fault: the DNS section changes that cause it, the address it names, the secrets."""

    def __init__(self, lab: SitePair, tmp: Path):
        named = lab.named
        # Knows our key, so its answer is about the zone (REFUSED), not about an unknown key.
        self.refusing = NamedServer(tmp / "refusing", zone="refusing.test.", records=(),
                                    extra_zones=(named.zone,), refused_zones=(named.zone,))
        self.refusing.secret = named.secret
        wrong = tmp / "wrong.key"
        self.wrong_secret = random_secret()
        wrong.write_text(self.wrong_secret + "\n")
        wrong.chmod(0o600)
        closed = f"127.0.0.1:{free_port()}"
        self.secrets = (named.secret, self.wrong_secret)
        self.dns = {
            "unreachable": {"server": closed, "verify": [closed]},
            "refused": {"server": f"127.0.0.1:{self.refusing.port}", "verify": [f"127.0.0.1:{self.refusing.port}"]},
            "badsig": {"tsig": {**lab.dns_section["tsig"], "secret_file": str(wrong)}},
        }
        self.at = {"unreachable": closed, "refused": f"127.0.0.1:{self.refusing.port}",
                   "badsig": f"127.0.0.1:{named.port}"}


@pytest.fixture
def faults(lab, tmp_path):
    faults = Faults(lab, tmp_path)
    with faults.refusing:
        yield faults


def config_with(lab: SitePair, site: str, path: Path, dns: dict) -> str:
    """`site`'s config as the lab writes it, with `dns` changed (and short DNS timeouts)."""
    document = yaml.safe_load(Path(lab.config(site)).read_text())
    document["dns"].update({"timeout": "1s", **dns})
    return str(write_config(path, document))


def check_output(done: subprocess.CompletedProcess, faults: Faults) -> str:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert not any(secret in output for secret in faults.secrets), output
    return output


def one_line(pattern: str, output: str) -> None:
    matching = [line for line in output.splitlines() if re.search(pattern, line)]
    assert len(matching) == 1, f"{pattern!r} not on exactly one line of:\n{output}"


@pytest.mark.parametrize("fault", FAULTS)
def test_status(lab, faults, tmp_path, fault):
    lab.start("a")
    lab.wait_leader("a")
    lab.wait_dns("a")
    config = config_with(lab, "a", tmp_path / "operator.yaml", faults.dns[fault])

    done = consulha("status", "-c", config)

    output = check_output(done, faults)
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    if fault == "badsig":
        # status reads DNS unsigned, as clients do: a wrong secret changes nothing it shows.
        assert done.returncode == 0 and errors == [], output
        return
    assert done.returncode == 1, output  # documented: exit 0 only when DNS agrees with the leader
    assert len(errors) == 1, output
    one_line(WHY["status", fault].format(at=re.escape(faults.at[fault])), output)
    assert "leader site a" in output  # what Consul says is still shown


@pytest.mark.parametrize("fault", FAULTS)
def test_validate_connect(lab, faults, tmp_path, fault):
    config = config_with(lab, "a", tmp_path / "operator.yaml", faults.dns[fault])

    done = consulha("validate", "-c", config, "--connect")

    output = check_output(done, faults)
    assert done.returncode == 1, output
    assert output.count("FAILED") == 1 and "consul" in output, output
    one_line(WHY["validate", fault].format(at=re.escape(faults.at[fault])), output)


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("command", ["handover", "takeover"])
def test_lock_moves_but_dns_is_unverified(lab, faults, tmp_path, command, fault):
    lab.start("a")
    first = lab.wait_leader("a")
    # A wrong secret hurts the site that must write: b's agent. The others: the operator's view.
    agent_b = config_with(lab, "b", tmp_path / "b.yaml", faults.dns[fault] if fault == "badsig" else {})
    lab.start("b", agent_b)
    lab.wait_candidates("a", "b")
    lab.wait_dns("a")
    config = config_with(lab, "a", tmp_path / "operator.yaml", faults.dns[fault])
    args = {"handover": ["handover", "--to", "b"], "takeover": ["takeover", "--to", "b", "--yes"]}[command]

    done = consulha(*args, "--timeout", "4s", "-c", config)

    output = check_output(done, faults)
    assert done.returncode == 1, output + lab.logs()
    at = re.escape(faults.at[fault])
    pattern = MOVED.format(at=at, why=MOVED_WHY[fault].format(at=at))
    assert re.fullmatch(pattern, output.strip()), output + lab.logs()
    leader = lab.leader()
    assert leader["site"] == "b" and leader["epoch"] > first["epoch"]
    assert f"epoch {leader['epoch']}" in output
    assert lab.store.get("consulha/app/control/handover")[1] is None  # done, not left pending
