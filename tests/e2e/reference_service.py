"""The reference services' side of the e2e tests: how to start each (the Python one and the
Node one run the same way: `--port N`, the loader's settings from the environment), a client
that keeps calling one, and polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from scripts.demo import PYTHON_SERVICE, http_status
from scripts.node_client import NodeClientError, built, node_binary

__all__ = ["SERVICES", "RollingClient", "service_command", "wait_for"]

SERVICES = ("python", "node")


def service_command(kind: str) -> tuple[str, ...]:
    """The command that starts the `kind` reference service (`--port N` is added)."""
    if kind == "python":
        return PYTHON_SERVICE
    try:
        return (node_binary(), str(built() / "src" / "server.js"))
    except NodeClientError as error:
        pytest.fail(str(error), pytrace=False)


def wait_for(condition: Callable[[], bool], *, timeout: float) -> float:
    """Poll until `condition()` holds; return the monotonic time it first did."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic()


@dataclass
class RollingClient:
    """A client of the service that calls it without pause with whichever key it holds."""

    url: str
    key: str
    requests: int = 0
    failures: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            status = http_status(self.url, key=self.key)
            self.requests += 1
            if status != 200:
                self.failures.append(status)
            time.sleep(0.02)
