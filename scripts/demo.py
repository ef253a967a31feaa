"""`make demo`: the whole job against local AWS, step by step, with a summary at the end.

Starts local AWS, deploys the (already synthesized) dev stack with `cdktf deploy`, puts a
demo key set into the secret directly (never through Terraform state), reads it back as
the application would, prints the outputs and stops local AWS. A failure names its step.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Callable
from typing import TypeVar

from scripts import local_aws, stackctl

ENV = "dev"
DEMO_CLIENTS = (("demo-client-1", "Demo Client One"), ("demo-client-2", "Demo Client Two"))
T = TypeVar("T")


class DemoFailed(Exception):
    pass


def step(name: str, action: Callable[[], T]) -> T:
    print(f"==> {name}", file=sys.stderr)
    try:
        return action()
    except Exception as error:  # every failure becomes "which step failed"
        raise DemoFailed(f"step '{name}' failed: {type(error).__name__}: {error}") from None


def demo_key_set() -> str:
    """Fresh, obviously fake keys (never printed)."""
    entries = [f"demo_{secrets.token_urlsafe(32)}:{client_id}:{name}" for client_id, name in DEMO_CLIENTS]
    return json.dumps({"apiKeys": ",".join(entries)})


def run_demo() -> dict[str, str]:
    server = step("start local AWS", local_aws.start_recorded)
    try:
        env = step("point Terraform at local AWS", lambda: stackctl.target_environment(ENV, "local"))
        step(f"cdktf deploy {ENV}", lambda: stackctl.deploy(ENV, env, auto_approve=True))
        outputs = step("read stack outputs", lambda: stackctl.outputs(ENV, env))
        region = outputs["secret_arn"].split(":")[3]
        client = server.session(region).client("secretsmanager", endpoint_url=server.endpoint_url)
        value = demo_key_set()
        version = step(
            "put the demo key set (directly, not through Terraform)",
            lambda: client.put_secret_value(SecretId=outputs["secret_arn"], SecretString=value)["VersionId"],
        )
        read_back = step(
            "read it back as the application would",
            lambda: client.get_secret_value(SecretId=outputs["secret_arn"])["SecretString"],
        )
        if read_back != value:
            raise DemoFailed("step 'read it back' failed: the value read differs from the value written")
        key_count = len(json.loads(read_back)["apiKeys"].split(","))
        return {**outputs, "version_id": version, "key_count": str(key_count)}
    finally:
        step("stop local AWS", local_aws.stop_recorded)


def main() -> int:
    try:
        result = run_demo()
    except DemoFailed as error:
        print(f"demo: FAILED: {error}", file=sys.stderr)
        return 1
    print(
        "\n".join(
            [
                "",
                f"demo: OK: the {ENV} stack was deployed to local AWS and holds {result['key_count']} API keys",
                f"  secret ARN      {result['secret_arn']}",
                f"  KMS key         {result['kms_key_arn']}",
                f"  read policy     {result['read_policy_arn']}",
                f"  alert topic     {result['alert_topic_arn']}",
                f"  secret version  {result['version_id']}",
                "",
                "Give the service its secret by ARN (a real deployment prints a real account's ARN):",
                f"  export API_KEYS_SECRET_ARN={result['secret_arn']}",
                "local AWS was stopped; nothing is left running.",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
