"""The command line: exit codes, config errors, status JSON, validate --connect."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from lab.pair import wait_until


def consulha(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "consulha.cli", *args], capture_output=True,
                          text=True, timeout=60)


def test_config_error_names_file_key_and_line_and_exits_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("site: a\ngroup: app\nsession:\n  ttl: 3s\nservices: []\n")
    for command in (["validate"], ["agent"], ["status"]):
        done = consulha(*command, "-c", str(bad))
        assert done.returncode == 2, (command, done.stderr)
        assert f"{bad}:4: session.ttl" in done.stderr.replace("\n", " ") or \
            f"{bad}:4:" in done.stderr, done.stderr


def test_missing_config_file_exits_2(tmp_path):
    done = consulha("validate", "-c", str(tmp_path / "nope.yaml"))
    assert done.returncode == 2
    assert "nope.yaml" in done.stderr


@pytest.mark.integration
def test_bad_config_never_touches_a_running_leader(lab, tmp_path):
    lab.start("a")
    first = lab.wait_leader("a")
    bad = tmp_path / "broken.yaml"
    bad.write_text((tmp_path / "a.yaml").read_text().replace("lock_delay: 1s", "lock_delay: 1 parsec"))
    done = consulha("agent", "-c", str(bad))
    assert done.returncode == 2 and "session.lock_delay" in done.stderr
    assert lab.leader()["epoch"] == first["epoch"]


@pytest.mark.integration
def test_status_json_and_exit_codes(lab):
    config = lab.config("a")
    done = consulha("status", "-c", config, "--json")
    assert done.returncode == 1  # no agent yet: no leader
    assert json.loads(done.stdout)["leader"]["site"] is None
    lab.start("a")
    leader = lab.wait_leader("a")
    lab.start("b")
    lab.wait_dns("a")
    lab.wait_candidates("a", "b")
    done = consulha("status", "-c", config, "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    status = json.loads(done.stdout)
    assert status["leader"]["site"] == "a" and status["leader"]["epoch"] == leader["epoch"]
    assert [c["site"] for c in status["candidates"]] == ["a", "b"]
    assert status["dns"]["converged"] is True
    assert list(status["dns"]["answers"].values()) == [["192.0.2.1"]]
    sites = {(s["service"], s["site"]): s for s in status["services"]}
    assert sites[("api", "a")]["status"] == "passing" and "leader" in sites[("api", "a")]["tags"]
    assert "standby" in sites[("api", "b")]["tags"]
    secret = lab.named.secret
    assert secret not in done.stdout
    text = consulha("status", "-c", config)
    assert text.returncode == 0 and "leader" in text.stdout and secret not in text.stdout


@pytest.mark.integration
def test_validate_connect_reports_each_dependency(lab, tmp_path):
    config = lab.config("a")
    done = consulha("validate", "-c", config, "--connect")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "consul" in done.stdout and "dns" in done.stdout and "FAILED" not in done.stdout
    wrong_key = tmp_path / "wrong.key"
    wrong_key.write_text("c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0MTI=\n")
    wrong_key.chmod(0o600)
    bad = tmp_path / "a-wrong-key.yaml"
    bad.write_text(open(config).read().replace(str(lab.named.tsig_key_file()), str(wrong_key)))
    done = consulha("validate", "-c", str(bad), "--connect")
    assert done.returncode == 1
    assert "FAILED" in done.stdout and "NOTAUTH" in done.stdout


@pytest.mark.integration
def test_tags_show_roles_in_consul(lab):
    lab.start("a")
    lab.wait_leader("a")
    lab.start("b")
    lab.wait_candidates("a", "b")

    def tags():
        return {s["Meta"]["consulha_site"]: s["Tags"] for s in lab.store.local_services().values()}
    wait_until(lambda: tags() == {"a": ["leader"], "b": ["standby"]}, 10, what="role tags")


def test_version_names_the_release_the_key_layout_and_the_consul_range():
    from importlib.metadata import version

    done = consulha("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (f"consulha {version('consulha')} (key layout 1; Consul tested on "
                                   "1.8, reviewed up to 1.21)")


COMMANDS = ("agent", "validate", "status", "handover", "takeover", "maintenance", "pause", "resume",
            "cleanup", "history")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_an_example_exit_codes_and_help_on_every_option(command):
    import click
    import typer.main

    from consulha.cli.main import app
    group = typer.main.get_command(app)
    cli = group.commands[command]
    assert "Example: consulha " + command in cli.help and "Exit codes:" in cli.help, cli.help
    for param in cli.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"{command} {param.opts} has no help text"
    from typer.testing import CliRunner
    shown = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "120"}).output
    assert "<bool>" not in shown, shown   # a flag reads as a flag, not as an option taking a value


def test_fixed_choices_are_choices_and_takeovers_old_option_still_works():
    from typer.testing import CliRunner

    from consulha.cli.main import app
    runner = CliRunner()
    done = runner.invoke(app, ["maintenance", "maybe", "-c", "x.yaml"])
    assert done.exit_code == 2 and "maybe" in done.output
    done = runner.invoke(app, ["agent", "-c", "x.yaml", "--log-format", "xml"])
    assert done.exit_code == 2 and "xml" in done.output
    done = runner.invoke(app, ["takeover", "-c", "x.yaml", "--to", "a", "--site", "b", "--yes"])
    assert done.exit_code == 2 and "not both" in done.output
    done = runner.invoke(app, ["takeover", "-c", "x.yaml", "--yes"])
    assert done.exit_code == 2 and "takeover needs --to SITE" in done.output
