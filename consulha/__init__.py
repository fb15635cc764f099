"""consulha: one active site of an active/standby pair, chosen by a health-gated Consul lock."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("consulha")  # pyproject.toml is the one place the version is written
except PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
