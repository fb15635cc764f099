"""The command provider: an external program switches DNS (e.g. through an in-house DNS API).

The contract (docs/dns-providers.md):

    COMMAND read    --record R --type T [--record R --type T ...]
        prints JSON {"records": [{"record": R, "type": T, "values": [...]}, ...], "epoch": N or null}
    COMMAND publish --epoch N --site S --ttl T --record R --type T --value V [--record ... --value ...]
        exit 0: done; exit 3 (EXIT_STALE): refused, the stored epoch is newer; anything else: error

Secrets reach it only through the environment (dns.secret_env) or files it reads itself, never
its command line, which any local user can read. Its fencing is read-compare-write done by the
command: only as strong as that compare, not atomic like an RFC 2136 prerequisite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess

from consulha.config import DnsConfig
from consulha.dns.errors import DnsError, StaleEpochError
from consulha.dns.fence import check_site_name
from consulha.dns.protocol import DnsState, PublishResult
from consulha.dns.verify import Verifier
from consulha.dns.wire import canonical

EXIT_STALE = 3
FENCE = "command"  # the one fence of the command provider: the epoch its back end stores
OUTPUT_LIMIT = 1 << 20  # a reply longer than this is garbage, whatever it says


class CommandProvider:
    def __init__(self, cfg: DnsConfig, site: str) -> None:
        """Raises ValueError for a site name the fence cannot carry or a value invalid for its type."""
        check_site_name(site)
        if not cfg.command:
            raise ValueError("provider command needs dns.command")
        self.cfg = cfg
        self.site = site
        self.program = os.path.basename(cfg.command[0])
        self.wanted = {(r.name, r.type): (canonical(r.type, r.value),) for r in cfg.records}
        # The command keeps the epoch wherever its back end can; only values are asked of DNS.
        self.verifier = Verifier(cfg, self.wanted, read_fences=False)
        self._secrets = dict(cfg.secret_env)

    def __repr__(self) -> str:
        return f"CommandProvider(program={self.program!r}, records={len(self.cfg.records)}, site={self.site!r})"

    def answers(self) -> dict[str, tuple[str, ...] | str]:
        """Each verify server's answer for the first record (the site's address)."""
        return self.verifier.answers()

    def read_state(self) -> DnsState:
        """Run `COMMAND read`. Raises DnsError if it fails or prints anything but the contract's JSON."""
        stdout = self._run("read", self._record_arguments(with_values=False), expect_exit=(0,))[1]
        try:
            reply = json.loads(stdout)
            epoch = reply["epoch"]
            if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
                raise ValueError(f"epoch must be an integer or null, got {epoch!r}")
            found = {(item["record"].lower().rstrip(".") + ".", item["type"].upper()):
                     tuple(sorted(canonical(item["type"].upper(), value) for value in item["values"]))
                     for item in reply["records"]}
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise DnsError(f"{self.program} read printed no valid reply ({type(e).__name__}: {e}): "
                           f"{self._scrub(_excerpt(stdout))}") from None
        return DnsState(values={key: found.get(key, ()) for key in self.wanted}, epochs={FENCE: epoch},
                        fence_txt={})

    def publish(self, epoch: int) -> PublishResult:
        """Read, refuse a newer stored epoch ourselves, then `COMMAND publish` if anything differs.
        Raises StaleEpochError when either we or the command see a newer stored epoch."""
        before = self.read_state()
        if self.cfg.fencing and before.epoch is not None and before.epoch > epoch:
            raise StaleEpochError(epoch, before.epoch, self.program)
        if before.values == self.wanted and (not self.cfg.fencing or before.epoch == epoch):
            return PublishResult(changed=False, before=before, epoch=epoch)
        arguments = ["--epoch", str(epoch), "--site", self.site, "--ttl", str(self.cfg.ttl),
                     *self._record_arguments(with_values=True)]
        code, _ = self._run("publish", arguments, expect_exit=(0, EXIT_STALE))
        if code == EXIT_STALE:
            stored = self.read_state().epoch
            raise StaleEpochError(epoch, stored if stored is not None else epoch + 1, self.program)
        return PublishResult(changed=True, before=before, epoch=epoch, written=self.cfg.zones)

    def probe_auth(self) -> None:
        """A `read`: it proves the command runs and its credentials work, and changes nothing."""
        self.read_state()

    def _record_arguments(self, with_values: bool) -> list[str]:
        arguments = []
        for record in self.cfg.records:
            arguments += ["--record", record.name, "--type", record.type]
            if with_values:
                arguments += ["--value", record.value]
        return arguments

    def _run(self, action: str, arguments: list[str], expect_exit: tuple[int, ...]) -> tuple[int, str]:
        """Run COMMAND ACTION ARGUMENTS within cfg.timeout; (exit code, stdout). Raises DnsError
        for a missing or non-executable program, a timeout (its whole process group is killed),
        an unexpected exit code (with its stderr's tail) or oversized output."""
        what = f"{self.program} {action}"
        environment = {**os.environ, **self._secrets, "CONSULHA_SITE": self.site}
        try:
            process = subprocess.Popen([*self.cfg.command, action, *arguments], stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment,
                                       start_new_session=True)
        except OSError as e:  # missing, not executable, bad interpreter line
            raise DnsError(f"{what}: cannot run {self.cfg.command[0]}: {e.strerror or e}") from None
        try:
            stdout, stderr = process.communicate(timeout=self.cfg.timeout)
        except subprocess.TimeoutExpired:
            # Kill the group: a script's children would otherwise hold its pipes open.
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise DnsError(f"{what}: no answer within {self.cfg.timeout:g}s (dns.timeout); killed it") from None
        if len(stdout) > OUTPUT_LIMIT:
            raise DnsError(f"{what}: printed {len(stdout)} bytes, more than any reply can need")
        if process.returncode not in expect_exit:
            raise DnsError(f"{what}: {_exit_text(process.returncode)}: {self._scrub(_excerpt(stderr)) or 'no stderr'}")
        return process.returncode, stdout.decode(errors="replace")

    def _scrub(self, text: str) -> str:
        """The text with every secret of dns.secret_env masked, should the command echo one."""
        for secret in self._secrets.values():
            text = text.replace(secret, "***")
        return text


def _exit_text(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def _excerpt(output: str | bytes, limit: int = 300) -> str:
    text = output.decode(errors="replace") if isinstance(output, bytes) else output
    text = " ".join(text.split())
    return text if len(text) <= limit else "..." + text[-limit:]
