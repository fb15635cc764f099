"""What `make fresh-test` relies on without booting anything: the quick start read from the
README as a reader sees it, and scripts/install-deps saying exactly what does not run."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from deploylab.quickstart import quick_start_commands

REPO = Path(__file__).resolve().parents[2]
INSTALL_DEPS = REPO / "scripts" / "install-deps"

README = """# x

## Quick start

Some prose.

```
# a comment line is skipped
apt-get install -y make
make demo       # the comment stays: the shell ignores it

make test-fast
```

```
make not-this-block
```

## Next
"""


def test_the_quick_start_block_is_read_in_order_as_written():
    assert quick_start_commands(README) == [
        "apt-get install -y make", "make demo       # the comment stays: the shell ignores it",
        "make test-fast"]


@pytest.mark.parametrize("readme, message", [
    ("# x\n\n## Using it\n", "no '## Quick start' heading"),
    ("## Quick start\n\nprose only\n\n## Next\n```\nmake x\n```\n", "README.md:1: no closed code block"),
    ("## Quick start\n```\nmake demo\n", "README.md:1: no closed code block"),
    ("## Quick start\n```\n# only a comment\n```\n", "README.md:4: the quick-start block has no command"),
])
def test_a_quick_start_that_cannot_be_tested_is_an_error(readme, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        quick_start_commands(readme)


def test_the_readme_promises_the_demo_first_then_the_pure_tests():
    commands = [c.split("#")[0].strip() for c in quick_start_commands((REPO / "README.md").read_text())]
    assert commands.index("make demo") < commands.index("make test-fast")
    assert all(c.startswith(("make ", "apt-get ")) for c in commands), commands


def test_every_tier_the_makefile_asks_for_exists():
    requirements = re.search(r"REQUIREMENTS='\n(.*?)'", INSTALL_DEPS.read_text(), re.DOTALL).group(1)
    tiers = {line.split()[0] for line in requirements.splitlines() if line.strip()}
    asked = {tier for line in re.findall(r"scripts/install-deps ([a-z ]+)", (REPO / "Makefile").read_text())
             for tier in line.split()}
    assert asked and asked <= tiers, asked - tiers


def run_unprivileged(script_text: str, *args: str) -> subprocess.CompletedProcess:
    """The script as a user who cannot install: nobody when the tests run as root (the text
    is passed as an argument: nobody may not read pytest's temporary directory). No stdin and
    HOME=/: under SSH, bash with a socket on stdin reads ~/.bashrc, which nobody may not."""
    prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, "bash", "-c", script_text, "install-deps", *args],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
                          cwd="/", env={**os.environ, "HOME": "/"})


def test_a_tool_that_does_not_run_fails_with_one_line_naming_it():
    script = INSTALL_DEPS.read_text().replace(
        "REQUIREMENTS='\n", "REQUIREMENTS='\nprobe   consulha-no-such-package  false\n")
    result = run_unprivileged(script, "probe")
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "install-deps: not root, cannot install; these do not run: `false` (consulha-no-such-package)"]


def test_an_unknown_tier_is_refused_naming_the_tiers():
    result = run_unprivileged(INSTALL_DEPS.read_text(), "pythn")
    assert result.returncode == 1
    assert result.stderr.startswith("install-deps: unknown tier 'pythn' (tiers: python demo test")


def test_the_fresh_container_and_the_deploy_lab_never_sweep_each_other():
    from deploylab.fresh import FRESH
    from deploylab.hosts import DEPLOY

    names = {"chaos lab": ("cha-", "10.77.0"), "deploy": (DEPLOY.prefix, DEPLOY.subnet),
             "fresh": (FRESH.prefix, FRESH.subnet)}
    prefixes = [prefix for prefix, _ in names.values()]
    # A sweep removes every link, namespace and cgroup whose name starts with its prefix.
    assert not [(a, b) for a in prefixes for b in prefixes if a != b and b.startswith(a)]
    assert len({subnet for _, subnet in names.values()}) == len(names)
    assert len({DEPLOY.run_dir, FRESH.run_dir}) == 2 and DEPLOY.nft_table != FRESH.nft_table
    assert (DEPLOY.bridge, DEPLOY.gateway, DEPLOY.nft_table) == ("dpl-br0", "10.78.0.1", "dpl_nat")
