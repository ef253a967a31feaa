"""The one place that imports the prebuilt AWS provider bindings.

Stacks and constructs import AWS resource classes from here, never from
`cdktf_cdktf_provider_aws` directly, so the binding package (and how it is loaded) can
change in one file. The bindings load lean (stacks/provider_bindings.py): only the
resource modules imported below, not all ~2,135 of them.
"""

from stacks.provider_bindings import install as _install_lean_bindings

_install_lean_bindings()

from cdktf_cdktf_provider_aws.cloudwatch_log_group import CloudwatchLogGroup
from cdktf_cdktf_provider_aws.cloudwatch_log_metric_filter import CloudwatchLogMetricFilter
from cdktf_cdktf_provider_aws.cloudwatch_metric_alarm import CloudwatchMetricAlarm
from cdktf_cdktf_provider_aws.data_aws_caller_identity import DataAwsCallerIdentity
from cdktf_cdktf_provider_aws.data_aws_iam_policy_document import DataAwsIamPolicyDocument
from cdktf_cdktf_provider_aws.data_aws_iam_role import DataAwsIamRole
from cdktf_cdktf_provider_aws.data_aws_iam_session_context import DataAwsIamSessionContext
from cdktf_cdktf_provider_aws.data_aws_partition import DataAwsPartition
from cdktf_cdktf_provider_aws.data_aws_secretsmanager_secret import DataAwsSecretsmanagerSecret
from cdktf_cdktf_provider_aws.iam_policy import IamPolicy
from cdktf_cdktf_provider_aws.iam_role import IamRole
from cdktf_cdktf_provider_aws.iam_role_policy import IamRolePolicy
from cdktf_cdktf_provider_aws.iam_role_policy_attachment import IamRolePolicyAttachment
from cdktf_cdktf_provider_aws.kms_alias import KmsAlias
from cdktf_cdktf_provider_aws.kms_key import KmsKey
from cdktf_cdktf_provider_aws.lambda_function import LambdaFunction
from cdktf_cdktf_provider_aws.lambda_permission import LambdaPermission
from cdktf_cdktf_provider_aws.provider import AwsProvider
from cdktf_cdktf_provider_aws.sns_topic import SnsTopic
from cdktf_cdktf_provider_aws.sns_topic_policy import SnsTopicPolicy
from cdktf_cdktf_provider_aws.sns_topic_subscription import SnsTopicSubscription

__all__ = [
    "AwsProvider",
    "CloudwatchLogGroup",
    "CloudwatchLogMetricFilter",
    "CloudwatchMetricAlarm",
    "DataAwsCallerIdentity",
    "DataAwsIamPolicyDocument",
    "DataAwsIamRole",
    "DataAwsIamSessionContext",
    "DataAwsPartition",
    "DataAwsSecretsmanagerSecret",
    "IamPolicy",
    "IamRole",
    "IamRolePolicy",
    "IamRolePolicyAttachment",
    "KmsAlias",
    "KmsKey",
    "LambdaFunction",
    "LambdaPermission",
    "SnsTopic",
    "SnsTopicPolicy",
    "SnsTopicSubscription",
]
