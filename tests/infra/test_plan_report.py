"""Plan summaries and drift reports, from hand-made `terraform show -json` documents.

No Terraform here: the documents have the shape Terraform 1.11 writes (format 1.2).
"""

from __future__ import annotations

from typing import Any

from scripts.plan_report import Drift, drift, guarded_addresses, render_drift, render_summary, summarize


def change(address: str, *actions: str, importing: bool = False, mode: str = "managed") -> dict[str, Any]:
    resource_type = address.split(".")[-2]
    body: dict[str, Any] = {"actions": list(actions), "before": None, "after": None}
    if importing:
        body["importing"] = {"id": "imported-id"}
    return {"address": address, "mode": mode, "type": resource_type, "change": body}


PLAN = {
    "resource_changes": [
        change("aws_sns_topic.alerts", "create"),
        change("aws_cloudwatch_metric_alarm.errors", "update"),
        change("aws_sns_topic_subscription.email[0]", "delete"),
        change("aws_iam_policy.read", "delete", "create"),
        change("aws_kms_key.secrets", "create", "delete"),
        change("module.secrets.aws_secretsmanager_secret_rotation.this[0]", "delete"),
        change("terraform_data.secret_destroy_guard", "delete", "create"),
        change("aws_kms_alias.secrets", "no-op", importing=True),
        change("aws_lambda_function.rotation", "no-op"),
        change("data.aws_iam_policy_document.read", "read", mode="data"),
    ]
}
GUARDED = frozenset({"terraform_data.secret_destroy_guard"})


def test_counts_are_terraforms() -> None:
    summary = summarize(PLAN, GUARDED)
    # A replace is one add and one destroy, as `terraform plan` counts it.
    assert summary.counts == "4 to add, 1 to change, 5 to destroy, 1 to import"


def test_every_destroy_and_replace_is_named_and_the_stateful_ones_flagged() -> None:
    summary = summarize(PLAN, GUARDED)
    assert [(c.address, c.action, c.stateful) for c in summary.removals] == [
        ("aws_sns_topic_subscription.email[0]", "destroy", False),
        ("aws_iam_policy.read", "replace", False),
        ("aws_kms_key.secrets", "replace", True),  # a KMS key
        ("module.secrets.aws_secretsmanager_secret_rotation.this[0]", "destroy", True),  # the secret's module
        ("terraform_data.secret_destroy_guard", "replace", True),  # under prevent_destroy
    ]
    rendered = render_summary("prod", summary)
    assert "Plan: 4 to add, 1 to change, 5 to destroy, 1 to import." in rendered
    assert "ALLOW_REPLACE=prod" in rendered
    assert "| replace | `aws_kms_key.secrets` | **yes** |" in rendered
    assert "| destroy | `aws_sns_topic_subscription.email[0]` | no |" in rendered


def test_a_plan_without_removals() -> None:
    summary = summarize({"resource_changes": [change("aws_sns_topic.alerts", "create")]})
    assert summary.stateful == ()
    rendered = render_summary("dev", summary)
    assert "Nothing is destroyed or replaced." in rendered
    assert "ALLOW_REPLACE" not in rendered


def test_guarded_addresses_come_from_prevent_destroy() -> None:
    stack = {
        "resource": {
            "aws_kms_key": {"secrets_key": {"lifecycle": {"prevent_destroy": True}}, "other": {}},
            "terraform_data": {"secret_destroy_guard": {"lifecycle": {"prevent_destroy": True}}},
            "aws_sns_topic": {"alerts": {"lifecycle": {"create_before_destroy": True}}},
        }
    }
    assert guarded_addresses(stack) == {"aws_kms_key.secrets_key", "terraform_data.secret_destroy_guard"}


SECRET_POLICY = '{"Statement":[{"Sid":"SecretPolicyText"}]}'


def drifted(address: str, before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    actions = ["delete"] if after is None else ["update"]
    return {"address": address, "mode": "managed", "change": {"actions": actions, "before": before, "after": after}}


REFRESH_ONLY = {
    "configuration": {
        "root_module": {
            "resources": [
                {"address": "aws_kms_key.secrets", "expressions": {"description": {}, "policy": {}}},
                {"address": "aws_sns_topic.alerts", "expressions": {"name": {}}},
                {"address": "aws_cloudwatch_metric_alarm.errors", "expressions": {"dimensions": {}, "tags": {}}},
                {"address": "aws_sns_topic_subscription.email", "expressions": {"endpoint": {}}},
            ],
            "module_calls": {
                "secrets": {
                    "module": {
                        "resources": [
                            {"address": "aws_secretsmanager_secret_policy.this", "expressions": {"policy": {}}}
                        ]
                    }
                }
            },
        }
    },
    "resource_drift": [
        drifted("aws_kms_key.secrets", {"description": "ours", "arn": "a"}, {"description": "theirs", "arn": "a"}),
        # Set by its own policy resource, and an unset map read back empty: not drift.
        drifted("aws_sns_topic.alerts", {"name": "t", "policy": "", "tags": None},
                {"name": "t", "policy": "{}", "tags": {}}),
        drifted("aws_cloudwatch_metric_alarm.errors", {"dimensions": None, "tags": None},
                {"dimensions": {}, "tags": {}}),
        drifted("module.secrets.aws_secretsmanager_secret_policy.this", {"policy": "{}"}, {"policy": SECRET_POLICY}),
        drifted("aws_sns_topic_subscription.email[1]", {"endpoint": "a@example.com"}, None),
    ],
}  # fmt: skip


def test_drift_is_a_configured_attribute_changed_or_a_resource_gone() -> None:
    assert drift(REFRESH_ONLY) == (
        Drift("aws_kms_key.secrets", ("description",), deleted=False),
        Drift("module.secrets.aws_secretsmanager_secret_policy.this", ("policy",), deleted=False),
        Drift("aws_sns_topic_subscription.email[1]", (), deleted=True),
    )


def test_the_drift_report_names_attributes_never_values() -> None:
    report = render_drift("dev", drift(REFRESH_ONLY))
    assert "- `aws_kms_key.secrets`: description" in report
    assert "- `module.secrets.aws_secretsmanager_secret_policy.this`: policy" in report
    assert "- `aws_sns_topic_subscription.email[1]`: deleted outside Terraform" in report
    for value in ("theirs", "ours", "SecretPolicyText", "a@example.com"):
        assert value not in report


def test_in_sync() -> None:
    assert drift({"configuration": {}, "resource_drift": []}) == ()
    assert "In sync" in render_drift("dev", ())
