"""The contract between the loader's log lines and the CloudWatch alarms.

The loader writes one JSON object per line with an `event` field (and, for failures, a
`reason` field). The stacks turn `ALARMED_EVENTS` into CloudWatch log metric filters and
alarms; the loader imports the same names to write its lines. Changing a name here changes
both sides together, and a test runs real log lines through these exact patterns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "ALARMED_EVENTS",
    "ERROR_CODES",
    "ERROR_CODE_PREFIXES",
    "LEGACY_FALLBACK_PHRASE",
    "METRIC_NAMESPACE",
    "ROTATION_FAILED",
    "AlarmedEvent",
    "Event",
    "FailureReason",
    "reason_of_error_code",
]

METRIC_NAMESPACE = "Credlink/ApiKeys"


class Event(StrEnum):
    """Values of the `event` field in the log lines of the loader, the rotation function and the CLI."""

    LOADED = "apikeys.loaded"
    SECRET_READ_FAILED = "apikeys.secret_read_failed"  # noqa: S105 (an event name, not a credential)
    FALLBACK_TO_ENV = "apikeys.fallback_to_env"
    AUTH_DISABLED = "apikeys.auth_disabled"
    REFRESHED = "apikeys.refreshed"
    REFRESH_FAILED = "apikeys.refresh_failed"
    ROTATION_STEP = "apikeys.rotation_step"
    ROTATION_FAILED = "apikeys.rotation_failed"
    SHORT_KEYS = "apikeys.short_keys"  # keys shorter than a new key may be: named by client, rotate them
    CLIENT_CHANGED = "apikeys.client_changed"  # the operator CLI's audit line: who changed which client
    CLIENT_READ = "apikeys.client_key_read"  # the operator CLI's audit line: who read which client's key
    SECRET_ADOPTED = "apikeys.secret_adopted"  # noqa: S105 (audit line: who re-encrypted an adopted secret)


class FailureReason(StrEnum):
    """Values of the `reason` field: the class of a failure, never its detail or any value."""

    DENIED = "denied"
    NOT_FOUND = "not_found"
    DECRYPT = "decrypt"
    THROTTLED = "throttled"
    NETWORK = "network"
    MALFORMED = "malformed"
    OTHER = "other"  # any error not classified above (e.g. a secret scheduled for deletion): no access alarm


# The service's error codes, by the failure class the loaders name them as; a code in none of
# these (and not starting with one of the prefixes) is `other`. The caller is not allowed, or
# its credentials are not accepted: both are "denied".
ERROR_CODES: Mapping[FailureReason, frozenset[str]] = {
    FailureReason.DENIED: frozenset(
        {
            "AccessDeniedException",
            "AccessDenied",
            "UnrecognizedClientException",
            "InvalidClientTokenId",
            "InvalidSignatureException",
            "ExpiredTokenException",
        }
    ),
    FailureReason.NOT_FOUND: frozenset({"ResourceNotFoundException"}),
    FailureReason.DECRYPT: frozenset({"DecryptionFailure", "KMSAccessDeniedException", "KMSInvalidStateException"}),
    FailureReason.THROTTLED: frozenset({"ThrottlingException", "TooManyRequestsException", "RequestLimitExceeded"}),
}
ERROR_CODE_PREFIXES: Mapping[FailureReason, tuple[str, ...]] = {
    FailureReason.NETWORK: ("InternalService", "ServiceUnavailable"),  # the service failed, not the request
}


def reason_of_error_code(code: str) -> FailureReason:
    """The failure class of a service error code (`ERROR_CODES`, `ERROR_CODE_PREFIXES`)."""
    for reason, codes in ERROR_CODES.items():
        if code in codes:
            return reason
    for reason, prefixes in ERROR_CODE_PREFIXES.items():
        if code.startswith(prefixes):
            return reason
    return FailureReason.OTHER


@dataclass(frozen=True)
class AlarmedEvent:
    """One alarm on one metric. `pattern` (CloudWatch Logs JSON filter syntax) is the metric
    filter for the loaders' lines; each of `text_patterns` (a quoted phrase) is one more
    filter into the same metric, for the plain-text lines of services not yet on a loader. A
    filter has one pattern, and one pattern cannot be both JSON and a phrase."""

    name: str
    metric_name: str
    pattern: str
    description: str
    text_patterns: tuple[str, ...] = ()


# The plain-text line of services that load their keys without a loader, e.g.
# "Secrets Manager unavailable, falling back to environment variables".
LEGACY_FALLBACK_PHRASE = "falling back to environment variables"


def _reason_is(*reasons: FailureReason) -> str:
    return " || ".join(f'$.reason = "{reason}"' for reason in reasons)


ALARMED_EVENTS: tuple[AlarmedEvent, ...] = (
    AlarmedEvent(
        name="fallback_to_env",
        metric_name="ApiKeysFallbackToEnv",
        pattern=f'{{ $.event = "{Event.FALLBACK_TO_ENV}" }}',
        description="The service fell back to the API_KEYS environment variable instead of Secrets Manager.",
        # What services that read API_KEYS themselves print when they cannot reach the secret.
        text_patterns=(f'"{LEGACY_FALLBACK_PHRASE}"',),
    ),
    AlarmedEvent(
        name="secret_read_failed",
        metric_name="ApiKeysSecretReadFailed",
        pattern=(
            f'{{ ($.event = "{Event.SECRET_READ_FAILED}" || $.event = "{Event.REFRESH_FAILED}") && '
            f"({_reason_is(FailureReason.DENIED, FailureReason.NOT_FOUND, FailureReason.DECRYPT)}) }}"
        ),
        description="The service could not read its API keys secret (access denied, not found or KMS decrypt failure).",
    ),
)

# Written by the rotation function (apikeys.rotation), alarmed on its own log group.
ROTATION_FAILED = AlarmedEvent(
    name="rotation_failed",
    metric_name="ApiKeysRotationFailed",
    pattern=f'{{ $.event = "{Event.ROTATION_FAILED}" }}',
    description="A step of the API keys rotation failed: AWSCURRENT is unchanged; see the rotation function's log.",
)
