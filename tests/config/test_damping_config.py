"""`election.damping`: defaults, values, and errors that name file, line and key path."""

from __future__ import annotations

import pytest

from consulha.config import ConfigError, DampingConfig, load_config
from tests.config.test_config import BASE, CONF_DIR, line_containing, write_config


def test_damping_is_on_by_default_with_a_one_minute_half_life(tmp_path):
    damping = load_config(write_config(tmp_path, BASE)).election.damping
    assert damping == DampingConfig(enabled=True, half_life=60.0, suppress=1.0, max_hold_down=300.0)


def test_damping_values_and_the_switch(tmp_path):
    text = BASE + "election:\n  damping: {enabled: false, half_life: 2m, suppress: 2.5, max_hold_down: 1h}\n"
    damping = load_config(write_config(tmp_path, text)).election.damping
    assert damping == DampingConfig(enabled=False, half_life=120.0, suppress=2.5, max_hold_down=3600.0)


def test_the_example_config_spells_out_the_defaults():
    text = (CONF_DIR / "site-a" / "app.yaml").read_text()
    assert "damping: {enabled: true, half_life: 1m, suppress: 1, max_hold_down: 5m}" in text


@pytest.mark.parametrize("lines, key_path, message", [
    ("  damping:\n    max_hold_down: 30s  # <-\n", "election.damping.max_hold_down",
     "must be at least half_life (1m), got 30s"),
    ("  damping:\n    half_life: 0s  # <-\n", "election.damping.half_life", "must be between 1s and 24h"),
    ("  damping:\n    suppress: 0.5  # <-\n", "election.damping.suppress", "must be between 1 and 100"),
    ("  damping:\n    suppress: lots  # <-\n", "election.damping.suppress", "expected a number"),
    ("  damping:\n    enabled: yes please  # <-\n", "election.damping.enabled", "expected true or false"),
    ("  damping:\n    window: 10m  # <-\n", "election.damping.window", "unknown key"),
    ("  damping: 1m  # <-\n", "election.damping", "must be a mapping"),
])
def test_damping_errors_name_file_line_and_key(tmp_path, lines, key_path, message):
    text = BASE + "election:\n" + lines
    path = write_config(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    error = caught.value
    assert (error.file, error.line, error.key_path) == (str(path), line_containing(text, "# <-"), key_path)
    assert message in error.message, error
