"""Small helpers for `DataAwsIamPolicyDocument` statements: the one way policies are built."""

from __future__ import annotations

__all__ = ["Statement", "assume_role_statement", "condition", "principals"]

Statement = dict[str, object]


def condition(test: str, variable: str, *values: str) -> dict[str, object]:
    return {"test": test, "variable": variable, "values": list(values)}


def principals(kind: str, *identifiers: str) -> list[dict[str, object]]:
    return [{"type": kind, "identifiers": list(identifiers)}]


def assume_role_statement(sid: str, service: str, account_id: str) -> Statement:
    """A trust statement: `service` may assume the role, only on behalf of this account."""
    return {
        "sid": sid,
        "principals": principals("Service", service),
        "actions": ["sts:AssumeRole"],
        "condition": [condition("StringEquals", "aws:SourceAccount", account_id)],
    }
