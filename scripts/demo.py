"""`make demo`: the whole job against local AWS, step by step, with a summary at the end.

Starts local AWS, deploys the (already synthesized) dev stack with `cdktf deploy`, moves a
demo key set into the secret with `apikeys migrate` (never through Terraform state), checks
it with `apikeys verify`, starts the reference service reading the secret and proves a good
key gets 200 and a bad key 401. Then it rotates: `apikeys rotate` starts a rotation, the
rotation function's four steps run here (local AWS cannot run a Lambda: this script plays
Lambda's part with the same events), and the service accepts both the new key and, in its
grace period, the old one. Then it stops everything. A failure names its step.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import IO, TypeVar

from scripts import access, local_aws, stackctl

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


def apikeys_cli(*args: str, env: dict[str, str]) -> str:
    result = subprocess.run(  # noqa: S603 (argv built here)
        [sys.executable, "-m", "apikeys", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    print(result.stdout, end="", file=sys.stderr)  # counts, client ids and checks only: never keys
    if result.returncode != 0:
        raise RuntimeError(f"apikeys {args[0]} exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


def http_status(url: str, *, key: str | None = None, method: str = "POST") -> int:
    """The status of a call with `key` as its Bearer key: a POST with a body, or a GET without."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    data = b"demo payload" if method == "POST" else None
    request = urllib.request.Request(url, data=data, headers=headers, method=method)  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 (loopback http)
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


# The Python reference service; `--port N` is added.
PYTHON_SERVICE = (sys.executable, "-m", "apikeys.service")


def start_service(
    env: dict[str, str],
    port: int,
    *,
    command: Sequence[str] = PYTHON_SERVICE,
    stderr: IO[bytes] | None = None,
) -> subprocess.Popen[bytes]:
    """A reference service (`command --port N`) started and answering /healthz."""
    service = subprocess.Popen(  # noqa: S603 (argv built here)
        [*command, "--port", str(port)], env=env, stdin=subprocess.DEVNULL, stderr=stderr
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
                if response.status == 200:
                    return service
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
        if service.poll() is not None:
            break
    service.terminate()
    service.wait(timeout=10)
    raise RuntimeError("the reference service did not answer /healthz")


def run_demo() -> dict[str, str]:
    server = step("start local AWS", local_aws.start_recorded)
    service: subprocess.Popen[bytes] | None = None
    try:
        config = access.environment_config(ENV)
        step(
            f"create the roles {ENV} expects (its deploy, plan and operator roles)",
            lambda: access.create_local_prerequisites(config, server),
        )
        env = step("point Terraform at local AWS", lambda: stackctl.target_environment(ENV, "local"))
        step(f"cdktf deploy {ENV}", lambda: stackctl.deploy(ENV, env, auto_approve=True))
        outputs = step("read stack outputs", lambda: stackctl.outputs(ENV, env))
        region = outputs["secret_arn"].split(":")[3]
        # apikeys runs as the env's operator, as a person would.
        app_env = access.assume_locally(
            config,
            server,
            {**env, "AWS_REGION": region},
            role=(config.access.operator_roles or config.access.apply_roles)[0],
        )
        keys = [f"demo_{secrets.token_urlsafe(32)}" for _ in DEMO_CLIENTS]
        api_keys = ",".join(
            f"{key}:{client_id}:{name}" for key, (client_id, name) in zip(keys, DEMO_CLIENTS, strict=True)
        )
        step(
            "apikeys migrate (API_KEYS -> Secrets Manager)",
            lambda: apikeys_cli("migrate", "--env", ENV, env={**app_env, "API_KEYS": api_keys}),
        )
        step("apikeys verify", lambda: apikeys_cli("verify", "--env", ENV, env=app_env))
        port = local_aws.free_port()
        service_env = {**app_env, "API_KEYS_SECRET_ARN": outputs["secret_arn"], "API_KEYS_REFRESH_SECONDS": "1"}
        service = step("start the reference service", lambda: start_service(service_env, port))
        url = f"http://127.0.0.1:{port}/sign"
        good = step("a good key gets 200", lambda: http_status(url, key=keys[0]))
        bad = step("a bad key gets 401", lambda: http_status(url, key=f"demo_{secrets.token_urlsafe(32)}"))
        if (good, bad) != (200, 401):
            raise DemoFailed(
                f"step 'call the service' failed: good key -> {good}, bad key -> {bad} (expected 200, 401)"
            )
        rotated, new_key = step(
            "rotate the keys", lambda: rotate_and_check(url, region, outputs["secret_arn"], app_env, keys[0])
        )
        revoked = step(
            "revoke demo-client-1 (apikeys clients revoke)",
            lambda: revoke_and_check(url, app_env, "demo-client-1", (new_key, keys[0])),
        )
        return {
            **outputs,
            "key_count": str(len(keys)),
            "service_checks": f"good key {good}, bad key {bad}",
            "rotation": rotated,
            "revocation": revoked,
        }
    finally:
        if service is not None:
            service.terminate()
            service.wait(timeout=10)
        step("stop local AWS", local_aws.stop_recorded)


def rotate_and_check(url: str, region: str, secret_arn: str, env: dict[str, str], old_key: str) -> tuple[str, str]:
    output = apikeys_cli("rotate", "--env", ENV, env=env)
    token = output.split("version ", 1)[1].split()[0]
    server = local_aws.recorded()
    if server is None:
        raise RuntimeError("local AWS is not running")
    secretsmanager = server.session(region).client("secretsmanager", endpoint_url=server.endpoint_url)
    local_aws.run_rotation_function(secretsmanager, secret_arn, token)
    value = json.loads(secretsmanager.get_secret_value(SecretId=secret_arn)["SecretString"])
    new_key = next(entry.split(":")[0] for entry in value["apiKeys"].split(",") if ":demo-client-1:" in entry)
    time.sleep(3)  # the service's refresh interval is 1 s here (300 s by default)
    statuses = (http_status(url, key=new_key), http_status(url, key=old_key))
    if statuses != (200, 200):
        raise RuntimeError(
            f"after the rotation: new key -> {statuses[0]}, old key -> {statuses[1]} (expected 200, 200)"
        )
    return f"version {token} is AWSCURRENT; new key 200, previous key 200 (grace)", new_key


def revoke_and_check(url: str, env: dict[str, str], client_id: str, its_keys: tuple[str, ...]) -> str:
    """Revoke a client whose previous key is still in its rotation grace: every key of it is refused."""
    apikeys_cli("clients", "revoke", "--env", ENV, "--client-id", client_id, env=env)
    time.sleep(3)  # the service's refresh interval is 1 s here (300 s by default)
    statuses = [http_status(url, key=key) for key in its_keys]
    if any(status != 401 for status in statuses):
        raise RuntimeError(f"after revoking {client_id}: its keys -> {statuses} (expected 401 for each)")
    return f"{client_id}'s current and in-grace keys 401 from the service's next refresh"


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
                f"  service         {result['service_checks']}",
                f"  rotation        {result['rotation']}",
                f"  revocation      {result['revocation']}",
                "",
                "Give the service its secret by ARN (a real deployment prints a real account's ARN):",
                f"  export API_KEYS_SECRET_ARN={result['secret_arn']}",
                "The reference service and local AWS were stopped; nothing is left running.",
            ]
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
