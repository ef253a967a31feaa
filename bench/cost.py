"""The price of those calls: $0.05 per 10,000 API calls (the guide's own price table), per
process, at 100 requests per second, next to fetching the secret on every request."""

from __future__ import annotations

from dataclasses import dataclass

from bench.calls import HOUR_S, CallCounts

__all__ = ["HOURS_PER_MONTH", "PRICE_PER_10K_CALLS_USD", "REQUESTS_PER_SECOND", "CostRow", "cost_rows"]

PRICE_PER_10K_CALLS_USD = 0.05
REQUESTS_PER_SECOND = 100
HOURS_PER_MONTH = 730  # 365 * 24 / 12
FETCH_PER_REQUEST = "boto3 GetSecretValue on every request (no cache)"


@dataclass(frozen=True)
class CostRow:
    approach: str
    calls_per_hour: float
    calls_per_month: float
    usd_per_month: float
    basis: str


def _row(approach: str, calls_per_hour: float, basis: str) -> CostRow:
    per_month = calls_per_hour * HOURS_PER_MONTH
    return CostRow(approach, calls_per_hour, per_month, per_month / 10_000 * PRICE_PER_10K_CALLS_USD, basis)


def cost_rows(counts: list[CallCounts]) -> list[CostRow]:
    """One row per contender from its measured steady hour, and the fetch-per-request baseline."""
    rows = [_row(count.contender, sum(count.steady_hour.values()), "measured steady hour") for count in counts]
    rows.append(_row(FETCH_PER_REQUEST, REQUESTS_PER_SECOND * HOUR_S, f"{REQUESTS_PER_SECOND} requests/s x 3,600 s"))
    return rows
