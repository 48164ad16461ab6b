"""One test suite, two backends: a local folder and S3 (moto's server on loopback)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.registry_helpers import write_model
from trajet.errors import TrajetError
from trajet.registry import (
    LocalStore,
    RegistryError,
    S3Store,
    open_registry,
    resolve_model_ref,
)


@pytest.fixture(scope="session")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(params=["local", "s3"])
def registry(request, monkeypatch, tmp_path):
    """A fresh, empty registry; TRAJET_REGISTRY_URI points at it so the CLI and resolve_model_ref see it."""
    if request.param == "local":
        uri = str(tmp_path / "registry")
    else:
        endpoint = request.getfixturevalue("moto_endpoint")
        monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        bucket = f"reg-{uuid.uuid4().hex[:12]}"
        import boto3

        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
        uri = f"s3://{bucket}/trajet/models"
    monkeypatch.setenv("TRAJET_REGISTRY_URI", uri)
    reg = open_registry()
    assert reg.uri == uri
    return reg


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {name: write_model(root / name, seed) for seed, name in enumerate(("a", "b", "c"))}


def object_key(reg, version: str, path: str) -> str:
    """The stored key of one file of a version (in the folder its committing push wrote)."""
    return f"versions/{version}/{reg.manifest(version)['objects']}/{path}"


def files_of(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@contextlib.contextmanager
def failing_writes(reg, at: int = 1, only: str = ""):
    """From the at-th object write on (1-based), every write fails like a dropped connection;
    with `only`, just the writes of keys ending so count and fail."""
    count = 0

    def should_fail(key: str) -> bool:
        nonlocal count
        if not key.endswith(only):
            return False
        count += 1
        return count >= at

    if isinstance(reg.backend, S3Store):
        from botocore.exceptions import EndpointConnectionError

        def hook(params, **kwargs):
            if should_fail(params["url_path"]):
                raise EndpointConnectionError(endpoint_url="http://injected-fault")

        events = reg.backend.client.meta.events
        events.register("before-call.s3.PutObject", hook, unique_id="inject")
        try:
            yield
        finally:
            events.unregister("before-call.s3.PutObject", unique_id="inject")
    else:
        assert isinstance(reg.backend, LocalStore)
        original = reg.backend._replace

        def replace(tmp, dest):
            if should_fail(Path(dest).as_posix()):
                raise OSError(5, "Input/output error (injected)")
            original(tmp, dest)

        reg.backend._replace = replace
        try:
            yield
        finally:
            reg.backend._replace = original


def test_push_pull_round_trip_verifies_checksums(registry, models, tmp_path):
    extra = {"snapshot_hash": "abc123", "metrics": {"test": {"macro": {"f1": 0.97}}}}
    manifest = registry.push("v1", models["a"], extra)
    expected = files_of(models["a"])
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == expected
    assert {f["path"]: f["size"] for f in manifest["files"]} == {
        p: (models["a"] / p).stat().st_size for p in expected
    }
    assert manifest["snapshot_hash"] == "abc123" and manifest["version"] == "v1"
    assert registry.manifest("v1") == manifest
    stored = registry.backend.list("versions/v1/")
    assert manifest["objects"].startswith("objects-")  # the folder of the push that committed v1
    assert sorted(stored) == sorted(
        [f"versions/v1/{manifest['objects']}/{p}" for p in expected] + ["versions/v1/manifest.json"]
    )
    assert registry.version_uri("v1").endswith("versions/v1/")

    dest = registry.pull("v1", tmp_path / "pulled")
    pulled = files_of(dest)
    assert (
        pulled.pop("manifest.json")
        == hashlib.sha256(registry.backend.read("versions/v1/manifest.json")[0]).hexdigest()
    )
    assert pulled == expected
    with pytest.raises(TrajetError, match="not empty"):
        registry.pull("v1", dest)


def test_versions_are_immutable(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    with pytest.raises(TrajetError, match="already exists.*immutable"):
        registry.push("v1", models["b"], {})
    assert files_of(registry.pull("v1", tmp_path / "p")) | {} != {}
    pulled = files_of(tmp_path / "p")
    pulled.pop("manifest.json")
    assert pulled == files_of(models["a"])


def test_corrupted_object_is_refused_and_nothing_is_written(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    key = object_key(registry, "v1", "model.safetensors")
    original = registry.backend.read(key)[0]
    tampered = bytes([original[0] ^ 0xFF]) + original[1:]  # same size, one flipped byte
    registry.backend.put(key, tampered)
    (parent := tmp_path / "deploy").mkdir()
    out = parent / "out"
    with pytest.raises(TrajetError, match="checksum mismatch.*model.safetensors"):
        registry.pull("v1", out)
    assert not out.exists()
    assert list(parent.iterdir()) == []  # no partial folder left beside it either


def test_unsafe_or_pickle_manifest_paths_are_refused(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    good = json.loads(registry.backend.read("versions/v1/manifest.json")[0])
    sha = "0" * 64
    for i, bad_path in enumerate(
        ("../escape.txt", "/etc/passwd", "sub/../../x", "pytorch_model.bin", "w.pkl")
    ):
        version = f"bad{i}"
        manifest = dict(
            good, version=version, files=good["files"] + [{"path": bad_path, "size": 1, "sha256": sha}]
        )
        registry.backend.put(f"versions/{version}/manifest.json", json.dumps(manifest).encode())
        with pytest.raises(TrajetError, match="unsafe file path|pickle"):
            registry.pull(version, tmp_path / version)
        assert not (tmp_path / version).exists()
    assert not (tmp_path.parent / "escape.txt").exists()


def test_pickle_weights_are_refused_on_push(registry, models, tmp_path):
    folder = tmp_path / "pickled"
    folder.mkdir()
    for f in models["a"].iterdir():
        (folder / f.name).write_bytes(f.read_bytes())
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(TrajetError, match="pytorch_model.bin is a pickle"):
        registry.push("v1", folder, {})
    assert registry.backend.list("") == []
    no_weights = tmp_path / "no_weights"
    no_weights.mkdir()
    (no_weights / "config.json").write_text("{}")
    with pytest.raises(TrajetError, match="safetensors"):
        registry.push("v1", no_weights, {})


def test_errors_mid_push_leave_champion_and_retry_succeeds(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    with failing_writes(registry, at=2), pytest.raises(RegistryError, match="injected"):
        registry.push("v2", models["b"], {})
    assert registry.champion()["version"] == "v1"
    assert [m["version"] for m in registry.list_versions()] == ["v1"]  # no manifest: v2 does not exist
    with pytest.raises(TrajetError, match="cannot promote v2.*no manifest"):
        registry.promote("v2")
    # The manifest write itself failing is no different.
    with failing_writes(registry, only="v2/manifest.json"), pytest.raises(RegistryError):
        registry.push("v2", models["b"], {})
    assert registry.backend.read("versions/v2/manifest.json") is None

    manifest = registry.push("v2", models["b"], {})  # a retry is a fresh push
    assert {f["path"]: f["sha256"] for f in manifest["files"]} == files_of(models["b"])
    registry.promote("v2")
    pulled = files_of(registry.pull("champion", tmp_path / "champ"))
    pulled.pop("manifest.json")
    assert pulled == files_of(models["b"])


def test_leftovers_of_a_different_aborted_push_are_replaced(registry, models, tmp_path):
    with failing_writes(registry, at=3), pytest.raises(RegistryError):
        registry.push("v1", models["c"], {})  # two of c's files land, no manifest
    registry.push("v1", models["a"], {})
    pulled = files_of(registry.pull("v1", tmp_path / "p"))
    pulled.pop("manifest.json")
    assert pulled == files_of(models["a"])


def test_crash_between_push_and_pointer_flip_keeps_old_champion(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    registry.push("v2", models["b"], {})
    # The process dies before the flip: modelled by the pointer write never landing.
    with failing_writes(registry, at=1), pytest.raises(RegistryError):
        registry.promote("v2")
    pointer = registry.champion()
    assert pointer["version"] == "v1" and pointer["previous"] is None
    served = files_of(registry.pull("champion", tmp_path / "served"))
    served.pop("manifest.json")
    assert served == files_of(models["a"])
    assert [r["version"] for r in registry.history()] == ["v1"]
    assert registry.promote("v2")["previous"] == "v1"


def test_history_write_failure_does_not_undo_a_promotion(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    # A pulled model (with the registry's manifest.json inside) can be pushed again under a new version.
    pulled = registry.pull("v1", tmp_path / "pulled")
    registry.push("v2", pulled, {})
    with failing_writes(registry, only="-v2.json"):
        pointer = registry.promote("v2")
    assert pointer["version"] == "v2" and registry.champion() == pointer
    assert [r["version"] for r in registry.history()] == ["v1"]  # audit copy missing, pointer still chains
    assert [f["path"] for f in registry.manifest("v2")["files"]] == sorted(files_of(models["a"]))


@pytest.mark.parametrize("first", [True, False], ids=["first-champion", "over-champion"])
def test_two_racing_promotions_exactly_one_wins(registry, models, first):
    for version, model in (("v1", "a"), ("v2", "b"), ("v3", "c")):
        registry.push(version, models[model], {})
    if not first:
        registry.promote("v1")
    barrier = threading.Barrier(2, timeout=30)
    results: dict[str, object] = {}

    def promote(version: str) -> None:
        reg = open_registry(registry.uri)  # its own Registry, as a second process would have
        read = reg._read_pointer

        def read_then_wait():
            got = read()
            barrier.wait()  # both have read the pointer (and its ETag, or its absence) before either writes
            return got

        reg._read_pointer = read_then_wait
        try:
            results[version] = reg.promote(version)
        except TrajetError as exc:
            results[version] = exc

    threads = [threading.Thread(target=promote, args=(v,)) for v in ("v2", "v3")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winners = [v for v, r in results.items() if isinstance(r, dict)]
    losers = [r for r in results.values() if isinstance(r, TrajetError)]
    assert len(winners) == 1 and len(losers) == 1
    assert "concurrent promotion won" in str(losers[0])
    pointer = registry.champion()
    before = [] if first else ["v1"]
    assert pointer["version"] == winners[0] and pointer["previous"] == (None if first else "v1")
    assert [r["version"] for r in registry.history()] == [*before, winners[0]]


def test_expected_champion_guards_a_stale_gate_decision(registry, models):
    registry.push("v1", models["a"], {})
    registry.push("v2", models["b"], {})
    registry.promote("v1", expected=None)
    with pytest.raises(TrajetError, match="champion is v1, not none"):
        registry.promote("v2", expected=None)
    assert registry.promote("v2", expected="v1")["version"] == "v2"
    with pytest.raises(TrajetError, match="already the champion"):
        registry.promote("v2")
    with pytest.raises(TrajetError, match="no manifest"):
        registry.promote("v9")
    with pytest.raises(TrajetError, match="invalid model version"):
        registry.promote("../v1")


def test_rollback_walks_back_through_champions(registry, models, tmp_path):
    with pytest.raises(TrajetError, match="nothing to roll back"):
        registry.rollback()
    for version, model in (("v1", "a"), ("v2", "b"), ("v3", "c")):
        registry.push(version, models[model], {})
        registry.promote(version)
    assert {m["version"]: m["stage"] for m in registry.list_versions()} == {
        "v1": "archived",
        "v2": "previous",
        "v3": "champion",
    }
    pointer = registry.rollback()
    assert (pointer["version"], pointer["previous"], pointer["rolled_back_from"]) == ("v2", "v1", "v3")
    served = files_of(registry.pull("champion", tmp_path / "after-rollback"))
    served.pop("manifest.json")
    assert served == files_of(models["b"])
    assert registry.rollback()["version"] == "v1"
    with pytest.raises(TrajetError, match="no previous champion"):
        registry.rollback()
    assert [(r["action"], r["version"]) for r in registry.history()] == [
        ("promote", "v1"),
        ("promote", "v2"),
        ("promote", "v3"),
        ("rollback", "v2"),
        ("rollback", "v1"),
    ]


def test_champion_pull_refuses_a_manifest_that_changed_since_promotion(registry, models, tmp_path):
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    raw = registry.backend.read("versions/v1/manifest.json")[0]
    registry.backend.put("versions/v1/manifest.json", raw.replace(b'"v1"', b'"v1" ', 1))
    with pytest.raises(TrajetError, match="does not match the sha256 recorded"):
        registry.pull("champion", tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_resolve_model_ref_caches_pulls_under_trajet_home(registry, models, _trajet_home):
    assert resolve_model_ref(str(models["a"])) == models["a"]
    with pytest.raises(TrajetError, match="no champion"):
        resolve_model_ref("champion")
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    path = resolve_model_ref("champion")
    assert path == _trajet_home.resolve() / "models" / "v1"
    weights = path / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    assert (
        resolve_model_ref("champion") == path and weights.stat().st_mtime_ns == stamp
    )  # reused, not re-pulled
    registry.push("v2", models["b"], {})
    registry.promote("v2")
    assert resolve_model_ref("champion").name == "v2"
    assert resolve_model_ref("v1") == path
    weights.write_bytes(b"damaged")  # a damaged cache copy is replaced by a verified pull
    assert (
        resolve_model_ref("v1") == path
        and files_of(path)["model.safetensors"] == files_of(models["a"])["model.safetensors"]
    )
    with pytest.raises(TrajetError, match="no model version v7"):
        resolve_model_ref("v7")
    with pytest.raises(TrajetError, match="no such model directory"):
        resolve_model_ref("/does/not/exist")


def test_cli_push_list_show_promote_rollback_pull(registry, models, tmp_path):
    from trajet.cli import app

    runner = CliRunner()
    evaluation = tmp_path / "eval.json"
    per_entity = {
        e: {"precision": 0.9, "recall": 0.9, "f1": f, "support": 5}
        for e, f in (("DEPART", 0.981), ("ARRIVEE", 0.972), ("VIA", 0.933))
    }
    evaluation.write_text(
        json.dumps({"test": {"macro": {"f1": 0.9621}, "per_entity": per_entity}, "challenge": None})
    )
    (models_a := tmp_path / "a").mkdir()
    for f in models["a"].iterdir():
        (models_a / f.name).write_bytes(f.read_bytes())
    (models_a / "trajet_training.json").write_text(
        json.dumps(
            {"config": {"base_model": "trajet:mini"}, "snapshot_hash": "deadbeefcafe1234", "metrics": {}}
        )
    )
    result = runner.invoke(
        app, ["model", "push", str(models_a), "--version", "v1", "--evaluation", str(evaluation)]
    )
    assert result.exit_code == 0, result.output
    assert "pushed v1: 4 files" in result.output
    result = runner.invoke(app, ["model", "push", str(models["b"]), "--promote"])
    assert result.exit_code == 0, result.output
    auto_version = registry.champion()["version"]
    assert auto_version.startswith("v2") and auto_version != "v1"
    assert runner.invoke(app, ["model", "promote", "v1", "--expect", auto_version]).exit_code == 0

    result = runner.invoke(app, ["model", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    line = next(x for x in result.output.splitlines() if " v1 " in x)
    for piece in ("champion", "0.9621", "0.9810", "0.9720", "0.9330", "deadbeefcafe"):
        assert piece in line
    assert "previous" in next(x for x in result.output.splitlines() if auto_version in x)

    result = runner.invoke(app, ["model", "show", "champion"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "v1" in result.output and "trajet:mini" in result.output
    assert files_of(models_a)["model.safetensors"] in result.output

    result = runner.invoke(app, ["model", "rollback"])
    assert result.exit_code == 0 and f"champion is now {auto_version}" in result.output
    result = runner.invoke(app, ["model", "history"], env={"COLUMNS": "200"})
    rows = [[c.strip() for c in line.split("│")[1:-1]] for line in result.output.splitlines()]
    assert [row[1:3] for row in rows if row and row[1] in ("promote", "rollback")] == [
        ["promote", auto_version],
        ["promote", "v1"],
        ["rollback", auto_version],
    ]
    dest = tmp_path / "ops"
    result = runner.invoke(app, ["model", "pull", "champion", "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    assert files_of(dest)["model.safetensors"] == files_of(models["b"])["model.safetensors"]

    result = runner.invoke(app, ["model", "push", str(models["a"]), "--version", "v1"])
    assert isinstance(result.exception, TrajetError) and "immutable" in str(result.exception)


def test_missing_bucket_is_a_clear_error(moto_endpoint, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with pytest.raises(RegistryError, match="bucket no-such-bucket-here does not exist"):
        open_registry("s3://no-such-bucket-here/models").champion()
    with pytest.raises(TrajetError, match="only s3://"):
        open_registry("gs://bucket/x")


def test_two_racing_pushes_of_one_version_commit_one_intact_model(registry, models, tmp_path):
    """Two writers push different models under one version name at the same moment: one wins and its files are
    exactly what its manifest lists; the other fails cleanly. Before, the loser overwrote the winner's
    uncommitted files, and the committed manifest no longer matched them."""
    rounds = 6
    for n in range(rounds):
        version = f"race{n}"
        barrier = threading.Barrier(2, timeout=30)
        results: dict[str, object] = {}

        def push(
            name: str, version: str = version, barrier: threading.Barrier = barrier, results: dict = results
        ) -> None:
            reg = open_registry(registry.uri)  # its own Registry, as a second process would have
            put = reg.backend.put

            def put_in_step(key, source, **kw):  # both writers interleave object by object
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(timeout=2)
                return put(key, source, **kw)

            reg.backend.put = put_in_step
            try:
                results[name] = reg.push(version, models[name], {})
            except TrajetError as exc:
                results[name] = exc
            finally:
                barrier.abort()  # the other writer no longer waits for this one

        threads = [threading.Thread(target=push, args=(name,)) for name in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        winners = [name for name, r in results.items() if isinstance(r, dict)]
        losers = [r for r in results.values() if isinstance(r, TrajetError)]
        assert len(winners) == 1 and len(losers) == 1, results
        assert "already exists" in str(losers[0]) and "\n" not in str(losers[0])
        pulled = files_of(registry.pull(version, tmp_path / version))
        pulled.pop("manifest.json")
        assert pulled == files_of(models[winners[0]]), f"round {n}: the committed version is not {winners[0]}"


def test_versions_pushed_before_push_folders_still_pull(registry, models, tmp_path):
    """Manifests written before each push had its own folder list files beside the manifest; a crafted
    objects folder that leaves the version is refused."""
    manifest = registry.push("v1", models["a"], {})
    old = {k: v for k, v in manifest.items() if k != "objects"} | {"version": "old"}
    for f in manifest["files"]:
        registry.backend.put(f"versions/old/{f['path']}", (models["a"] / f["path"]).read_bytes())
    registry.backend.put("versions/old/manifest.json", json.dumps(old).encode())
    pulled = files_of(registry.pull("old", tmp_path / "old"))
    pulled.pop("manifest.json")
    assert pulled == files_of(models["a"])
    bad = dict(manifest, version="bad", objects="../v1")
    registry.backend.put("versions/bad/manifest.json", json.dumps(bad).encode())
    with pytest.raises(TrajetError, match="unsafe objects folder"):
        registry.pull("bad", tmp_path / "bad")


def _crafted(registry, models, version: str, extra_file: dict | None = None, **changes) -> None:
    """A manifest written by hand for `version`, over v1's real objects, with one entry or field changed."""
    good = registry.manifest("v1")
    manifest = dict(good, version=version, **changes)
    if extra_file is not None:
        manifest["files"] = good["files"] + [extra_file]
    registry.backend.put(f"versions/{version}/manifest.json", json.dumps(manifest).encode())


@pytest.mark.parametrize(
    "damage, reason",
    [
        ("corrupt", r"model\.safetensors.*sha256"),
        ("missing", r"tokenizer\.json.*missing"),
        ("pickle", r"pickle"),
        ("unsafe", r"unsafe file path"),
        ("no_weights", r"no \*\.safetensors"),
    ],
)
def test_promote_refuses_a_version_that_cannot_be_pulled(registry, models, damage, reason):
    """The champion pointer must only ever name a model a consumer can pull: promotion checks what pull checks
    (every file's size and sha256, safetensors only, safe relative paths) and leaves the pointer alone."""
    registry.push("v1", models["a"], {})
    registry.promote("v1")
    before = registry.backend.read("champion.json")
    sha = "0" * 64
    if damage in ("corrupt", "missing"):
        registry.push("v2", models["b"], {})
        key = object_key(registry, "v2", "model.safetensors" if damage == "corrupt" else "tokenizer.json")
        if damage == "corrupt":
            data = bytearray(registry.backend.read(key)[0])
            data[-1] ^= 0xFF  # same size: only the checksum tells
            registry.backend.put(key, bytes(data))
        elif isinstance(registry.backend, LocalStore):
            registry.backend._path(key).unlink()
        else:
            registry.backend.client.delete_object(Bucket=registry.backend.bucket, Key=registry.backend._key(key))
    elif damage == "pickle":
        _crafted(registry, models, "v2", {"path": "pytorch_model.bin", "size": 1, "sha256": sha})
    elif damage == "unsafe":
        _crafted(registry, models, "v2", {"path": "../../champion.json", "size": 1, "sha256": sha})
    else:
        manifest = registry.manifest("v1")
        _crafted(registry, models, "v2", files=[f for f in manifest["files"] if not f["path"].endswith(".safetensors")])
    with pytest.raises(TrajetError, match=reason) as caught:
        registry.promote("v2")
    message = str(caught.value)
    assert message.startswith("cannot promote v2") and "\n" not in message, message
    assert registry.backend.read("champion.json") == before
    assert [r["version"] for r in registry.history()] == ["v1"]


# ------------------------------------------------------------------------------------------ faults


def test_a_killed_pull_leaves_a_partial_folder_that_the_next_pull_removes(registry, models, tmp_path):
    """kill -9 during a pull leaves its `.<dest>.partial-*` folder; the next pull beside it removes it, but never
    the folder of a pull still running (it holds a lock on it)."""
    import os
    import signal
    import subprocess
    import sys

    from trajet.config import REPO_ROOT

    registry.push("v1", models["a"], {})
    deploy = tmp_path / "deploy"
    deploy.mkdir()
    code = (
        "import sys, time; from pathlib import Path; from trajet.registry import open_registry\n"
        "reg = open_registry(sys.argv[1]); download = reg.backend.download\n"
        "def slow(key, dest):\n"
        "    download(key, dest); print('downloading', flush=True); time.sleep(600)\n"
        "reg.backend.download = slow\n"
        "reg.pull('v1', Path(sys.argv[2]))\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code, registry.uri, str(deploy / "killed")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    try:
        assert child.stdout.readline().strip() == "downloading"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    leftovers = [p.name for p in deploy.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(".killed.partial-"), leftovers

    # a pull in progress in this process, beside it: its partial folder must survive the cleaning
    started, release = threading.Event(), threading.Event()
    live = open_registry(registry.uri)
    download = live.backend.download

    def paused(key, dest):
        download(key, dest)
        started.set()
        release.wait(timeout=60)

    live.backend.download = paused
    result: dict[str, object] = {}
    thread = threading.Thread(target=lambda: result.setdefault("path", live.pull("v1", deploy / "live")))
    thread.start()
    try:
        assert started.wait(timeout=30)
        registry.pull("v1", deploy / "next")
        names = sorted(p.name for p in deploy.iterdir())
        assert not any(n.startswith(".killed.partial-") for n in names), names
        assert any(n.startswith(".live.partial-") for n in names), names
    finally:
        release.set()
        thread.join(timeout=60)
    assert sorted(p.name for p in deploy.iterdir()) == ["live", "next"]
    pulled = files_of(deploy / "live")
    pulled.pop("manifest.json")
    assert pulled == files_of(models["a"])


@pytest.fixture
def hung_endpoint():
    """A TCP server that accepts connections and never answers (a hung S3 endpoint or proxy)."""
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    conns = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                conns.append(server.accept()[0])

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(timeout=5)
    for conn in conns:
        conn.close()
    server.close()


def test_a_hung_s3_endpoint_fails_in_seconds_naming_the_endpoint(hung_endpoint, tmp_path):
    """Before: 121 s, then "cannot write <local file>". The client has connect/read timeouts and few retries
    (TRAJET_S3_READ_TIMEOUT / TRAJET_S3_MAX_ATTEMPTS here to keep the test short; defaults are in seconds too)."""
    import os
    import subprocess
    import sys
    import time

    from trajet.config import REPO_ROOT

    env = {
        **os.environ, "PYTHONPATH": str(REPO_ROOT), "AWS_ENDPOINT_URL": hung_endpoint,
        "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "TRAJET_S3_READ_TIMEOUT": "1", "TRAJET_S3_MAX_ATTEMPTS": "2",
    }
    env.pop("AWS_PROFILE", None)
    started = time.monotonic()
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trajet", "model", "pull", "champion", "--dest", str(tmp_path / "m"),
             "--registry", "s3://hung-bucket/models"],
            capture_output=True, text=True, env=env, timeout=40, check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the pull from a hung endpoint was still waiting after 40 s")
    took = time.monotonic() - started
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert hung_endpoint in lines[0] and "timeout" in lines[0].lower() and "cannot write" not in lines[0]
    assert took < 30


def test_s3_body_that_stops_mid_download_is_a_download_error_not_a_write_error(tmp_path):
    """Headers arrive, then the body hangs: the error names the object and the endpoint, not the local file."""
    import socket

    import boto3
    from botocore.config import Config

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    conns = []

    def answer_then_hang() -> None:
        with contextlib.suppress(OSError):
            conn = server.accept()[0]
            conns.append(conn)
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nETag: \"x\"\r\n\r\n" + b"x" * 1000)

    thread = threading.Thread(target=answer_then_hang, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.getsockname()[1]}"
    client = boto3.session.Session().client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t",
        config=Config(read_timeout=1, connect_timeout=1, retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
    )
    backend = S3Store("bucket", "models", client=client)
    try:
        with pytest.raises(RegistryError) as caught:
            backend.download("versions/v1/model.safetensors", tmp_path / "model.safetensors")
    finally:
        for conn in conns:
            conn.close()
        server.close()
    message = str(caught.value)
    assert "cannot write" not in message and endpoint in message and "s3://bucket/models/versions/v1" in message
