"""Start and stop the local AWS endpoint (moto's server) on a free 127.0.0.1 port.

    python -m scripts.local_aws start     # prints KEY=VALUE lines for the environment
    python -m scripts.local_aws env       # the same lines for an endpoint already running
    python -m scripts.local_aws stop

Only the loopback address is ever bound. The server's PID and port are kept in
`.tooling/local-aws.json`, so `stop` ends exactly the process `start` began. The same
functions serve the pytest fixture (`tests/conftest.py`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import boto3

from apikeys.rotation import STEPS, rotate

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

__all__ = [
    "LocalAws",
    "free_port",
    "local_aws",
    "recorded",
    "run_rotation_function",
    "start",
    "start_recorded",
    "stop",
    "stop_recorded",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
STATE_FILE = PROJECT_ROOT / ".tooling" / "local-aws.json"
LOCAL_STATE_ROOT = PROJECT_ROOT / ".tooling" / "local-aws"
HOST = "127.0.0.1"
STARTUP_TIMEOUT_SECONDS = 30.0
# moto's default account; any credentials are accepted, these make it obvious they are fake.
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-local-only", "AWS_SECRET_ACCESS_KEY": "testing-local-only"}


@dataclass(frozen=True)
class LocalAws:
    pid: int
    port: int

    @property
    def endpoint_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def state_dir(self) -> Path:
        """Terraform state for stacks deployed to this server; it dies with the server."""
        return LOCAL_STATE_ROOT / f"port-{self.port}"

    def applied_to(self, base: Mapping[str, str]) -> dict[str, str]:
        """`base` (e.g. os.environ) pointed at this endpoint, with any real identity removed."""
        kept = {key: value for key, value in base.items() if key not in _REAL_IDENTITY}
        return {**kept, **self.environment()}

    def session(self, region: str) -> boto3.Session:
        """A boto3 session with the fake credentials; pass `endpoint_url` to its clients."""
        return boto3.Session(
            region_name=region,
            aws_access_key_id=FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )

    def environment(self) -> dict[str, str]:
        """What points Terraform and boto3 at the endpoint: environment variables only, so the
        synthesized Terraform is identical for local and real AWS."""
        return {
            **FAKE_CREDENTIALS,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true",
        }


# Variables that would point the SDKs at a real identity instead of the fake credentials.
_REAL_IDENTITY = frozenset(
    {
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_SESSION_TOKEN",
        "AWS_SECURITY_TOKEN",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    }
)

# Servers this process started, so stop() can reap them (a server started by
# `python -m scripts.local_aws start` outlives that process and is stopped by PID).
_children: dict[int, subprocess.Popen[bytes]] = {}


def run_rotation_function(client: SecretsManagerClient, secret_arn: str, token: str) -> None:
    """What Lambda does when Secrets Manager invokes the rotation function: `apikeys.rotation`
    once per step, with the same events. Local AWS (moto) cannot run a Lambda without Docker."""
    for step in STEPS:
        rotate(client, {"Step": step, "SecretId": secret_arn, "ClientRequestToken": token})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(endpoint_url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{endpoint_url}/moto-api/", timeout=1) as response:  # noqa: S310 (loopback http)
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def start(*, log_path: Path | None = None) -> LocalAws:
    """Start moto's server and wait until it answers. Raises RuntimeError if it does not."""
    port = free_port()
    log = open(log_path or os.devnull, "ab")  # noqa: SIM115 (handed to the child process)
    process = subprocess.Popen(  # noqa: S603 (fixed argv)
        [sys.executable, "-m", "scripts.moto_server", "-H", HOST, "-p", str(port)],
        cwd=PROJECT_ROOT,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: stop() ends it and nothing else
    )
    log.close()
    _children[process.pid] = process
    server = LocalAws(pid=process.pid, port=port)
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not _answers(server.endpoint_url):
        if process.poll() is not None or time.monotonic() > deadline:
            _terminate(process.pid)
            raise RuntimeError(f"local AWS (moto) did not start on {server.endpoint_url}")
        time.sleep(0.1)
    return server


def _terminate(pid: int) -> None:
    child = _children.pop(pid, None)
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if child is not None:  # started by this process: reap it
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(pid, signal.SIGKILL)
            child.wait()
        return
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        with suppress(ChildProcessError):  # not our child when started by another process
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.05)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)


def stop(server: LocalAws) -> None:
    _terminate(server.pid)
    shutil.rmtree(server.state_dir, ignore_errors=True)


@contextmanager
def local_aws(*, log_path: Path | None = None) -> Iterator[LocalAws]:
    server = start(log_path=log_path)
    try:
        yield server
    finally:
        stop(server)


def recorded() -> LocalAws | None:
    """The endpoint `start_recorded` began, if it is still answering."""
    if not STATE_FILE.exists():
        return None
    server = LocalAws(**json.loads(STATE_FILE.read_text(encoding="utf-8")))
    return server if _alive(server.pid) and _answers(server.endpoint_url) else None


def start_recorded() -> LocalAws:
    """Start (or reuse) the endpoint shared by make targets, recording its PID and port."""
    running = recorded()
    if running is not None:
        return running
    STATE_FILE.parent.mkdir(parents=True, exist_ok=True)
    server = start(log_path=STATE_FILE.with_suffix(".log"))
    STATE_FILE.write_text(json.dumps(asdict(server)), encoding="utf-8")
    return server


def stop_recorded() -> LocalAws | None:
    if not STATE_FILE.exists():
        return None
    server = LocalAws(**json.loads(STATE_FILE.read_text(encoding="utf-8")))
    stop(server)
    STATE_FILE.unlink()
    return server


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else ""
    if command in ("start", "env"):
        server = start_recorded() if command == "start" else recorded()
        if server is None:
            print("error: local AWS is not running (make local-up)", file=sys.stderr)
            return 1
        if command == "start":
            print(f"local AWS (moto) listening on {server.endpoint_url} (pid {server.pid})", file=sys.stderr)
        for key, value in server.environment().items():
            print(f"{key}={value}")
        return 0
    if command == "stop":
        stopped = stop_recorded()
        if stopped is not None:
            print(f"local AWS (moto) stopped (pid {stopped.pid})", file=sys.stderr)
        return 0
    print("usage: python -m scripts.local_aws start|env|stop", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
