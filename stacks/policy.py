"""Small helpers for `DataAwsIamPolicyDocument` statements: the one way policies are built."""

from __future__ import annotations

__all__ = ["Statement", "condition", "principals"]

Statement = dict[str, object]


def condition(test: str, variable: str, *values: str) -> dict[str, object]:
    return {"test": test, "variable": variable, "values": list(values)}


def principals(kind: str, *identifiers: str) -> list[dict[str, object]]:
    return [{"type": kind, "identifiers": list(identifiers)}]
