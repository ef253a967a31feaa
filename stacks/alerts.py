"""The alert topic and the alarms on the loader's log lines."""

from __future__ import annotations

from collections.abc import Sequence

from constructs import Construct

from apikeys.events import ALARMED_EVENTS, AlarmedEvent
from stacks.account import AccountContext
from stacks.aws import (
    CloudwatchLogMetricFilter,
    CloudwatchMetricAlarm,
    DataAwsIamPolicyDocument,
    SnsTopic,
    SnsTopicPolicy,
    SnsTopicSubscription,
)
from stacks.policy import condition, principals

__all__ = ["AlertTopic", "LoaderAlarms", "alarm_on_log_event", "count_alarm"]


class AlertTopic(Construct):
    """An SNS topic encrypted with the environment's key. Its policy lets only this account's
    CloudWatch alarms publish and refuses any request not made over TLS."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        topic_name: str,
        kms_key_arn: str,
        alarm_name_prefix: str,
        email_endpoints: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = SnsTopic(self, "topic", name=topic_name, kms_master_key_id=kms_key_arn)
        self.document = DataAwsIamPolicyDocument(
            self,
            "policy_document",
            statement=[
                {
                    "sid": "CloudWatchAlarmsInThisAccountPublish",
                    "principals": principals("Service", "cloudwatch.amazonaws.com"),
                    "actions": ["sns:Publish"],
                    "resources": [self.topic.arn],
                    "condition": [
                        condition("StringEquals", "aws:SourceAccount", account.account_id),
                        condition("ArnLike", "aws:SourceArn", account.arn("cloudwatch", f"alarm:{alarm_name_prefix}*")),
                    ],
                },
                {
                    "sid": "DenyRequestsWithoutTls",
                    "effect": "Deny",
                    "principals": principals("*", "*"),
                    "actions": ["sns:Publish", "sns:Subscribe"],
                    "resources": [self.topic.arn],
                    "condition": [condition("Bool", "aws:SecureTransport", "false")],
                },
            ],
        )
        SnsTopicPolicy(self, "policy", arn=self.topic.arn, policy=self.document.json)
        for index, email in enumerate(email_endpoints):
            SnsTopicSubscription(self, f"email_{index}", topic_arn=self.topic.arn, protocol="email", endpoint=email)

    @property
    def topic_arn(self) -> str:
        return self.topic.arn


class LoaderAlarms(Construct):
    """One metric filter and one alarm per event in `apikeys.events.ALARMED_EVENTS`."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        log_group_name: str,
        metric_namespace: str,
        alarm_name_prefix: str,
        topic_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        for event in ALARMED_EVENTS:
            alarm_on_log_event(
                self,
                event,
                log_group_name=log_group_name,
                metric_namespace=metric_namespace,
                alarm_name_prefix=alarm_name_prefix,
                topic_arn=topic_arn,
            )


def alarm_on_log_event(
    scope: Construct,
    event: AlarmedEvent,
    *,
    log_group_name: str,
    metric_namespace: str,
    alarm_name_prefix: str,
    topic_arn: str,
) -> None:
    """The metric filters counting `event`'s log lines (its JSON pattern, then one per plain-text
    pattern, all into one metric) and an alarm on that metric that notifies the topic."""
    name = f"{alarm_name_prefix}{event.name.replace('_', '-')}"
    filters = [(f"{event.name}_filter", name, event.pattern)]
    filters += [
        (f"{event.name}_text_filter_{index}", f"{name}-text-{index}", pattern)
        for index, pattern in enumerate(event.text_patterns)
    ]
    for construct_id, filter_name, pattern in filters:
        CloudwatchLogMetricFilter(
            scope,
            construct_id,
            name=filter_name,
            log_group_name=log_group_name,
            pattern=pattern,
            metric_transformation={
                "name": event.metric_name,
                "namespace": metric_namespace,
                "value": "1",
                "unit": "Count",
            },
        )
    count_alarm(
        scope,
        f"{event.name}_alarm",
        alarm_name=name,
        description=event.description,
        namespace=metric_namespace,
        metric_name=event.metric_name,
        period_seconds=60,
        topic_arn=topic_arn,
    )


def count_alarm(
    scope: Construct,
    construct_id: str,
    *,
    alarm_name: str,
    description: str,
    namespace: str,
    metric_name: str,
    period_seconds: int,
    topic_arn: str,
    dimensions: dict[str, str] | None = None,
) -> CloudwatchMetricAlarm:
    """An alarm when a count metric is 1 or more in a period (no data: OK), notifying the topic."""
    return CloudwatchMetricAlarm(
        scope,
        construct_id,
        alarm_name=alarm_name,
        alarm_description=description,
        namespace=namespace,
        metric_name=metric_name,
        dimensions=dimensions,
        statistic="Sum",
        period=period_seconds,
        evaluation_periods=1,
        threshold=1,
        comparison_operator="GreaterThanOrEqualToThreshold",
        treat_missing_data="notBreaching",
        alarm_actions=[topic_arn],
        ok_actions=[topic_arn],
    )
