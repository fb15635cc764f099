"""`make fresh-test`: the README's quick start, as the README writes it, on a clean Debian
bookworm container with nothing of ours installed, against a clone of the commit under test.

The container is one host of the deploy lab's kind (the cached base image, systemd-nspawn, its
own namespace behind a masquerade, the machine's apt sources; here also the machine's pip
configuration), under its own names (`frs-`, 10.79.0.0/24) so it never touches a deploy-test
run. The commands are parsed from the README's quick-start block and run in order over SSH as
root in the clone; each must exit 0. Then `make demo` once more, to measure it installed.
Figures go to bench/results/fresh.json; everything is torn down, also after a failure.

    python -m deploylab.fresh [--keep]     # root; --keep leaves the container up afterwards
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from deploylab.hosts import Host, Lab, LabNames, begin_run, log_failure, prepare_base, ssh_options
from deploylab.playbook import REPO
from deploylab.quickstart import quick_start_commands

FRESH = LabNames("frs-", "10.79.0", Path("/var/tmp/consulha-fresh"))
RESULTS = REPO / "bench" / "results" / "fresh.json"
CLONE = "/root/consulha"  # where the user's clone lies in the container
COMMAND_TIMEOUT_S = 1200
# How this machine reaches the package indexes beyond its apt sources (already in the image),
# copied into the container at the same paths: pip's configuration files as pip reads them
# (site-wide, XDG site-wide, the user's: the quick start runs as root) and the local CAs this
# machine trusts (update-ca-certificates adds them to the bundle, as it did here).
PIP_CONFIG = [(Path("/etc/pip.conf"), "/etc/pip.conf"), (Path("/etc/xdg/pip"), "/etc/xdg/pip"),
              (Path.home() / ".config/pip", "/root/.config/pip")]
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


class FreshFailed(Exception):
    pass


@dataclass
class CommandRun:
    command: str
    seconds: float
    exit_code: int


def log(message: str) -> None:
    print(f"[fresh-test {time.strftime('%H:%M:%S')}] {message}", flush=True)


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


def put_clone(root: Path, commit: str) -> Path:
    """A git clone of the repository at `commit` where the user's clone would be."""
    dest = root / CLONE.lstrip("/")
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True)
    subprocess.run(["git", "-C", str(dest), "checkout", "--quiet", "--detach", commit], check=True)
    return dest


def copy_registry_access(root: Path) -> list[str]:
    """This machine's pip configuration and local CAs into the container; the paths copied."""
    copied = []
    for source, inside in [*PIP_CONFIG, (LOCAL_CAS, str(LOCAL_CAS))]:
        target = root / inside.lstrip("/")
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
        else:
            continue
        copied.append(inside)
    if any(LOCAL_CAS.glob("*.crt")):
        subprocess.run(["chroot", str(root), "update-ca-certificates"], check=True,
                       capture_output=True)
    return copied


def run_in_clone(lab: Lab, host: Host, command: str, log_path: Path) -> CommandRun:
    """One command as a user types it in the clone (root's login shell over SSH); its output
    goes to stdout and to `log_path`."""
    started = time.monotonic()
    with open(log_path, "w") as out:
        process = subprocess.Popen(
            ["ssh", *ssh_options(lab.ssh_key), f"root@{host.address}", f"cd {CLONE} && {command}"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        # A command that hangs is killed, and fails, after COMMAND_TIMEOUT_S.
        watchdog = threading.Timer(COMMAND_TIMEOUT_S, process.kill)
        watchdog.start()
        try:
            for line in process.stdout:
                print(f"  | {line}", end="", flush=True)
                out.write(line)
            code = process.wait()
        finally:
            watchdog.cancel()
    return CommandRun(command, round(time.monotonic() - started, 1), code)


def run_commands(lab: Lab, host: Host, commands: list[str]) -> list[CommandRun]:
    runs = []
    for number, command in enumerate(commands, 1):
        log(f"$ {command}")
        run = run_in_clone(lab, host, command, FRESH.run_dir / f"{number}-command.log")
        runs.append(run)
        log(f"exit {run.exit_code} after {run.seconds} s: {command}")
        if run.exit_code != 0:
            tail = (FRESH.run_dir / f"{number}-command.log").read_text().splitlines()[-15:]
            raise FreshFailed(f"`{command}` exited {run.exit_code} after {run.seconds} s on a fresh "
                              f"machine; its last lines:\n" + "\n".join(tail))
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="leave the container running at the end")
    parser.add_argument("--commit", default="HEAD", help="the commit to test (default HEAD)")
    args = parser.parse_args()
    started = time.monotonic()
    try:
        commit = git("rev-parse", "--verify", "--quiet", args.commit + "^{commit}")
    except subprocess.CalledProcessError:
        print(f"fresh-test: --commit {args.commit}: no such commit in {REPO}", file=sys.stderr)
        return 2
    log(f"commit under test: {commit[:12]} ({git('log', '-1', '--format=%s', commit)[:70]})")
    if args.commit == "HEAD" and git("status", "--porcelain", "--untracked-files=no"):
        log("the work tree has uncommitted changes: they are NOT tested (only the commit is cloned)")
    key = begin_run(FRESH, log)
    host = Host("fresh", FRESH.subnet + ".10", names=FRESH)
    lab = Lab([host], key, log, names=FRESH)
    try:
        base = prepare_base(log, FRESH)
        lab.up_network()
        lab.prepare(base)
        # The commands come from the README of the commit under test, as its reader sees them.
        commands = quick_start_commands((put_clone(host.root, commit) / "README.md").read_text())
        log(f"the README's quick start: {commands}")
        log(f"copied in from this machine: {copy_registry_access(host.root) or 'no pip configuration, no local CA'}")
        boot_started = time.monotonic()
        lab.boot(host.name)
        lab.wait_ready(host.name)
        boot_s = round(time.monotonic() - boot_started, 1)
        log(f"container booted, systemd running, SSH up: {boot_s} s")
        runs = run_commands(lab, host, commands)
        log("make demo once more, everything installed")
        installed = run_commands(lab, host, ["make demo"])[0]
    except (FreshFailed, subprocess.CalledProcessError, RuntimeError, ValueError) as error:
        log_failure(error, FRESH, log)
        return 1
    finally:
        if not args.keep:
            log("tearing down")
            lab.close()
    figures = {"commit": commit, "boot_s": boot_s, "quick_start": [asdict(run) for run in runs],
               "demo_installed_s": installed.seconds, "total_s": round(time.monotonic() - started, 1),
               "date": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    log(f"the quick start passed on a fresh machine; figures in {RESULTS.relative_to(REPO)}:")
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
