"""Logging set-up: plain text or JSON lines on stderr, with known secrets masked.

Secrets are never put into messages on purpose; the mask is a second line of defence for text
that comes from elsewhere (an exception from a library, a hook's output).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime, timezone


class SecretMask(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self._secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if self._secrets:
            message = record.getMessage()
            for secret in self._secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "thread": record.threadName, "message": record.getMessage()}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(log_format: str = "text", level: int = logging.INFO,
                  secrets: list[str] | None = None, thread_names: bool = False) -> None:
    """`thread_names`: name the thread in text lines too (a host of many groups: the agent's
    threads carry their group's name)."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        thread = " [%(threadName)s]" if thread_names else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s{thread} %(name)s: %(message)s"))
    handler.addFilter(SecretMask(secrets or []))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
