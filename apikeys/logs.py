"""The runtime's log lines: one JSON object per line, whose `event` and `reason` fields are
the contract in `apikeys.events` that the CloudWatch metric filters match."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from apikeys.events import Event

__all__ = ["LOGGER", "JsonLineFormatter", "ensure_json_logging", "log_event"]

LOGGER = logging.getLogger("apikeys")


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: level, logger, message and the record's `fields`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"level": record.levelname, "logger": record.name, "message": record.getMessage()}
        line.update(getattr(record, "fields", {}))
        return json.dumps(line, sort_keys=True)


def log_event(level: int, event: Event, message: str, **fields: object) -> None:
    LOGGER.log(level, message, extra={"fields": {"event": str(event), **fields}})


def ensure_json_logging() -> None:
    """Give the `apikeys` logger a JSON handler unless the application configured one."""
    if not LOGGER.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonLineFormatter())
        LOGGER.addHandler(handler)
        LOGGER.setLevel(logging.INFO)
        LOGGER.propagate = False
