"""What a saved plan or a refresh-only plan says, read from `terraform show -json`.

- `summarize`: the counts Terraform prints (add, change, destroy, import) and every destroy or
  replace by address, with the stateful ones flagged: a KMS key, a Secrets Manager secret
  and what belongs to it, a resource of the secrets module, anything under `prevent_destroy`
  (the destroy guard included). `render_summary` writes it as Markdown (plan-summary.md).
- `drift`: what a refresh-only plan found changed outside Terraform, as resource addresses
  and attribute names. Values are never read into the report: no secret, no policy text.

Drift is a change to an attribute the configuration sets (what the next apply would put
back), or a resource gone. A refresh also fills in what Terraform manages elsewhere or
computes (a topic's policy set by its own policy resource, a policy's attachment count) and
reads an unset attribute back as empty (`null` -> `{}`): none of that is drift.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Drift",
    "PlanSummary",
    "ResourceChange",
    "drift",
    "guarded_addresses",
    "render_drift",
    "render_summary",
    "summarize",
]

# Resource types whose loss loses data or access: the keys that encrypt the secret, the secret.
STATEFUL_TYPES = frozenset(
    {
        "aws_kms_key",
        "aws_kms_replica_key",
        "aws_secretsmanager_secret",
        "aws_secretsmanager_secret_version",
        "aws_secretsmanager_secret_policy",
        "aws_secretsmanager_secret_rotation",
    }
)
_INSTANCE_KEY = re.compile(r"\[[^\]]*\]")
_EMPTY: tuple[Any, ...] = (None, "", [], {})
# Module calls whose every resource is the secret or part of it.
STATEFUL_MODULES = ("module.secrets.",)


@dataclass(frozen=True)
class ResourceChange:
    address: str
    action: str  # "destroy" or "replace"
    stateful: bool


@dataclass(frozen=True)
class PlanSummary:
    add: int
    change: int
    destroy: int
    import_: int
    removals: tuple[ResourceChange, ...]  # every destroy or replace, in plan order

    @property
    def stateful(self) -> tuple[ResourceChange, ...]:
        return tuple(change for change in self.removals if change.stateful)

    @property
    def counts(self) -> str:
        return f"{self.add} to add, {self.change} to change, {self.destroy} to destroy, {self.import_} to import"


@dataclass(frozen=True)
class Drift:
    address: str
    attributes: tuple[str, ...]  # top-level attribute names that differ; empty when deleted
    deleted: bool


def guarded_addresses(stack: Mapping[str, Any]) -> frozenset[str]:
    """Addresses of the resources a synthesized stack (cdk.tf.json) puts under prevent_destroy."""
    return frozenset(
        f"{resource_type}.{name}"
        for resource_type, resources in stack.get("resource", {}).items()
        for name, body in resources.items()
        if body.get("lifecycle", {}).get("prevent_destroy") is True
    )


def _is_stateful(change: Mapping[str, Any], guarded: frozenset[str]) -> bool:
    address = str(change["address"])
    return (
        change.get("type") in STATEFUL_TYPES
        or address.startswith(STATEFUL_MODULES)
        or address.split("[", 1)[0] in guarded
    )


def summarize(plan: Mapping[str, Any], guarded: frozenset[str] = frozenset()) -> PlanSummary:
    """Counts as Terraform counts them (a replace is one add and one destroy)."""
    add = change_count = destroy = imports = 0
    removals: list[ResourceChange] = []
    for resource in plan.get("resource_changes", []):
        if resource.get("mode", "managed") != "managed":
            continue
        actions = list(resource["change"]["actions"])
        if resource["change"].get("importing") is not None:
            imports += 1
        if "create" in actions:
            add += 1
        if actions == ["update"]:
            change_count += 1
        if "delete" in actions:
            destroy += 1
            action = "replace" if "create" in actions else "destroy"
            removals.append(ResourceChange(str(resource["address"]), action, _is_stateful(resource, guarded)))
    return PlanSummary(add, change_count, destroy, imports, tuple(removals))


def render_summary(env: str, summary: PlanSummary) -> str:
    lines = [f"## Plan for {env}", "", f"Plan: {summary.counts}.", ""]
    if summary.stateful:
        lines += [
            f"**Stateful resources would be destroyed or replaced** ({len(summary.stateful)}): "
            f"`make apply` refuses unless `ALLOW_REPLACE={env}`.",
            "",
        ]
    if summary.removals:
        lines += ["| action | address | stateful |", "|---|---|---|"]
        lines += [
            f"| {change.action} | `{change.address}` | {'**yes**' if change.stateful else 'no'} |"
            for change in summary.removals
        ]
    else:
        lines.append("Nothing is destroyed or replaced.")
    return "\n".join(lines) + "\n"


def _configured(module: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, frozenset[str]]]:
    """(address without instance keys, attribute names the configuration sets), every module."""
    for resource in module.get("resources", []):
        yield prefix + str(resource["address"]), frozenset(resource.get("expressions", {}))
    for name, call in module.get("module_calls", {}).items():
        yield from _configured(call.get("module", {}), f"{prefix}module.{name}.")


def _same(before: Any, after: Any) -> bool:
    if before in _EMPTY and after in _EMPTY:
        return True
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        return all(_same(before.get(key), after.get(key)) for key in before.keys() | after.keys())
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        return all(_same(one, other) for one, other in zip(before, after, strict=True))
    return bool(before == after)


def drift(plan: Mapping[str, Any]) -> tuple[Drift, ...]:
    """Every managed resource a refresh-only plan found changed (in an attribute its
    configuration sets) or gone outside Terraform."""
    configured = dict(_configured(plan.get("configuration", {}).get("root_module", {})))
    found: list[Drift] = []
    for resource in plan.get("resource_drift", []):
        if resource.get("mode", "managed") != "managed":
            continue
        address = str(resource["address"])
        change = resource["change"]
        if "delete" in change["actions"] and change.get("after") is None:
            found.append(Drift(address, (), deleted=True))
            continue
        before, after = change.get("before") or {}, change.get("after") or {}
        watched = configured.get(_INSTANCE_KEY.sub("", address), frozenset())
        attributes = tuple(sorted(name for name in watched if not _same(before.get(name), after.get(name))))
        if attributes:
            found.append(Drift(address, attributes, deleted=False))
    return tuple(found)


def render_drift(env: str, drifted: Iterable[Drift]) -> str:
    found = list(drifted)
    if not found:
        return f"## Drift in {env}\n\nIn sync: nothing changed outside Terraform.\n"
    lines = [f"## Drift in {env}", "", f"{len(found)} resource(s) changed outside Terraform:", ""]
    for item in found:
        what = "deleted outside Terraform" if item.deleted else ", ".join(item.attributes)
        lines.append(f"- `{item.address}`: {what}")
    return "\n".join(lines) + "\n"
