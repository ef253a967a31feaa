"""The local endpoint's call recorder: with CREDLINK_RECORD_CALLS=<path> the server appends
one JSON line per request naming the caller's access key, the signing service and the API
operation, which is what deriving a caller's IAM permissions needs, and nothing else."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from scripts.local_aws import LocalAws, start, stop

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("call_recorder")]

# Not imported from scripts.moto_server: importing it would patch moto in this process.
RECORD_CALLS = "CREDLINK_RECORD_CALLS"
REGION = "us-east-1"
OTHER_REGION = "eu-west-1"
BASE_KEY = "testing-local-only"
TRUST_ANYONE = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
)
FIELDS = ["access_key", "service", "region", "operation", "status"]


@dataclass(frozen=True)
class Recorder:
    server: LocalAws
    record: Path

    def take(self) -> list[dict[str, Any]]:
        """The lines recorded since the last take; the file is moved aside, as a test separating
        plan, apply and destroy would, and the server starts a new one with the next request."""
        taken = self.record.with_name(f"{self.record.stem}-{uuid.uuid4().hex}.jsonl")
        if not self.record.exists():
            return []
        self.record.rename(taken)
        return [json.loads(line) for line in taken.read_text(encoding="utf-8").splitlines()]


@dataclass(frozen=True)
class Caller:
    """Temporary credentials of an assumed role, as Terraform would run with them."""

    role_arn: str
    credentials: Credentials

    @property
    def access_key(self) -> str:
        return self.credentials.access_key

    def client(self, recorder: Recorder, service: str, region: str = REGION) -> Any:
        session = boto3.Session(
            region_name=region,
            aws_access_key_id=self.credentials.access_key,
            aws_secret_access_key=self.credentials.secret_key,
            aws_session_token=self.credentials.token,
        )
        return session.client(service, endpoint_url=recorder.server.endpoint_url)  # type: ignore[call-overload]

    def send(
        self, recorder: Recorder, service: str, method: str, path: str, headers: dict[str, str], body: bytes = b""
    ) -> int:
        """A request signed as an SDK signs it, for protocols boto3 no longer speaks for the
        service (CloudWatch's query and JSON protocols) or paths no operation has."""
        request = AWSRequest(method=method, url=f"{recorder.server.endpoint_url}{path}", data=body, headers=headers)
        SigV4Auth(self.credentials, service, REGION).add_auth(request)
        prepared = request.prepare()
        sent = urllib.request.Request(  # noqa: S310 (loopback http)
            prepared.url, data=body or None, headers=dict(prepared.headers.items()), method=method
        )
        try:
            with urllib.request.urlopen(sent, timeout=10) as response:  # noqa: S310 (loopback http)
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)


@pytest.fixture(scope="module")
def recorder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Recorder]:
    directory = tmp_path_factory.mktemp("call-recorder")
    record = directory / "calls.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(RECORD_CALLS, str(record))  # the server process inherits it
        server = start(log_path=directory / "moto.log")
    try:
        yield Recorder(server=server, record=record)
    finally:
        stop(server)


def assume(recorder: Recorder, name: str, path: str = "/") -> Caller:
    base = recorder.server.session(REGION)
    iam = base.client("iam", endpoint_url=recorder.server.endpoint_url)
    role_arn = iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST_ANYONE)["Role"]["Arn"]
    sts = base.client("sts", endpoint_url=recorder.server.endpoint_url)
    issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=f"{name}-session")["Credentials"]
    credentials = Credentials(issued["AccessKeyId"], issued["SecretAccessKey"], issued["SessionToken"])
    return Caller(role_arn=role_arn, credentials=credentials)


def status_of(call: Callable[[], object]) -> int:
    try:
        call()
    except ClientError as error:
        return int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return 200


def test_each_callers_operations_are_recorded_by_access_key_and_no_value_is(recorder: Recorder) -> None:
    recorder.take()
    canary = f"recorder-canary-{uuid.uuid4().hex}"
    deployer = assume(recorder, "recorder-deployer", "/service-role/")
    reader = assume(recorder, "recorder-reader")
    assert deployer.access_key != reader.access_key

    # The deployer: every protocol the stacks' services use.
    secrets = deployer.client(recorder, "secretsmanager")
    secret_arn = secrets.create_secret(Name="recorder/api-keys")["ARN"]
    secrets.put_secret_value(SecretId=secret_arn, SecretString=canary)
    secrets.describe_secret(SecretId=secret_arn)
    kms = deployer.client(recorder, "kms")
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    kms.get_key_policy(KeyId=key_id, PolicyName="default")
    deployer.client(recorder, "iam").get_role(RoleName="recorder-reader")
    sns = deployer.client(recorder, "sns")
    topic_arn = sns.create_topic(Name="recorder-alerts")["TopicArn"]
    sns.get_topic_attributes(TopicArn=topic_arn)
    sns.publish(TopicArn=topic_arn, Message=canary)  # a value in a form body
    logs = deployer.client(recorder, "logs")
    logs.create_log_group(logGroupName="/recorder/app")
    logs.describe_log_groups(logGroupNamePrefix="/recorder/")
    deployer.client(recorder, "cloudwatch").describe_alarms()  # boto3: Smithy RPC v2 CBOR
    query = {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"}
    deployer.send(recorder, "monitoring", "POST", "/", query, b"Action=ListMetrics&Version=2010-08-01")
    json_target = {
        "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "GraniteServiceVersion20100801.ListDashboards",
    }
    deployer.send(recorder, "monitoring", "POST", "/", json_target, b"{}")
    sqs = deployer.client(recorder, "sqs")  # boto3: JSON (AmazonSQS.*)
    sqs.get_queue_attributes(QueueUrl=sqs.create_queue(QueueName="recorder-dlq")["QueueUrl"], AttributeNames=["All"])
    functions = deployer.client(recorder, "lambda")
    assert status_of(lambda: functions.get_function(FunctionName="recorder-missing")) == 404
    status_of(lambda: functions.list_versions_by_function(FunctionName="recorder-missing"))
    status_of(lambda: functions.get_function_code_signing_config(FunctionName="recorder-missing"))
    status_of(lambda: functions.get_policy(FunctionName="recorder-missing"))
    s3 = deployer.client(recorder, "s3")
    s3.create_bucket(Bucket="recorder-state")
    s3.put_object(Bucket="recorder-state", Key="env/terraform.tfstate", Body=canary.encode())
    s3.head_object(Bucket="recorder-state", Key="env/terraform.tfstate")
    s3.list_objects_v2(Bucket="recorder-state", Prefix="env/")
    s3.get_bucket_versioning(Bucket="recorder-state")
    s3.head_bucket(Bucket="recorder-state")
    s3.delete_object(Bucket="recorder-state", Key="env/terraform.tfstate")
    assert deployer.send(recorder, "lambda", "GET", "/2015-03-31/no-such-api/recorder-missing", {}) >= 400

    # The reader: other operations, one in another region.
    assert reader.client(recorder, "sts").get_caller_identity()["Arn"] == (
        "arn:aws:sts::123456789012:assumed-role/recorder-reader/recorder-reader-session"
    )
    assert reader.client(recorder, "secretsmanager").get_secret_value(SecretId=secret_arn)["SecretString"] == canary
    reader.client(recorder, "kms").describe_key(KeyId=key_id)
    assert status_of(lambda: reader.client(recorder, "s3").get_object(Bucket="recorder-state", Key="gone")) == 404
    reader.client(recorder, "secretsmanager", OTHER_REGION).list_secrets()

    calls = recorder.take()
    assert all(list(call) == FIELDS for call in calls)
    assert canary not in json.dumps(calls)
    assert canary not in "".join(path.read_text(encoding="utf-8") for path in recorder.record.parent.glob("*.jsonl"))
    assert {(c["access_key"], c["service"], c["operation"]) for c in calls} == {
        (BASE_KEY, "iam", "CreateRole"),
        (BASE_KEY, "sts", "AssumeRole"),
        (deployer.access_key, "secretsmanager", "CreateSecret"),
        (deployer.access_key, "secretsmanager", "PutSecretValue"),
        (deployer.access_key, "secretsmanager", "DescribeSecret"),
        (deployer.access_key, "kms", "CreateKey"),
        (deployer.access_key, "kms", "GetKeyPolicy"),
        (deployer.access_key, "iam", "GetRole"),
        (deployer.access_key, "sns", "CreateTopic"),
        (deployer.access_key, "sns", "GetTopicAttributes"),
        (deployer.access_key, "sns", "Publish"),
        (deployer.access_key, "logs", "CreateLogGroup"),
        (deployer.access_key, "logs", "DescribeLogGroups"),
        (deployer.access_key, "monitoring", "DescribeAlarms"),
        (deployer.access_key, "monitoring", "ListMetrics"),
        (deployer.access_key, "monitoring", "ListDashboards"),
        (deployer.access_key, "sqs", "CreateQueue"),
        (deployer.access_key, "sqs", "GetQueueAttributes"),
        (deployer.access_key, "lambda", "GetFunction"),
        (deployer.access_key, "lambda", "ListVersionsByFunction"),
        (deployer.access_key, "lambda", "GetFunctionCodeSigningConfig"),
        (deployer.access_key, "lambda", "GetPolicy"),
        (deployer.access_key, "lambda", "UNMAPPED GET /2015-03-31/{id}/{id}"),
        (deployer.access_key, "s3", "CreateBucket"),
        (deployer.access_key, "s3", "PutObject"),
        (deployer.access_key, "s3", "HeadObject"),
        (deployer.access_key, "s3", "ListObjectsV2"),
        (deployer.access_key, "s3", "GetBucketVersioning"),
        (deployer.access_key, "s3", "HeadBucket"),
        (deployer.access_key, "s3", "DeleteObject"),
        (reader.access_key, "sts", "GetCallerIdentity"),
        (reader.access_key, "secretsmanager", "GetSecretValue"),
        (reader.access_key, "kms", "DescribeKey"),
        (reader.access_key, "s3", "GetObject"),
        (reader.access_key, "secretsmanager", "ListSecrets"),
    }
    assert {c["region"] for c in calls if c["operation"] == "ListSecrets"} == {OTHER_REGION}
    assert {c["region"] for c in calls if c["operation"] != "ListSecrets"} == {REGION}
    statuses = {(c["operation"], c["status"]) for c in calls}
    assert {("GetFunction", 404), ("GetObject", 404), ("PutSecretValue", 200), ("DeleteObject", 204)} <= statuses


def test_each_request_is_one_whole_line_under_concurrency(recorder: Recorder) -> None:
    caller = assume(recorder, "recorder-concurrent")
    recorder.take()
    threads, calls_each = 8, 25

    def identify() -> None:
        sts = caller.client(recorder, "sts")
        for _ in range(calls_each):
            sts.get_caller_identity()

    workers = [threading.Thread(target=identify) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()

    calls = recorder.take()  # json.loads fails on a torn or interleaved line
    assert len(calls) == threads * calls_each
    assert {(c["access_key"], c["service"], c["operation"], c["status"]) for c in calls} == {
        (caller.access_key, "sts", "GetCallerIdentity", 200)
    }
