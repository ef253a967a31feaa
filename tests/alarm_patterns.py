"""The stacks' metric filter patterns, evaluated on log lines as CloudWatch Logs does, for
the subset the stacks use: JSON patterns (`$.field = "value"` terms joined by && and ||, with
parentheses) and quoted phrases."""

from __future__ import annotations

import json
import re

from apikeys.events import ALARMED_EVENTS

__all__ = ["alarms_raised", "filter_matches"]

_TERM = re.compile(r'\$\.(\w+)\s*=\s*"([^"]*)"')


def filter_matches(pattern: str, line: str) -> bool:
    body = pattern.strip()
    if body.startswith('"') and body.endswith('"'):  # a phrase: the exact words, in order
        return body[1:-1] in line
    assert body.startswith("{"), pattern
    assert body.endswith("}"), pattern
    try:
        event = json.loads(line)
    except json.JSONDecodeError:
        return False  # a JSON pattern matches JSON lines only
    if not isinstance(event, dict):
        return False
    expression = _TERM.sub(lambda m: repr(event.get(m[1]) == m[2]), body[1:-1])
    expression = expression.replace("&&", " and ").replace("||", " or ")
    assert re.fullmatch(r"[\sA-Za-z()]*", expression), expression  # only True/False/and/or/() remain
    return bool(eval(expression))  # noqa: S307 (checked above to be a boolean expression)


def alarms_raised(line: str) -> set[str]:
    """The names of the alarms whose metric a line counts into (through any of its filters)."""
    return {
        event.name
        for event in ALARMED_EVENTS
        if any(filter_matches(pattern, line) for pattern in (event.pattern, *event.text_patterns))
    }
