"""A three-node ZooKeeper ensemble in the chaos lab's server namespaces sa, sb and sw (Debian's
`zookeeper` package), for the ZooKeeper design that consulha replaces. Bench tooling, not product.

Each node has its own config and data dir under the lab's workdir (`zk-<host>/`), every port
explicit, ZooKeeper's default timing (tickTime 2000 ms, initLimit 10, syncLimit 5 ticks: the
values of Debian's example zoo.cfg and of upstream's docs). The JVM runs in the namespace through
the lab's `popen`, so `NetLab.destroy` (and the sweep of a crashed run) ends it with the lab.
"""

from __future__ import annotations

import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lab.daemon import log_tail
from lab.netns import NetLab

JAR = Path("/usr/share/java/zookeeper.jar")   # its manifest names the rest of its classpath
# ZooKeeper logs through slf4j; without a binding it logs nothing at all. The simple binding
# (Debian's libslf4j-java, a dependency of the package) writes INFO and up to stderr: the log.
LOG_BINDING = Path("/usr/share/java/slf4j-simple.jar")
MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"
HOSTS = ("sa", "sb", "sw")            # myid 1, 2, 3
CLIENT_PORT = 2181
QUORUM_PORT = 2888
ELECTION_PORT = 3888
TICK_MS = 2000
INIT_LIMIT = 10
SYNC_LIMIT = 5
# Three JVMs share two cores with the rest of the lab: a small heap and the serial collector
# keep their memory and CPU down (no timing setting of ZooKeeper's is touched).
JVM_OPTIONS = ("-Xmx256m", "-XX:+UseSerialGC",
               # Timestamps in the log, in the format of the agents' logs.
               "-Dorg.slf4j.simpleLogger.showDateTime=true",
               "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd HH:mm:ss,SSS")


def preflight() -> str | None:
    """Why the ensemble cannot run here (None: it can)."""
    for path in (JAR, LOG_BINDING):
        if not path.exists():
            return f"{path} not found (Debian package zookeeper: scripts/install-deps)"
    return None


def four_letter(address: str, command: str = "srvr", port: int = CLIENT_PORT,
                timeout: float = 1.0) -> str:
    """The answer of a four-letter-word command ('' when the node does not answer)."""
    try:
        with socket.create_connection((address, port), timeout=timeout) as connection:
            connection.sendall(command.encode())
            chunks = []
            while chunk := connection.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks).decode(errors="replace")
    except OSError:
        return ""


def mode_of(srvr_answer: str) -> str | None:
    """'leader', 'follower' or None (not serving: no quorum, or not answering)."""
    for line in srvr_answer.splitlines():
        if line.startswith("Mode:"):
            return line.split(":", 1)[1].strip()
    return None


@dataclass(frozen=True)
class ZkNodeConfig:
    myid: int
    host: str
    data_dir: Path

    def zoo_cfg(self, lab: NetLab) -> str:
        servers = "".join(f"server.{i}={lab.addr(h)}:{QUORUM_PORT}:{ELECTION_PORT}\n"
                          for i, h in enumerate(HOSTS, start=1))
        return (f"tickTime={TICK_MS}\ninitLimit={INIT_LIMIT}\nsyncLimit={SYNC_LIMIT}\n"
                f"dataDir={self.data_dir}\n"
                f"clientPort={CLIENT_PORT}\nclientPortAddress={lab.addr(self.host)}\n"
                f"{servers}"
                # The AdminServer (Jetty, port 8080) is not needed; srvr answers readiness.
                "admin.enableServer=false\n"
                "4lw.commands.whitelist=srvr,ruok,mntr\n")


class ZkNode:
    """One ZooKeeper server in its namespace."""

    def __init__(self, lab: NetLab, myid: int, host: str):
        self.lab = lab
        self.host = host
        self.dir = lab.workdir / f"zk-{host}"
        self.config = ZkNodeConfig(myid, host, self.dir / "data")
        self.log_path = lab.workdir / f"zk-{host}.log"
        self.process: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return self.lab.addr(self.host)

    def start(self) -> "ZkNode":
        if self.running():
            return self
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        (self.config.data_dir / "myid").write_text(f"{self.config.myid}\n")
        cfg = self.dir / "zoo.cfg"
        cfg.write_text(self.config.zoo_cfg(self.lab))
        argv = ["java", *JVM_OPTIONS, "-cp", f"{JAR}:{LOG_BINDING}", MAIN, str(cfg)]
        self.process = self.lab.popen(self.host, argv, self.log_path)
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.wait(10)

    def mode(self) -> str | None:
        """Its role as it answers the observer now (None: not serving)."""
        return mode_of(self.lab.observe(four_letter, self.address))

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines)


class ZkEnsemble:
    """server.1..3 on sa, sb, sw; `start()` returns once each serves (one leader, two followers)."""

    def __init__(self, lab: NetLab):
        self.lab = lab
        self.nodes = {host: ZkNode(lab, i, host) for i, host in enumerate(HOSTS, start=1)}
        self.started_in: float | None = None   # seconds from the first JVM to a serving quorum

    def connect_string(self) -> str:
        return ",".join(f"{node.address}:{CLIENT_PORT}" for node in self.nodes.values())

    def modes(self) -> dict[str, str | None]:
        return {host: node.mode() for host, node in self.nodes.items()}

    def serving(self) -> bool:
        modes = sorted(str(mode) for mode in self.modes().values())
        return modes == ["follower", "follower", "leader"]

    def start(self, timeout: float = 60.0) -> "ZkEnsemble":
        began = time.monotonic()
        for node in self.nodes.values():
            node.start()
        deadline = began + timeout
        while time.monotonic() < deadline:
            exited = [h for h, n in self.nodes.items() if n.process and n.process.poll() is not None]
            if exited:
                raise RuntimeError(f"ZooKeeper on {exited} exited:\n{self.logs()}")
            if self.serving():
                self.started_in = time.monotonic() - began
                return self
            time.sleep(0.2)
        raise RuntimeError(f"ZooKeeper ensemble not serving after {timeout}s "
                           f"({self.modes()}):\n{self.logs()}")

    def stop(self) -> None:
        for node in self.nodes.values():
            node.kill()

    def logs(self) -> str:
        return "\n".join(f"--- zookeeper {h}\n{n.log_tail()}" for h, n in self.nodes.items())
