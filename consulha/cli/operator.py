"""The operator commands: handover, takeover, maintenance, pause, resume, cleanup, history. Each
parses its options, calls consulha.agent.operations and renders the outcome (exit 0 done, 1 refused
or not done safely, 2 usage or config error)."""

from __future__ import annotations

import json
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from consulha.cli.app import (
    ConfigOption,
    DryRunOption,
    JsonOption,
    app,
    console,
    errors,
    load_or_exit,
    one_line_errors,
    timeout_option,
)
from consulha.config import Config


class Switch(str, Enum):
    on = "on"
    off = "off"


def _operations(cfg: Config):
    from consulha.agent.operations import Operations
    from consulha.consul.store import ConsulStore
    from consulha.dns import make_provider

    return Operations(cfg, ConsulStore(cfg.consul), make_provider(cfg.dns, cfg.site))


def _one_of(name: str | None, alias: str | None) -> str | None:
    """takeover's --to, or its hidden old name --site (not both)."""
    if name and alias and name != alias:
        errors.print("give --to or --site, not both")
        raise typer.Exit(2)
    return name or alias


def _duration(text: str, option: str) -> float:
    from consulha.core.durations import parse_duration

    try:
        seconds = parse_duration(text)
    except ValueError as error:
        errors.print(f"{option}: {error}")
        raise typer.Exit(2)
    if seconds <= 0:
        errors.print(f"{option}: must be positive")
        raise typer.Exit(2)
    return seconds


def _finish(outcome, as_json: bool) -> None:
    from consulha.agent.operations import outcome_json

    if as_json:
        print(json.dumps(outcome_json(outcome), indent=2, sort_keys=True))
    else:
        colour = "green" if outcome.ok else "red"
        # soft_wrap: the outcome is one line in a log or a pipe, however narrow the terminal.
        console.print(f"[{colour}]{escape(outcome.message)}[/]", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if outcome.ok else 1)


@app.command()
@one_line_errors
def handover(
    config: Path = ConfigOption,
    to: Optional[str] = typer.Option(None, "--to", help="Target site (default: any healthy candidate)."),
    timeout: str = timeout_option("30s", "Give up, and withdraw the request, after this long"),
    no_wait: bool = typer.Option(False, "--no-wait", help="Return once the request is recorded."),
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Planned switchover: the leader releases, the target takes the lock, DNS moves once.

    Example: consulha handover -c /etc/consulha/groups.d/app.yaml --to b --dry-run

    Waits until the target leads and DNS answers it.

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    cfg = load_or_exit(config)
    seconds = _duration(timeout, "--timeout")
    _finish(_operations(cfg).handover(to, seconds, wait=not no_wait, dry_run=dry_run), as_json)


@app.command()
@one_line_errors
def takeover(
    config: Path = ConfigOption,
    to: Optional[str] = typer.Option(None, "--to", help="The healthy candidate that must take over "
                                     "(required)."),
    site: Optional[str] = typer.Option(None, "--site", hidden=True),   # its name before --to
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    timeout: str = timeout_option("60s", "Give up waiting for the new leader after this long"),
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Forced failover: destroy the leader's session so the target acquires after lock-delay.

    Example: consulha takeover -c /etc/consulha/groups.d/app.yaml --to b

    For a leader that cannot hand over; prefer handover.

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    site = _one_of(to, site)
    if site is None:
        errors.print("takeover needs --to SITE")
        raise typer.Exit(2)
    cfg = load_or_exit(config)
    seconds = _duration(timeout, "--timeout")
    if not (yes or dry_run) and not typer.confirm(
            f"Destroy the current leader's session so that site {site} takes over?"):
        errors.print("aborted: nothing changed")
        raise typer.Exit(1)
    _finish(_operations(cfg).takeover(site, seconds, dry_run=dry_run), as_json)


@app.command()
@one_line_errors
def maintenance(
    state: Switch = typer.Argument(..., help="on: withdraw the site; off: bring it back."),
    config: Path = ConfigOption,
    site: Optional[str] = typer.Option(None, "--site", help="The site (default: the config's site)."),
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, shown by status and history."),
    force: bool = typer.Option(False, "--force", help="Even when no other site can take over."),
    timeout: str = timeout_option("30s", "Give up waiting for a leader's handover after this long"),
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Withdraw a site from the election (a leader hands over first), or bring it back.

    Example: consulha maintenance on -c /etc/consulha/groups.d/app.yaml --reason "kernel update"

   

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    cfg = load_or_exit(config)
    seconds = _duration(timeout, "--timeout")
    _finish(_operations(cfg).maintenance(site or cfg.site, state == Switch.on, reason, force, seconds,
                                         dry_run=dry_run), as_json)


@app.command()
@one_line_errors
def pause(
    config: Path = ConfigOption,
    reason: Optional[str] = typer.Option(None, "--reason", help="Why, shown by status and history."),
    yes: bool = typer.Option(False, "--yes", help="Do not ask for confirmation."),
    as_json: bool = JsonOption,
) -> None:
    """Pause automatic failover for the whole group until `resume`.

    While paused nobody takes a free lock and a leader keeps it when a service check fails;
    planned handover still works. A leader that dies (agent, node) still loses its session:
    then nobody leads until resume.

    Example: consulha pause -c /etc/consulha/groups.d/app.yaml --reason "flapping db check"

   

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    cfg = load_or_exit(config)
    if not yes and not typer.confirm(f"Pause automatic failover of group {cfg.group}? If its "
                                     f"leader dies meanwhile, nobody takes over until resume."):
        errors.print("aborted: nothing changed")
        raise typer.Exit(1)
    _finish(_operations(cfg).pause(reason), as_json)


@app.command()
@one_line_errors
def resume(
    config: Path = ConfigOption,
    as_json: bool = JsonOption,
) -> None:
    """End a pause: automatic failover is on again (a standby takes a free lock at once).

    Example: consulha resume -c /etc/consulha/groups.d/app.yaml

   

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    cfg = load_or_exit(config)
    _finish(_operations(cfg).resume(), as_json)


@app.command()
@one_line_errors
def cleanup(
    config: Path = ConfigOption,
    site: Optional[str] = typer.Option(None, "--site", help="The site (default: every site of the group)."),
    dry_run: bool = DryRunOption,
    as_json: bool = JsonOption,
) -> None:
    """Clear the recorded failures (flap damping) once a site is repaired: it competes on equal
    terms again at once, instead of after its hold-down.

    Example: consulha cleanup -c /etc/consulha/groups.d/app.yaml --site a

   

    Exit codes: 0 done; 1 refused, not done safely, or Consul/DNS failed (the message says why);
    2 bad usage or config error."""
    cfg = load_or_exit(config)
    _finish(_operations(cfg).cleanup(site, dry_run=dry_run), as_json)


@app.command()
@one_line_errors
def history(
    config: Path = ConfigOption,
    limit: int = typer.Option(20, "--limit", min=1, max=100, help="How many changes, the newest (1-100)."),
    as_json: bool = JsonOption,
) -> None:
    """Recorded leadership changes, newest last: time, epoch, from, to, cause.

    Example: consulha history -c /etc/consulha/groups.d/app.yaml --limit 50

    Exit codes: 0 listed; 1 Consul failed; 2 bad usage or config error."""
    cfg = load_or_exit(config)
    outcome = _operations(cfg).history(limit)
    if as_json:
        print(json.dumps(outcome.data["history"], indent=2))
        return
    table = Table("time", "epoch", "from", "to", "cause", title="leadership history")
    for entry in outcome.data["history"]:
        table.add_row(entry.get("time", ""), str(entry.get("epoch")), entry.get("from") or "-",
                      entry.get("to") or "-", entry.get("cause", ""))
    console.print(table)


