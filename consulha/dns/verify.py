"""What each verify server answers: the primary and the secondaries clients actually ask.

A server has converged when it answers every record with its value and every zone's fence with
the leader's epoch. Each server's zone SOA serial is read too, so a lagging secondary shows how
far behind it is. A server's failure is reported in place, never raised: a secondary that is down
must not stop the failover, only show in `status`.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from consulha.config import DnsConfig
from consulha.dns.fence import parse_epoch
from consulha.dns.wire import Server, ask, where

Answer = tuple[str, ...] | str  # rdata texts, or an error: "no answer within 2s", "REFUSED", "error: ..."


@dataclass(frozen=True)
class ServerView:
    server: str  # "host:port"
    values: dict[tuple[str, str], Answer]  # (name, type) -> its answer
    epochs: dict[str, int | None | str] = field(default_factory=dict)  # fence -> epoch, None, or error
    serials: dict[str, int | str] = field(default_factory=dict)  # zone -> SOA serial or error
    failure: str | None = None  # the timeout or network error that cut the server's questions short

    def converged(self, wanted: dict[tuple[str, str], tuple[str, ...]], epoch: int | None) -> bool:
        """Every record answers its wanted value, and (when fences are read) every fence `epoch`."""
        return (all(self.values.get(key) == value for key, value in wanted.items())
                and all(stored == epoch for stored in self.epochs.values()))

    def mismatch(self, wanted: dict[tuple[str, str], tuple[str, ...]], epoch: int | None) -> str:
        """What keeps the server from having converged, "" when it has: its failure, or each
        record and fence that differs ("app.example.test. A 192.0.2.1, want 192.0.2.2")."""
        if self.failure:
            return self.failure
        wrong = [f"{name} {rtype} {_text(self.values.get((name, rtype), 'not asked'))}, want {','.join(value)}"
                 for (name, rtype), value in wanted.items() if self.values.get((name, rtype)) != value]
        wrong += [f"{fence} {stored if isinstance(stored, str) else f'epoch {stored}'}, want epoch {epoch}"
                  for fence, stored in self.epochs.items() if stored != epoch]
        return "; ".join(wrong)

    def describe(self) -> str:
        """ "app.example.test. A 192.0.2.1, epoch 5, serial 7" for a log line."""
        parts = [f"{name} {rtype} {_text(answer)}" for (name, rtype), answer in self.values.items()]
        parts += [f"epoch {epoch}" for epoch in self.epochs.values()]
        parts += [f"serial {serial}" for serial in self.serials.values()]
        return ", ".join(parts)

    def as_json(self) -> dict:
        return {"records": {f"{name} {rtype}": list(a) if isinstance(a, tuple) else a
                            for (name, rtype), a in self.values.items()},
                "fence_epochs": dict(self.epochs), "soa_serials": dict(self.serials), "error": self.failure}


class Verifier:
    """Asks cfg.verify as a client would (UDP, no recursion), every server in parallel."""

    def __init__(self, cfg: DnsConfig, wanted: dict[tuple[str, str], tuple[str, ...]], read_fences: bool):
        self.cfg = cfg
        self.wanted = wanted
        self.read_fences = read_fences and cfg.fencing
        # A DNS query never needs long; the command provider's timeout is for its command.
        self.timeout = cfg.timeout if cfg.provider == "rfc2136" else min(cfg.timeout, 2.0)

    def views(self) -> dict[str, ServerView]:
        """ "host:port" -> what it answers, in the configured order. Never raises for a server."""
        servers = self.cfg.verify
        if not servers:
            return {}
        # In parallel, so one dead server costs one timeout, not one per server.
        with ThreadPoolExecutor(max_workers=len(servers)) as pool:
            return {view.server: view for view in pool.map(self.view_of, servers)}

    def laggards(self, epoch: int | None) -> dict[str, ServerView]:
        """The verify servers that do not yet answer every value (and fence `epoch`)."""
        return {server: view for server, view in self.views().items() if not view.converged(self.wanted, epoch)}

    def answers(self) -> dict[str, Answer]:
        """ "host:port" -> its answer for the first record (the site's address)."""
        first = (self.cfg.records[0].name, self.cfg.records[0].type)
        return {server: view.values[first] for server, view in self.views().items()}

    def view_of(self, server: Server) -> ServerView:
        failed: str | None = None

        def asked(name: str, rdtype: str) -> Answer:
            # After a timeout or network error the server is down: do not wait once per query.
            nonlocal failed
            if failed:
                return failed
            answer = ask(server, name, rdtype, self.timeout)
            if answer == "timeout":
                answer = f"no answer within {self.timeout:g}s"
            if isinstance(answer, str) and answer.startswith(("no answer", "error:")):
                failed = answer
            return answer

        values = {(r.name, r.type): asked(r.name, r.type) for r in self.cfg.records}
        epochs = {}
        if self.read_fences:
            for zone in self.cfg.zones:
                txt = asked(self.cfg.fence_of(zone), "TXT")
                epochs[self.cfg.fence_of(zone)] = txt if isinstance(txt, str) else parse_epoch(txt)
        serials = {}
        for zone in self.cfg.zones:
            soa = asked(zone, "SOA")
            serials[zone] = soa if isinstance(soa, str) else int(soa[0].split()[2]) if soa else "no SOA"
        return ServerView(server=where(server), values=values, epochs=epochs, serials=serials, failure=failed)


def describe_laggards(laggards: dict[str, ServerView]) -> str:
    """ "host:port answered X; host:port: no answer within 2s" for a log line or an error message."""
    return "; ".join(f"{server}: {view.failure}" if view.failure else f"{server} answered {view.describe()}"
                     for server, view in laggards.items())


def _text(answer: Answer) -> str:
    if isinstance(answer, str):
        return answer
    return ",".join(answer) if answer else "nothing"
