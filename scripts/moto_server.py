"""moto's server, with one gap of moto 5.2.5 closed: a replica keeps the KMS key it was
created with (moto reports `alias/aws/secretsmanager` for every replica, so every plan of a
stack with replicas would show a change that real AWS does not).

Run by `scripts.local_aws`; takes moto's own arguments (-H 127.0.0.1 -p PORT).
"""

from __future__ import annotations

from typing import Any

from moto.secretsmanager import models
from moto.server import main

_create_replicas = models.FakeSecret.create_replicas


def _create_replicas_keeping_their_keys(
    self: models.FakeSecret, replica_regions: list[dict[str, str]], force_overwrite: bool
) -> Any:
    replicas = _create_replicas(self, replica_regions, force_overwrite)
    for replica, requested in zip(replicas, replica_regions or [], strict=True):
        if "KmsKeyId" in requested:
            replica.config["KmsKeyId"] = requested["KmsKeyId"]
    return replicas


models.FakeSecret.create_replicas = _create_replicas_keeping_their_keys  # type: ignore[method-assign]

if __name__ == "__main__":
    main()
