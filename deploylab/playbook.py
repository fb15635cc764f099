"""The lab's inventory and variables, as a user would write them, and ansible-playbook runs.

Secrets are generated per run into a root-only directory; the inventory points Ansible at the
hosts over SSH with the run's key. `ansible-playbook` comes from the venv beside the Python
that runs the lab.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from deploylab.hosts import Host, ssh_options

REPO = Path(__file__).resolve().parent.parent
SITE_YML = REPO / "ansible" / "site.yml"
ZONE = "example.test."
RECORD = "app.example.test."
BILLING_RECORD = "billing.example.test."   # the second group each app host serves (host mode)
# The address the record gets while each site leads (documentation range: nothing listens).
SITE_VALUES = {"a": "192.0.2.80", "b": "198.51.100.80"}
LOCK_DELAY = 5.0      # longer than a graceful handover takes, so step 4 can tell them apart
WATCHDOG_SEC = 15     # > the agent's stall limit (~10 s with these session settings)

# name, address, inventory group, site
TOPOLOGY = [
    ("sa", "10.78.0.11", "consul_servers", "a"),
    ("sb", "10.78.0.12", "consul_servers", "b"),
    ("sw", "10.78.0.13", "consul_servers", "w"),
    ("ha", "10.78.0.21", "consulha", "a"),
    ("hb", "10.78.0.22", "consulha", "b"),
    ("dns1", "10.78.0.31", "dns_primary", None),
    ("dns2", "10.78.0.32", "dns_secondary", None),
]
TOY_SERVICES = {"api": 8080, "worker": 8081, "db": 5432}
BILLING_SERVICES = {"ledger": 8082}


def lab_hosts() -> list[Host]:
    return [Host(name, address) for name, address, _, _ in TOPOLOGY]


def random_secret() -> str:
    return base64.b64encode(secrets.token_bytes(32)).decode()


def write_inventory(directory: Path, ssh_key: Path, drop: tuple[str, str] | None = None) -> Path:
    """inventory.ini; `drop` = (host, variable) leaves one host's variable out (step 8)."""
    groups: dict[str, list[str]] = {}
    for name, address, group, site in TOPOLOGY:
        line = f"{name} ansible_host={address}"
        if site:
            line += f" consul_site={site}"
        if group == "consulha":
            line += f" consulha_dns_value={SITE_VALUES[site]}"
        if drop and drop[0] == name:
            line = re.sub(rf" {drop[1]}=\S+", "", line)
        groups.setdefault(group, []).append(line)
    options = " ".join(ssh_options(ssh_key)[2:])  # everything but -i
    text = "[all:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n"
    text += f"ansible_ssh_private_key_file={ssh_key}\nansible_ssh_common_args='{options}'\n"
    for group, lines in groups.items():
        text += f"\n[{group}]\n" + "\n".join(lines) + "\n"
    path = directory / ("inventory.ini" if drop is None else "inventory-bad.ini")
    path.write_text(text)
    return path


def write_group_vars(directory: Path, wheelhouse: Path) -> list[str]:
    """group_vars/all.yml: ansible/group_vars/all.example.yml with the lab's values.
    Returns the secrets in it (no playbook output may contain them)."""
    secrets_used = [random_secret(), random_secret()]
    example = yaml.safe_load((REPO / "ansible/group_vars/all.example.yml").read_text())
    example.update({
        "zone": ZONE, "record": RECORD,
        "bind_managed_records": [{"name": RECORD, "types": ["A"]},
                                 {"name": BILLING_RECORD, "types": ["A"]}],
        "vault_tsig_secret": secrets_used[0],
        "vault_consul_gossip_key": secrets_used[1],
        "consulha_pip_spec": "consulha",
        "consulha_pip_wheelhouse_src": str(wheelhouse),
        "consulha_checks_src": str(REPO / "checks") + "/",
        "consulha_lock_delay": f"{LOCK_DELAY:g}s",
        "consulha_watchdog_sec": WATCHDOG_SEC,
        "consulha_services": [
            {"name": "api", "port": 8080,
             "check": {"http": "http://127.0.0.1:8080/", "interval": "1s", "timeout": "1s"}},
            {"name": "worker", "port": 8081, "check": {"tcp": "127.0.0.1:8081", "interval": "1s"}},
            {"name": "db", "port": 5432, "check": {"tcp": "127.0.0.1:5432", "interval": "1s"}},
        ],
        # Two groups on every app host, one process each host (consulha.service over
        # groups.d): app (the toy api, worker, db) and billing (the toy ledger, its own record).
        "consulha_groups": [
            {"group": "app"},
            {"group": "billing", "dns_record": BILLING_RECORD,
             "services": [{"name": "ledger", "port": 8082,
                           "check": {"tcp": "127.0.0.1:8082", "interval": "1s"}}]},
        ],
        # Step 7 proves the two groups' tokens are fenced from each other.
        "consul_consulha_groups": [
            {"name": "app", "key_prefix": "consulha/app", "services": list(TOY_SERVICES),
             "nodes": ["ha", "hb"]},
            {"name": "billing", "key_prefix": "consulha/billing", "services": list(BILLING_SERVICES),
             "nodes": ["ha", "hb"]},
        ],
    })
    group_vars = directory / "group_vars"  # holds the run's secrets: the run dir is 0700
    group_vars.mkdir(exist_ok=True)
    (group_vars / "all.yml").write_text(yaml.safe_dump(example, sort_keys=False))
    return secrets_used


def build_wheelhouse(directory: Path) -> Path:
    """consulha and its dependencies as wheels: the app hosts install them with no index."""
    wheelhouse = directory / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "-w", str(wheelhouse), str(REPO)],
                   check=True, capture_output=True)
    return wheelhouse


@dataclass
class PlaybookRun:
    returncode: int
    seconds: float
    recap: dict[str, dict[str, int]]
    output: str

    def changed_hosts(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap.items() if counts["changed"]}


RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$")


def run_playbook(inventory: Path, playbook: Path = SITE_YML, *extra: str, log_name: str,
                 roles_path: Path = REPO / "ansible/roles") -> PlaybookRun:
    env = {**os.environ, "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_PIPELINING": "True",
           "ANSIBLE_FORKS": "8", "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
           "ANSIBLE_ROLES_PATH": str(roles_path)}
    ansible = Path(sys.executable).parent / "ansible-playbook"
    started = time.monotonic()
    result = subprocess.run([str(ansible), "-i", str(inventory), str(playbook), *extra],
                            env=env, text=True, capture_output=True, cwd=inventory.parent)
    seconds = time.monotonic() - started
    output = result.stdout + result.stderr
    (inventory.parent / f"{log_name}.log").write_text(output)
    return PlaybookRun(result.returncode, seconds, parse_recap(output), output)


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """Host -> {ok, changed, failed, ...} from the last PLAY RECAP of a run."""
    recap = {}
    for line in output.split("PLAY RECAP")[-1].splitlines():
        match = RECAP_LINE.match(line.strip())
        if match:
            recap[match.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", match.group(2))}
    return recap


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
