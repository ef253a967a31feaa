"""What every AWS call of the runtime shares: the boto3 client configuration, reading a
failed call's error code, and reading the secret's staging labels."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from botocore.config import Config
from botocore.exceptions import ClientError

__all__ = ["BOTO_CONFIG", "error_code", "version_with_label"]

# botocore's own retries (standard mode: exponential backoff with jitter on throttling and
# transient errors); short timeouts so a dead endpoint fails startup fast.
BOTO_CONFIG = Config(retries={"mode": "standard", "max_attempts": 4}, connect_timeout=2, read_timeout=5)


def version_with_label(stages: Mapping[str, Sequence[str]], label: str) -> str | None:
    """The version carrying a staging label, from DescribeSecret's `VersionIdsToStages`."""
    return next((version for version, labels in stages.items() if label in labels), None)


def error_code(error: ClientError) -> str:
    """The AWS error code of a failed call (`AccessDeniedException`, ...), "" when it has none."""
    return str(error.response.get("Error", {}).get("Code", ""))
