"""`apikeys clients`: one client at a time, compare-and-swap writes, keys handed over once."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path
from typing import Any

import pytest

from apikeys.clients import EDIT_LABEL, ChangeConflictError, commit, read_snapshot
from apikeys.events import Event
from apikeys.keyset import Client, parse_entries
from tests.unit.conftest import run

KEYS = {
    "billing": "fake_clients_key_billing_000000000",
    "search": "fake_clients_key_search_0000000000",
    "web": "fake_clients_key_web_0000000000000",
}
NAMES = {"billing": "Billing Service", "search": "Search: Indexer", "web": "Web"}


@pytest.fixture
def secret(deployed: dict[str, Any]) -> dict[str, Any]:
    """The deployed secret holding three clients, with another field in its document."""
    entries = ",".join(f"{KEYS[cid]}:{cid}:{NAMES[cid]}" for cid in KEYS)
    deployed["secrets"].put_secret_value(
        SecretId=deployed["secret_arn"], SecretString=json.dumps({"apiKeys": entries, "owner": "team-a"})
    )
    return deployed


def target(secret: dict[str, Any]) -> list[str]:
    return ["--env", "test", "--outputs", secret["outputs"]]


def current(secret: dict[str, Any], stage: str = "AWSCURRENT") -> dict[str, str]:
    value = secret["secrets"].get_secret_value(SecretId=secret["secret_arn"], VersionStage=stage)["SecretString"]
    return {client.client_id: key for key, client in parse_entries(json.loads(value)["apiKeys"])}


def stages(secret: dict[str, Any]) -> dict[str, list[str]]:
    return dict(secret["secrets"].describe_secret(SecretId=secret["secret_arn"])["VersionIdsToStages"])


def assert_no_key_in(*texts: str, keys: tuple[str, ...] = tuple(KEYS.values())) -> None:
    for text in texts:
        for key in keys:
            assert key not in text


def test_list_names_clients_and_fingerprints_never_keys(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "clients", "list", *target(secret))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("version ")
    assert lines[0].endswith(": 3 clients")
    rows = [line.split() for line in lines[2:]]
    assert [row[0] for row in rows] == ["billing", "search", "web"]
    assert "Search: Indexer" in lines[3]
    billing_print = hashlib.sha256(KEYS["billing"].encode()).hexdigest()[:12]
    assert rows[0][-1] == f"sha256:{billing_print}"
    assert_no_key_in(out, err)


def test_add_writes_one_client_prints_its_key_once_and_audits(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str], log_lines: list[dict[str, Any]]
) -> None:
    before = next(version for version, labels in stages(secret).items() if "AWSCURRENT" in labels)
    code, out, err = run(capsys, "clients", "add", *target(secret), "--client-id", "acme", "--name", "Acme Corp")
    assert code == 0, err
    key = out.strip()
    assert out == f"{key}\n"  # stdout holds the key and nothing else
    after = current(secret)
    assert after == {**KEYS, "acme": key}  # every other client untouched
    assert current(secret, "AWSPREVIOUS") == KEYS
    document = json.loads(
        secret["secrets"].get_secret_value(SecretId=secret["secret_arn"])["SecretString"]
    )  # other fields of the document are kept
    assert document["owner"] == "team-a"
    (audit,) = log_lines
    assert audit["event"] == Event.CLIENT_CHANGED
    assert (audit["action"], audit["client_id"], audit["previous_version"]) == ("add", "acme", before)
    assert audit["caller"].startswith("arn:aws:")
    assert audit["version"] in err
    assert audit["caller"] in err
    assert "acme" in err
    assert audit["key_fingerprint"] == hashlib.sha256(key.encode()).hexdigest()[:12]
    assert_no_key_in(err, json.dumps(log_lines), keys=(key, *KEYS.values()))
    assert EDIT_LABEL not in json.dumps(stages(secret))  # no working label left behind


def test_add_refuses_an_existing_client_and_bad_input(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    before = stages(secret)
    code, out, err = run(capsys, "clients", "add", *target(secret), "--client-id", "web", "--name", "Web 2")
    assert (code, out) == (1, "")
    assert "client 'web' already exists" in err
    assert "clients rotate" in err
    code, out, err = run(capsys, "clients", "add", *target(secret), "--client-id", "a b", "--name", "Space")
    assert (code, out) == (2, "")
    assert '--client-id, field "clientId"' in err
    code, out, err = run(capsys, "clients", "add", *target(secret), "--client-id", "acme", "--name", "Acme, Inc")
    assert (code, out) == (2, "")
    assert '--name, field "name"' in err
    assert stages(secret) == before  # nothing written


def test_out_file_is_created_0600_and_an_existing_file_is_refused_before_any_change(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "acme.key"
    code, out, err = run(
        capsys, "clients", "add", *target(secret), "--client-id", "acme", "--name", "Acme", "--out", str(out_file)
    )
    assert code == 0, err
    key = out_file.read_text(encoding="utf-8").strip()
    assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
    assert current(secret)["acme"] == key
    assert_no_key_in(out, err, keys=(key,))
    assert str(out_file) in out

    before = stages(secret)
    code, out, err = run(capsys, "clients", "rotate", *target(secret), "--client-id", "acme", "--out", str(out_file))
    assert code == 1
    assert f"--out {out_file}: File exists" in err
    assert stages(secret) == before
    assert out_file.read_text(encoding="utf-8").strip() == key


def test_a_failed_change_leaves_no_key_file(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    out_file = tmp_path / "nobody.key"
    code, _, err = run(capsys, "clients", "rotate", *target(secret), "--client-id", "nobody", "--out", str(out_file))
    assert code == 1
    assert "no client 'nobody'" in err
    assert "(clients: billing, search, web)" in err
    assert not out_file.exists()


def test_rotate_replaces_one_key_and_keeps_the_rest(secret: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "clients", "rotate", *target(secret), "--client-id", "search")
    assert code == 0, err
    key = out.strip()
    assert current(secret) == {**KEYS, "search": key}
    assert current(secret, "AWSPREVIOUS") == KEYS  # the old key, for the services' grace period
    names = {client.client_id: client.name for _, client in parse_entries(json.loads(
        secret["secrets"].get_secret_value(SecretId=secret["secret_arn"])["SecretString"])["apiKeys"])}  # fmt: skip
    assert names == NAMES
    assert "grace period" in err


def test_revoke_removes_one_client_but_never_the_last(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str], log_lines: list[dict[str, Any]]
) -> None:
    code, out, err = run(capsys, "clients", "revoke", *target(secret), "--client-id", "web")
    assert code == 0, err
    assert current(secret) == {cid: KEYS[cid] for cid in ("billing", "search")}
    assert "revoked client web" in out
    assert "next refresh" in out
    assert [(line["action"], line["client_id"]) for line in log_lines] == [("revoke", "web")]
    assert "key_fingerprint" not in log_lines[0]
    run(capsys, "clients", "revoke", *target(secret), "--client-id", "search")
    code, _, err = run(capsys, "clients", "revoke", *target(secret), "--client-id", "billing")
    assert code == 1
    assert "'billing' is the last client" in err
    assert list(current(secret)) == ["billing"]


def test_show_key_prints_that_clients_key_only_and_audits_the_read(
    secret: dict[str, Any], capsys: pytest.CaptureFixture[str], log_lines: list[dict[str, Any]]
) -> None:
    before = stages(secret)
    code, out, err = run(capsys, "clients", "show-key", *target(secret), "--client-id", "billing")
    assert code == 0, err
    assert out == f"{KEYS['billing']}\n"
    assert_no_key_in(err, json.dumps(log_lines))
    assert [(line["event"], line["action"], line["client_id"]) for line in log_lines] == [
        (Event.CLIENT_READ, "show-key", "billing")
    ]
    assert stages(secret) == before


def test_every_command_refuses_during_a_rotation(secret: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    secret["secrets"].put_secret_value(
        SecretId=secret["secret_arn"],
        ClientRequestToken="00000000-0000-4000-8000-000000000001",
        SecretString=json.dumps({"apiKeys": "fake_clients_pending_key_0000000:web:Web"}),
        VersionStages=["AWSPENDING"],
    )
    before = stages(secret)
    for argv in (
        ["list"],
        ["add", "--client-id", "acme", "--name", "Acme"],
        ["rotate", "--client-id", "web"],
        ["revoke", "--client-id", "web"],
        ["show-key", "--client-id", "web"],
    ):
        code, out, err = run(capsys, "clients", *argv[:1], *target(secret), *argv[1:])
        assert (code, out) == (1, ""), argv
        assert "a rotation is in progress (version 00000000-0000-4000-8000-000000000001 is AWSPENDING)" in err
    assert stages(secret) == before


def test_of_two_changes_from_the_same_version_one_lands_and_the_other_is_refused(secret: dict[str, Any]) -> None:
    secretsmanager, arn = secret["secrets"], secret["secret_arn"]
    first, second = read_snapshot(secretsmanager, arn), read_snapshot(secretsmanager, arn)
    won = commit(secretsmanager, arn, first, first.with_key("acme", "fake_clients_key_acme_00000000000", "Acme"))
    with pytest.raises(ChangeConflictError, match=f"AWSCURRENT moved from {second.version} to {won}"):
        commit(secretsmanager, arn, second, second.without("web"))
    assert current(secret) == {**KEYS, "acme": "fake_clients_key_acme_00000000000"}  # nothing lost
    labels = stages(secret)
    assert labels[won] == ["AWSCURRENT"]
    unlabelled = [version for version, names in labels.items() if not names]
    assert len(unlabelled) == 1
    assert unlabelled[0] != won
    assert EDIT_LABEL not in json.dumps(labels)  # the refused version is left unlabelled (deprecated)


def test_a_change_drops_a_rotations_provenance_field(secret: dict[str, Any]) -> None:
    secretsmanager, arn = secret["secrets"], secret["secret_arn"]
    base = read_snapshot(secretsmanager, arn)
    rotated = {**base.document, "rotatedFrom": "some-earlier-version"}
    snapshot = type(base)(version=base.version, document=rotated, entries=base.entries)
    commit(secretsmanager, arn, snapshot, snapshot.entries)
    document = json.loads(secretsmanager.get_secret_value(SecretId=arn)["SecretString"])
    assert "rotatedFrom" not in document
    assert document["owner"] == "team-a"


def test_a_secret_without_a_value_points_to_migrate(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "clients", "list", "--env", "test", "--outputs", deployed["outputs"])
    assert code == 1
    assert "has no value yet: import the first keys with apikeys migrate" in err


def test_clients_help_has_an_example_for_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    for action in ("list", "add", "rotate", "revoke", "show-key"):
        with pytest.raises(SystemExit):
            run(capsys, "clients", action, "--help")
        assert f"example: apikeys clients {action} --env prod" in capsys.readouterr().out


def test_the_snapshot_repr_holds_no_key(secret: dict[str, Any]) -> None:
    snapshot = read_snapshot(secret["secrets"], secret["secret_arn"])
    assert_no_key_in(repr(snapshot), str(snapshot))
    assert snapshot.find("web") == (KEYS["web"], Client("web", "Web"))
