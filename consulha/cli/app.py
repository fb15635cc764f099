"""The `consulha` Typer app and what every command shares: loading the config (exit 2 on a
config error), one-line errors for Consul and DNS failures, rendering an operator outcome.

Commands live in consulha.cli.main (agent, validate, status) and consulha.cli.operator (handover,
takeover, maintenance, pause, resume, history).
"""

from __future__ import annotations

import functools
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from consulha.config import Config, ConfigError, load_config

app = typer.Typer(
    add_completion=False, no_args_is_help=True,
    # Plain help: rich's option table shows every flag with a `<bool>` value it does not take.
    rich_markup_mode=None,
    # Locals in tracebacks would print the config, and with it the ACL token and TSIG secret.
    pretty_exceptions_show_locals=False,
    help="Keep exactly one site in charge with a health-gated Consul lock, and point DNS at it.",
)
console = Console()
errors = Console(stderr=True)


def version_line() -> str:
    from consulha import __version__
    from consulha.consul.versions import REVIEWED_UP_TO, TESTED
    from consulha.core.keys import KEY_LAYOUT

    return (f"consulha {__version__} (key layout {KEY_LAYOUT}; Consul tested on "
            f"{'.'.join(map(str, TESTED))}, reviewed up to {'.'.join(map(str, REVIEWED_UP_TO))})")


def _print_version(wanted: bool) -> None:
    if wanted:
        console.print(version_line(), highlight=False)
        raise typer.Exit(0)


@app.callback()
def _root(version: bool = typer.Option(False, "--version", is_eager=True, callback=_print_version,
                                       help="Print the version and the key layout, then exit.")) -> None:
    """Keep exactly one site in charge with a health-gated Consul lock, and point DNS at it."""

ConfigOption = typer.Option(..., "-c", "--config", help="The site's YAML config file.")
JsonOption = typer.Option(False, "--json", help="Print the result as JSON (for scripts).")


def timeout_option(default: str, what: str):
    return typer.Option(default, "--timeout", help=f"{what} (e.g. 30s, 2m).")
DryRunOption = typer.Option(False, "--dry-run",
                            help="Check and print what would happen; change nothing.")
GroupsOption = typer.Option(..., "-c", "--config", help="The site's YAML config file, or a "
                            "directory of them (*.yaml, one group each) served by one process.")


def one_line_errors(command):
    """Consul or DNS failing under an operator command is one line naming what failed and
    where (the messages never carry a secret), exit 1: not a traceback."""
    @functools.wraps(command)
    def run(*args, **kwargs):
        from consulha.consul.store import ConsulRefused, ConsulUnavailable
        from consulha.dns import DnsError

        try:
            return command(*args, **kwargs)
        except (ConsulUnavailable, ConsulRefused, DnsError) as error:
            # soft_wrap: one line in a log or a pipe too, however narrow the terminal.
            errors.print(f"[red]error:[/] {command.__name__}: {escape(str(error))}", highlight=False,
                         soft_wrap=True)
            raise typer.Exit(1)
    return run


def load_or_exit(path: Path, check_listen: bool = False) -> Config:
    listen_probe = None
    if check_listen:
        from consulha.ops.listen import HostListenProbe  # metrics' imports: only when asked
        listen_probe = HostListenProbe()
    try:
        cfg = load_config(path, listen_probe)
    except ConfigError as error:
        errors.print(f"[red]config error:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(2)
    for warning in cfg.warnings:
        errors.print(f"[yellow]warning:[/] {warning}", highlight=False)
    return cfg


