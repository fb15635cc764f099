"""The `consulha` command line: parses arguments, calls the library, renders the result.

Exit codes: 0 success; 1 the operation ran but the outcome is not good (no leader, DNS not
converged, a check failed); 2 usage or configuration error (nothing was changed).

This module: agent, validate, status. The operator commands are in consulha.cli.operator.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

import consulha.cli.operator  # noqa: F401  (registers the operator commands on the app)
from consulha.cli.app import ConfigOption, GroupsOption, app, console, errors, load_or_exit, one_line_errors
from consulha.config import Config


class LogFormat(str, Enum):
    text = "text"
    json = "json"


@app.command()
def agent(
    config: Path = GroupsOption,
    log_format: LogFormat = typer.Option(LogFormat.text, "--log-format", help="Log lines as text or as JSON."),
    transitions_file: Optional[str] = typer.Option(
        None, "--transitions-file", envvar="CONSULHA_TRANSITIONS_FILE",
        help="Append every role transition here as a JSON line."),
    verbose: bool = typer.Option(False, "-v", "--verbose", help="Log at DEBUG (every pass) instead of INFO."),
) -> None:
    """Run the agent in the foreground until SIGTERM/SIGINT (a second signal exits at once).

    With a directory, one process serves every group in it: a broken file is logged and
    skipped, the other groups run (exit 2 only when none can). On SIGTERM a leader releases
    its lock: the other site takes over without waiting out lock_delay.

    Example: consulha agent -c /etc/consulha/groups.d --log-format json

    Exit codes: 0 stopped by a signal; 1 failed; 2 config error."""
    log_format = log_format.value
    from consulha.ops.logs import setup_logging

    level = logging.DEBUG if verbose else logging.INFO
    if config.is_dir():
        runner = _group_host(config, log_format, level, transitions_file)
        configs = runner.configs
    else:
        cfg = load_or_exit(config)
        from consulha.agent.loop import Agent

        setup_logging(log_format, level, _secrets(cfg))
        for warning in cfg.warnings:
            logging.getLogger("consulha").warning("%s", warning)
        runner = Agent(cfg, transitions_file=transitions_file)
        configs = (cfg,)

    def on_signal(signum, _frame):
        if runner.stop_event.is_set():
            os._exit(1)
        logging.getLogger("consulha").info("%s: stopping (again to exit at once)",
                                           signal.Signals(signum).name)
        runner.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from consulha.agent.probes import log_versions

    for one in {cfg.consul.address: cfg for cfg in configs}.values():  # once per local Consul agent
        log_versions(one, runner.stop_event)
    raise typer.Exit(runner.run())


def _secrets(cfg: Config) -> list[str]:
    return [cfg.consul.token or "", cfg.dns.tsig.secret if cfg.dns.tsig else "",
            *dict(cfg.dns.secret_env).values()]


def _group_host(directory: Path, log_format: str, level: int, transitions_file: str | None):
    """The runner for a directory of group configs: every group that loads, the rest logged."""
    from consulha.agent.host import GroupHost
    from consulha.config.groups import load_groups
    from consulha.ops.logs import setup_logging

    groups = load_groups(directory)
    setup_logging(log_format, level, [s for cfg in groups.configs for s in _secrets(cfg)],
                  thread_names=True)
    log = logging.getLogger("consulha")
    for error in groups.errors:
        log.error("config error, group skipped: %s", error)
    for cfg in groups.configs:
        for warning in cfg.warnings:
            log.warning("%s", warning)
    if not groups.configs:
        log.error("no group to serve in %s", directory)
        raise typer.Exit(2)
    return GroupHost(groups.configs, transitions_file=transitions_file)


@app.command()
def validate(
    config: Path = GroupsOption,
    connect: bool = typer.Option(False, "--connect",
                                 help="Also reach Consul, authenticate to the DNS server and reach each resolver."),
) -> None:
    """Check a config file or a directory of them; with --connect also reach Consul, the DNS
    server and each resolver, and measure the round trips against the configured intervals.

    Example: consulha validate -c /etc/consulha/groups.d --connect

    Exit codes: 0 valid (and, with --connect, everything reached); 1 something not reached;
    2 a broken file, or two files claiming the same group or prefix."""
    from consulha.config.groups import load_groups

    groups = load_groups(config) if config.is_dir() else None
    configs = groups.configs if groups else (load_or_exit(config, check_listen=True),)
    for cfg in configs:
        console.print(f"{cfg.path if groups else config}: valid (site {cfg.site}, group "
                      f"{cfg.group}, {len(cfg.services)} services)", highlight=False, soft_wrap=True)
        for warning in cfg.warnings if groups else ():  # _load printed a single file's
            errors.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if groups and groups.errors:
        for error in groups.errors:
            errors.print(f"[red]config error:[/] {error}", highlight=False)
        raise typer.Exit(2)
    if not connect:
        return
    from consulha.agent.connectivity import probe_all

    all_ok = True
    for cfg in configs:
        report = probe_all(cfg)
        all_ok = all_ok and report.ok
        if groups:
            console.print(f"{cfg.path}:", highlight=False)
        for name, ok, detail in report.probes:
            mark = "[green]ok[/]" if ok else "[red]FAILED[/]"
            console.print(f"  {name}: {mark} {escape(detail)}", highlight=False, soft_wrap=True)
        for line in report.measured:
            console.print(f"  round trip: {escape(line)}", highlight=False, soft_wrap=True)
        for warning in report.warnings:
            console.print(f"  [yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    raise typer.Exit(0 if all_ok else 1)


@app.command()
@one_line_errors
def status(
    config: Path = ConfigOption,
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
    watch: bool = typer.Option(False, "--watch", help="Redraw on every change until Ctrl-C."),
) -> None:
    """Leader, candidates, every site's checks, every DNS server's and resolver's answer.

    Example: consulha status -c /etc/consulha/groups.d/app.yaml

    Exit codes: 0 a leader, and every verify server answers it; 1 not (or Consul/DNS failed);
    2 config error. docs/operations.md explains the columns."""
    cfg = load_or_exit(config)
    from consulha.agent.status import gather_status
    from consulha.consul.store import ConsulStore, ConsulUnavailable
    from consulha.dns import make_provider

    store, dns = ConsulStore(cfg.consul), make_provider(cfg.dns, cfg.site)
    if not watch:
        data = gather_status(cfg, store, dns)
        print(json.dumps(data, indent=2, sort_keys=True)) if as_json else render_status(data)
        raise typer.Exit(0 if data["ok"] else 1)
    index = 0
    while True:
        data = gather_status(cfg, store, dns)
        if as_json:
            print(json.dumps(data, sort_keys=True), flush=True)
        else:
            if console.is_terminal:
                console.clear()
            console.rule(f"consulha status {time.strftime('%H:%M:%S')}")
            render_status(data)
        try:
            # Wake on any change under the prefix (leader, candidates, site reports, requests),
            # or every 5 s to refresh the DNS answers and checks.
            new_index, _ = store.get_prefix(f"{cfg.key_prefix}/", index=index or 1, wait=5.0)
            index = new_index if new_index >= index else 0
        except ConsulUnavailable:
            time.sleep(1)


def render_status(data: dict) -> None:
    pause = data.get("pause")
    if pause:
        since = (time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(pause["since"]))
                 if pause["since"] else "an unknown time")
        console.print(f"[bold yellow]PAUSED[/] by {pause['by'] or 'unknown'} since {since}: "
                      f"{pause['reason'] or 'no reason given'} (no automatic failover; planned "
                      f"handover still works)", highlight=False)
    leader = data["leader"]
    if leader.get("site"):
        console.print(f"[bold]leader[/] site [bold green]{leader['site']}[/] epoch {leader['epoch']} "
                      f"since {leader['since']} ({leader['address']})", highlight=False)
    else:
        console.print(f"[bold red]no leader[/] (last: site {leader.get('last_site')}, "
                      f"epoch {leader.get('last_epoch')})", highlight=False)
    sites = Table("site", "candidate", "role", "reason", "failures", "last DNS write", title="sites")
    candidate_sites = {c["site"] for c in data["candidates"]}
    failures = data.get("failures") or {}
    for site in sorted(candidate_sites | set(data["sites"]) | set(failures)):
        report = data["sites"].get(site, {})
        dns = report.get("dns") or {}
        written = f"epoch {dns['epoch']}, converged in {dns['converged_s']}s" if dns else ""
        if report.get("dns_error"):
            written = f"[red]failing: {escape(report['dns_error'])}[/]"
        sites.add_row(site, "yes" if site in candidate_sites else "no", report.get("role", "?"),
                      report.get("reason", ""), _failures_cell(failures.get(site), data.get("damping", True)),
                      written)
    console.print(sites)
    checks = Table("service", "site", "status", "check", "output", title="service checks")
    for instance in data["services"]:
        for check in instance["checks"]:
            colour = {"passing": "green", "warning": "yellow"}.get(check["status"], "red")
            checks.add_row(instance["service"], instance["site"] or "?",
                           f"[{colour}]{check['status']}[/]", check["id"], check["output"][:120])
    console.print(checks)
    dns = data["dns"]
    answers = Table("verify server", "answer", "matches leader", title="DNS")
    for server, answer in dns["answers"].items():
        text = ", ".join(answer) if isinstance(answer, list) else f"[red]{answer}[/]"
        matches = dns["servers"][server]["converged"]  # every record and the fence epoch, not only the first
        answers.add_row(server, text or "(none)", "[green]yes[/]" if matches else "[red]no[/]")
    console.print(answers)
    # A primary that cannot be read is the error line below, once.
    fence = "unread" if isinstance(dns["fence_epoch"], str) else dns["fence_epoch"]
    console.print(f"fence epoch in DNS: {fence}; converged: "
                  f"{'[green]yes[/]' if dns['converged'] else '[red]no[/]'}", highlight=False)
    _render_resolvers(data.get("resolvers") or {})
    if data.get("handover"):
        request = data["handover"]
        console.print(f"pending {request['kind']}: to {request['to'] or 'any'} by {request['by']}"
                      f" ({request['state']}{': ' + request['reason'] if request['reason'] else ''})",
                      highlight=False)
    for site, mark in (data.get("maintenance") or {}).items():
        console.print(f"[yellow]maintenance[/]: site {site} by {mark.get('by')}: "
                      f"{mark.get('reason') or 'no reason given'}", highlight=False)
    for error in data["errors"]:
        console.print(f"[red]error:[/] {escape(error)}", highlight=False, soft_wrap=True)


def _render_resolvers(resolvers: dict) -> None:
    """What each resolver answers now, and the leader's flush and verify after its last switch."""
    if not resolvers:
        return
    table = Table("resolver", "answers now", "matches", "last flush", "converged after switch", "error",
                  title="resolvers (what clients see)")
    for name, view in resolvers.items():
        answers = view["answers"]
        sweep = view.get("sweep") or {}
        after = (f"{sweep['converged_s']}s" if sweep.get("converged") else "[red]no[/]") if sweep else "-"
        table.add_row(name, ", ".join(answers) if isinstance(answers, list) else f"[red]{escape(answers)}[/]",
                      "[green]yes[/]" if view["matches"] else "[red]no[/]", sweep.get("last_flush") or "-",
                      after, escape(sweep.get("error") or ""))
    console.print(table)


def _failures_cell(failures: dict | None, damping: bool) -> str:
    """A site's flap-damping record: how many failures, the hold-down left."""
    if not failures:
        return "-"
    text = escape(failures["summary"]) + ("" if damping else " (damping off)")
    return f"[yellow]{text}[/]" if failures["damped"] and damping else text


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
