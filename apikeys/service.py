"""A minimal reference service: the loader as middleware in front of `/sign`.

    API_KEYS_SECRET_ARN=arn:... python -m apikeys.service --port 8080
    curl -H "Authorization: Bearer $KEY" http://127.0.0.1:8080/sign
    curl -X POST -H "Authorization: Bearer $KEY" --data 'hello' http://127.0.0.1:8080/sign

`/sign` answers GET and POST with the caller's client id and the SHA-256 of the body (empty
for a GET without one). `/healthz` needs no key; every other route answers 401 without a valid Bearer key. It binds
127.0.0.1 only: it is a reference, not a production server.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
from collections.abc import Sequence

try:
    from flask import Flask, Response, g, jsonify, request
    from werkzeug.serving import make_server
except ImportError:  # the runtime installs without it
    raise SystemExit(
        "apikeys.service: the reference service needs Flask: pip install 'credlink-apikeys[service]'"
    ) from None

from apikeys.loader import ApiKeyLoader

__all__ = ["create_app", "main"]

OPEN_PATHS = frozenset({"/healthz"})


def create_app(loader: ApiKeyLoader) -> Flask:
    app = Flask("credlink_reference_service")

    @app.before_request
    def require_api_key() -> tuple[Response, int] | None:
        if request.path in OPEN_PATHS:
            return None
        client = loader.authenticate(request.headers.get("Authorization"))
        if client is None:
            response = jsonify(error="a valid API key is required: Authorization: Bearer <key>")
            response.headers["WWW-Authenticate"] = "Bearer"
            return response, 401
        g.client = client
        return None

    @app.route("/sign", methods=["GET", "POST"])
    def sign() -> Response:
        return jsonify(clientId=g.client.client_id, sha256=hashlib.sha256(request.get_data()).hexdigest())

    @app.get("/healthz")
    def healthz() -> Response:
        return jsonify(status="ok", keySource=loader.source)

    return app


def main(argv: Sequence[str] | None = None) -> int:
    options = argparse.ArgumentParser(prog="python -m apikeys.service", description=__doc__.splitlines()[0])
    options.add_argument("--port", type=int, default=8080)
    args = options.parse_args(argv)
    loader = ApiKeyLoader.from_environ(os.environ)
    server = make_server("127.0.0.1", args.port, create_app(loader), threaded=True)
    print(
        f"listening on http://127.0.0.1:{server.server_port} (keys from {loader.source})", file=sys.stderr, flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
