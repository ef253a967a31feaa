"""Where a stack deploys: partition, account and region, and the ARNs built from them."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AccountContext"]


@dataclass(frozen=True)
class AccountContext:
    """`partition` and `account_id` are Terraform references, resolved at plan time."""

    partition: str
    account_id: str
    region: str

    @property
    def root_arn(self) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:root"

    def role_arn(self, role_name: str) -> str:
        return f"arn:{self.partition}:iam::{self.account_id}:role/{role_name}"

    def arn(self, service: str, resource: str, *, region: str | None = None) -> str:
        return f"arn:{self.partition}:{service}:{region or self.region}:{self.account_id}:{resource}"

    def service_endpoint(self, service: str, *, region: str | None = None) -> str:
        """The `kms:ViaService` value for a service in a region."""
        return f"{service}.{region or self.region}.amazonaws.com"
