"""A Secrets Manager stand-in on 127.0.0.1 for the failures local AWS cannot make: it answers
every request from a script of (HTTP status, JSON body), optionally after a delay."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import time
from typing import Any

__all__ = ["ScriptedSecretsManager", "aws_error"]


def aws_error(code: str, message: str = "scripted") -> dict[str, Any]:
    """The body of an AWS JSON-protocol error, as both SDKs read it."""
    return {"__type": code, "message": message}


class ScriptedSecretsManager:
    """A Secrets Manager stand-in on 127.0.0.1 that answers from a script of (status, body)."""

    def __init__(self, responses: list[tuple[int, dict[str, Any]]], *, delay_seconds: float = 0.0) -> None:
        self.responses = responses
        self.requests = 0
        script = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                time.sleep(delay_seconds)
                status, body = script.responses[min(script.requests, len(script.responses) - 1)]
                script.requests += 1
                payload = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client timed out
                    self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
