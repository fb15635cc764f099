"""Hosts with systemd as PID 1: systemd-nspawn containers of the cached bookworm image, each in
its own network namespace on one bridge, reachable over SSH (recipe: FIELD-NOTES, "Systemd
hosts for deployment tests").

Every name a lab creates starts with its prefix (links, namespaces, cgroups; the nft table is
`<prefix>nat`) and its addresses lie in its own /24, so a sweep removes exactly that lab's
leftovers: the deploy lab is `dpl-` in 10.78.0.0/24, the fresh-machine test (deploylab/fresh.py)
`frs-` in 10.79.0.0/24, the chaos lab `cha-` in 10.77.0.0/24.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from deploylab import rootfs

CGROUP_HIERARCHIES = [Path("/sys/fs/cgroup/systemd"), Path("/sys/fs/cgroup/unified")]
IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def sh(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=check, text=True, capture_output=True, **kwargs)


@dataclass(frozen=True)
class LabNames:
    """Where one lab's things live, so that two labs (and their sweeps) never touch each other."""
    prefix: str
    subnet: str  # the first three octets of the lab's /24
    run_dir: Path

    @property
    def bridge(self) -> str:
        return self.prefix + "br0"

    @property
    def gateway(self) -> str:
        return self.subnet + ".1"

    @property
    def nft_table(self) -> str:
        return self.prefix.replace("-", "_") + "nat"


DEPLOY = LabNames("dpl-", "10.78.0", Path("/var/tmp/consulha-deploy"))
RUN_DIR = DEPLOY.run_dir


@dataclass
class Host:
    name: str
    address: str
    # This run's nspawn: polled, so that one that exited is reaped and seen as gone.
    process: subprocess.Popen | None = None
    names: LabNames = DEPLOY

    @property
    def netns(self) -> str:
        return self.names.prefix + self.name

    @property
    def dir(self) -> Path:
        return self.names.run_dir / "hosts" / self.name

    @property
    def root(self) -> Path:
        return self.dir / "root"

    @property
    def pidfile(self) -> Path:
        return self.dir / "nspawn.pid"

    def nspawn_pid(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None
        return self.process.pid

    def init_pid(self) -> int | None:
        """PID (on this machine) of the container's systemd: the nspawn child that runs it."""
        nspawn = self.nspawn_pid()
        if nspawn is None:
            return None
        children = sh("pgrep", "-P", str(nspawn), check=False).stdout.split()
        for pid in children:
            comm = Path(f"/proc/{pid}/comm")
            if comm.exists() and comm.read_text().strip() == "systemd":
                return int(pid)
        return None


class Lab:
    """The bridge, the hosts, their namespaces and containers; `close()` undoes all of it."""

    def __init__(self, hosts: list[Host], ssh_key: Path, log=print, names: LabNames = DEPLOY):
        self.hosts = {host.name: host for host in hosts}
        self.ssh_key = ssh_key
        self.log = log
        self.names = names
        if any(host.names != names for host in hosts):
            raise ValueError("every host of a lab carries the lab's names")

    # -- network ---------------------------------------------------------------------------

    def up_network(self) -> None:
        names = self.names
        names.run_dir.mkdir(parents=True, exist_ok=True)
        state = names.run_dir / "ip_forward.saved"
        if not state.exists():  # a crashed run's saved value is the true original
            state.write_text(IP_FORWARD.read_text())
        sh("ip", "link", "add", names.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"{names.gateway}/24", "dev", names.bridge)
        sh("ip", "link", "set", names.bridge, "up")
        # apt inside the hosts reaches the machine's mirror through this masquerade.
        IP_FORWARD.write_text("1\n")
        sh("nft", "-f", "-", input=(
            f"table ip {names.nft_table} {{\n"
            f"  chain postrouting {{ type nat hook postrouting priority 100; policy accept;\n"
            f"    ip saddr {names.subnet}.0/24 oifname != \"{names.bridge}\" masquerade\n  }}\n}}\n"))
        for host in self.hosts.values():
            veth = host.netns
            sh("ip", "netns", "add", host.netns)
            sh("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
            sh("ip", "link", "set", veth, "master", names.bridge, "up")
            for command in (["ip", "addr", "add", f"{host.address}/24", "dev", "eth0"],
                            ["ip", "link", "set", "eth0", "up"], ["ip", "link", "set", "lo", "up"],
                            ["ip", "route", "add", "default", "via", names.gateway]):
                sh("ip", "netns", "exec", host.netns, *command)

    # -- containers ------------------------------------------------------------------------

    def prepare(self, base: Path) -> None:
        """Per host: an overlay on the shared base with its own identity and our SSH key."""
        public_key = Path(f"{self.ssh_key}.pub").read_text()
        etc_hosts = "127.0.0.1 localhost\n" + "".join(
            f"{h.address} {h.name}\n" for h in self.hosts.values())
        for host in self.hosts.values():
            for sub in ("upper", "work", "root"):
                (host.dir / sub).mkdir(parents=True, exist_ok=True)
            sh("mount", "-t", "overlay", "overlay", "-o",
               f"lowerdir={base},upperdir={host.dir / 'upper'},workdir={host.dir / 'work'}",
               str(host.root))
            (host.root / "etc/hostname").write_text(host.name + "\n")
            (host.root / "etc/hosts").write_text(etc_hosts)
            sh("ssh-keygen", "-A", "-f", str(host.root))
            ssh_dir = host.root / "root/.ssh"
            ssh_dir.mkdir(mode=0o700, exist_ok=True)
            (ssh_dir / "authorized_keys").write_text(public_key)

    def boot(self, name: str) -> None:
        """Start the container; returns once nspawn runs (see wait_ready)."""
        host = self.hosts[name]
        cgroups = [hierarchy / host.netns for hierarchy in CGROUP_HIERARCHIES]
        for cgroup in cgroups:
            cgroup.mkdir(exist_ok=True)
        # nspawn --keep-unit puts the payload under its own cgroup: give each nspawn a cgroup of
        # its own first, or two hosts share one and their units collide.
        enter = "; ".join(f"echo $$ > {cgroup}/cgroup.procs" for cgroup in cgroups)
        console = open(host.dir / "console.log", "ab")
        process = subprocess.Popen(
            ["sh", "-c", f"{enter}; exec systemd-nspawn -b -q -D {host.root} -M {host.netns} "
             f"--hostname={host.name} --register=no --keep-unit "
             f"--network-namespace-path=/run/netns/{host.netns} --resolv-conf=copy-host "
             f"--console=read-only"],
            stdin=subprocess.DEVNULL, stdout=console, stderr=console, start_new_session=True)
        host.process = process
        host.pidfile.write_text(str(process.pid))  # for the sweep after a crash of this run

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        """Until systemd reports the boot finished and sshd answers."""
        host = self.hosts[name]
        deadline = time.monotonic() + timeout
        while (pid := host.init_pid()) is None:
            if time.monotonic() > deadline or host.nspawn_pid() is None:
                raise RuntimeError(f"{name}: container did not start (see {host.dir}/console.log)")
            time.sleep(0.1)
        state = ""
        while state in ("", "offline", "unknown") and time.monotonic() < deadline:
            # Empty or "offline" until the container's systemd answers on its bus (just after
            # exec); --wait then waits out "initializing" and "starting".
            state = sh("nsenter", "-t", str(pid), "-a", "systemctl", "is-system-running", "--wait",
                       check=False, timeout=max(1.0, deadline - time.monotonic())).stdout.strip()
            time.sleep(0.2 if state in ("", "offline", "unknown") else 0)
        if state != "running":
            failed = sh("nsenter", "-t", str(pid), "-a", "systemctl", "--failed", "--no-legend",
                        check=False).stdout
            raise RuntimeError(f"{name}: system state {state!r} after boot; failed units: {failed}")
        while self.ssh(name, "true", check=False).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: no SSH within {timeout}s")
            time.sleep(0.2)

    def ssh(self, name: str, command: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess:
        return sh("ssh", *ssh_options(self.ssh_key), f"root@{self.hosts[name].address}", command,
                  check=check, timeout=timeout)

    def close(self, timeout: float = 30) -> None:
        """Clean poweroff of every host at once (nspawn turns SIGTERM into a shutdown of the
        container), then the sweep kills whatever did not stop and removes the rest."""
        running = [host.process for host in self.hosts.values() if host.nspawn_pid() is not None]
        for process in running:
            process.terminate()
        deadline = time.monotonic() + timeout
        for process in running:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass  # the sweep kills it
        logs = self.names.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        for host in self.hosts.values():
            if (host.dir / "console.log").exists():
                shutil.copy(host.dir / "console.log", logs / f"{host.name}-console.log")
        sweep(self.log, self.names)


def ssh_options(key: Path) -> list[str]:
    return ["-i", str(key), "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=3"]


def wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


def sweep(log=print, names: LabNames = DEPLOY) -> None:
    """Remove everything of this lab, from this run or a crashed earlier one: containers (by
    their pid files), mounts, veths, namespaces, the bridge, the nft table, cgroups; put
    ip_forward back."""
    run_dir, prefix = names.run_dir, names.prefix
    hosts_dir = run_dir / "hosts"
    for pidfile in hosts_dir.glob("*/nspawn.pid") if hosts_dir.exists() else []:
        try:
            pid = int(pidfile.read_text())
            # Only if that PID is still our nspawn: after a crash it may belong to anybody.
            if str(pidfile.parent / "root") in Path(f"/proc/{pid}/cmdline").read_text():
                os.kill(pid, signal.SIGKILL)
                wait_gone(pid, 10)
        except (OSError, ValueError):
            pass
        pidfile.unlink(missing_ok=True)
    for line in reversed(Path("/proc/mounts").read_text().splitlines()):
        mountpoint = line.split()[1]
        if mountpoint.startswith(str(run_dir) + "/"):
            sh("umount", "-l", mountpoint, check=False)
    links = sh("ip", "-o", "link", "show", check=False).stdout.splitlines()
    for line in links:
        name = line.split(":")[1].strip().split("@")[0]
        if name.startswith(prefix) and name != names.bridge:
            sh("ip", "link", "delete", name, check=False)
    sh("ip", "link", "delete", names.bridge, check=False)
    for netns in sh("ip", "netns", "list", check=False).stdout.splitlines():
        name = netns.split()[0] if netns.strip() else ""
        if name.startswith(prefix):
            sh("ip", "netns", "delete", name, check=False)
    sh("nft", "delete", "table", "ip", names.nft_table, check=False)
    for hierarchy in CGROUP_HIERARCHIES:
        for cgroup in hierarchy.glob(prefix + "*"):
            kill_cgroup(cgroup)
            remove_cgroup(cgroup)
    saved = run_dir / "ip_forward.saved"
    if saved.exists():
        IP_FORWARD.write_text(saved.read_text())
        saved.unlink()
    sh("rm", "-rf", str(hosts_dir), check=False)


def kill_cgroup(cgroup: Path) -> None:
    """SIGKILL every process left in a host's cgroup: a container whose nspawn died keeps
    running on its own (its init is in a session and a PID namespace of its own)."""
    for _ in range(50):
        pids = {int(pid) for procs in cgroup.rglob("cgroup.procs")
                for pid in procs.read_text().split()}
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def remove_cgroup(cgroup: Path) -> None:
    """rmdir bottom-up: the container's systemd leaves its own nested cgroups behind."""
    nested = [path for path in cgroup.rglob("*") if path.is_dir()]
    for directory in sorted(nested, key=lambda p: len(p.parts), reverse=True) + [cgroup]:
        try:
            directory.rmdir()  # control files do not count: a cgroup without tasks goes
        except OSError:
            pass


def prepare_base(log=print, names: LabNames = DEPLOY) -> Path:
    """The base image unpacked for this lab (from the cached tarball, built if missing)."""
    base = names.run_dir / "base"
    tarball = rootfs.ensure_tarball(log)
    stamp = names.run_dir / "base.from"  # which tarball the unpacked base came from
    source = f"{tarball} {tarball.stat().st_mtime_ns}"
    if not stamp.exists() or stamp.read_text() != source:
        sh("rm", "-rf", str(base))
        rootfs.extract(tarball, base)
        stamp.write_text(source)
    return base


def begin_run(names: LabNames, log=print) -> Path:
    """Sweep an earlier run's leftovers, clear the run directory of its logs and make this run's
    SSH key (the directory is 0700: the run's secrets live there); returns the key's path."""
    log("sweeping leftovers of an earlier run")
    sweep(log, names)
    names.run_dir.mkdir(parents=True, exist_ok=True)
    names.run_dir.chmod(0o700)
    for old_log in names.run_dir.glob("*.log"):
        old_log.unlink()
    key = names.run_dir / "id_ed25519"
    for old_key in (key, key.with_suffix(".pub")):
        old_key.unlink(missing_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", names.prefix + "lab",
                    "-f", str(key)], check=True)
    return key


def log_failure(error: Exception, names: LabNames, log=print) -> None:
    """The failure, a failed command's stderr, and where this run's logs are."""
    log(f"FAILED: {error}")
    detail = getattr(error, "stderr", "") or ""
    if detail:
        log(detail[-2000:])
    log(f"logs of this run: {names.run_dir}/*.log, {names.run_dir}/logs/*-console.log")
