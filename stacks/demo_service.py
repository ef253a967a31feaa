"""A stand-in for the service (a task role and a log group) so an environment stands alone."""

from __future__ import annotations

from constructs import Construct

from stacks.account import AccountContext
from stacks.aws import CloudwatchLogGroup, DataAwsIamPolicyDocument, IamRole
from stacks.policy import assume_role_statement

__all__ = ["LOG_RETENTION_DAYS", "DemoService"]

LOG_RETENTION_DAYS = 365


class DemoService(Construct):
    """An ECS task role (trusting only ECS tasks of this account) and an encrypted log group."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        account: AccountContext,
        task_role_names: tuple[str, ...],
        log_group_name: str,
        kms_key_arn: str,
    ) -> None:
        super().__init__(scope, construct_id)
        trust = DataAwsIamPolicyDocument(
            self,
            "task_trust",
            statement=[assume_role_statement("EcsTasksOfThisAccount", "ecs-tasks.amazonaws.com", account.account_id)],
        )
        self.roles = [
            IamRole(
                self,
                f"task_role_{index}",
                name=name,
                description="Demo ECS task role: the role the application's SDK calls run as",
                assume_role_policy=trust.json,
            )
            for index, name in enumerate(task_role_names)
        ]
        self.log_group = CloudwatchLogGroup(
            self,
            "log_group",
            name=log_group_name,
            retention_in_days=LOG_RETENTION_DAYS,
            kms_key_id=kms_key_arn,
        )
