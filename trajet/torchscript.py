"""The torch backend without transformers at start-up: the model's TorchScript trace, saved once and reloaded.

`trajet predict --model M "one sentence"` spent ~3.6 s of its ~5.6 s importing torch (1.2 s) and transformers'
CamemBERT code (2.4 s, which pulls in torch._dynamo, torch.export and torch.distributed). The first such call
traces the model with transformers (`trajet.predictor.trace_model`, the graph the batched path runs), checks the
trace and then its reloaded copy against the eager model, and saves it; later calls `torch.jit.load` it, which
needs torch but no transformers, and tokenize with the model's `tokenizer.json` through `tokenizers` alone when
the export checked that it encodes exactly as transformers does (`trajet.subwords.PlainTokenizer`).

The export lives in `$TRAJET_HOME/cache/torchscript/<sha256 of the weights>/` (outside the model directory, so
`trajet model push` never uploads it). Its `trajet_torchscript.json` records what the graph and the tokenizer check
depend on (weights, config.json and tokenizer files by sha256, torch and transformers versions, this recipe's
format) and the sha256 of the saved graph: any difference, or a file that does not hash or load, means the export
is rebuilt, never used. When no export can be written or the model does not trace faithfully, the caller runs the
eager model as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.model_dir import CONFIG_FILE
from trajet.predictor import Predictor

MODEL_FILE = "model.pt"
META_FILE = "trajet_torchscript.json"
# Bump when the export recipe changes: exports written by an older recipe are then rebuilt.
EXPORT_FORMAT = 1
_ATOL = 1e-4  # the in-process trace's own check (trajet.predictor.trace_model)

_exports = 0  # exports done by this process (tests check that a saved export is reused)


def export_count() -> int:
    return _exports


def default_cache_root() -> Path:
    return trajet_config.home() / "cache" / "torchscript"


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def export_key(model_dir: Path) -> dict[str, Any]:
    """Everything a saved graph and its tokenizer check were made from; an export is used only when all match."""
    import torch

    from trajet.onnx_runtime import weights_sha256
    from trajet.subwords import tokenizer_sha256

    model_dir = Path(model_dir)
    return {
        "format": EXPORT_FORMAT,
        "weights_sha256": weights_sha256(model_dir),
        "config_sha256": _file_sha256(model_dir / CONFIG_FILE),
        "tokenizer_sha256": tokenizer_sha256(model_dir),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
    }


@dataclass(frozen=True)
class SavedTrace:
    folder: Path
    meta: dict[str, Any]
    exported: bool  # True when this call exported it, False when a saved export was reused

    @property
    def model(self) -> Path | None:
        """The saved graph; None when the export found the model does not trace faithfully (run eager)."""
        return self.folder / MODEL_FILE if self.meta.get("traced") else None


def _saved(folder: Path, key: dict[str, Any]) -> SavedTrace | None:
    """The export in `folder` if it was made from exactly `key` and its graph is the file it recorded."""
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("key") != key or not isinstance(meta.get("traced"), bool):
        return None
    if meta["traced"]:
        try:
            if _file_sha256(folder / MODEL_FILE) != meta.get("model_sha256"):
                return None
        except OSError:
            return None
    return SavedTrace(folder, meta, exported=False)


def ensure_saved_trace(model_dir: Path, *, cache_root: Path | None = None) -> SavedTrace | None:
    """This model's saved trace: reused when it matches the model, else exported now (transformers loaded);
    None when it cannot be written. Written to a temporary sibling renamed into place, so a crash leaves no
    half-written export and two processes exporting at once both end up with a complete one."""
    global _exports
    model_dir = Path(model_dir)
    key = export_key(model_dir)
    target = (cache_root or default_cache_root()) / key["weights_sha256"]
    found = _saved(target, key)
    if found is not None:
        return found
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(target.parent, os.W_OK):
        return None
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        from trajet.onnx_runtime import install_dir

        meta = export_trace(model_dir, tmp, key)
        raced = install_dir(tmp, target, lambda: _saved(target, key))
        if raced is not None:
            return raced
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return _saved(target, key)  # another process may have won the rename
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _exports += 1
    return SavedTrace(target, meta, exported=True)


def _probe(model: Any, lengths: list[int], with_types: bool) -> tuple[Any, ...]:
    import torch

    width = max(lengths)
    vocab = int(getattr(model.config, "vocab_size", 100) or 100)
    ids = (torch.arange(len(lengths) * width).reshape(len(lengths), width) * 11 + 3) % vocab
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    types = (torch.arange(len(lengths) * width).reshape(len(lengths), width) % 3) * mask
    return (ids, mask, types) if with_types else (ids, mask)


def export_trace(model_dir: Path, out_dir: Path, key: dict[str, Any]) -> dict[str, Any]:
    """Trace the model as the batched torch path does, save it, and keep it only if the reloaded graph gives the
    eager model's logits on one unpadded sentence and on a padded batch. Writes `META_FILE` either way."""
    import torch
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    from trajet.predictor import trace_model
    from trajet.subwords import plain_tokenizer_agrees

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise TrajetError(f"cannot load model from {model_dir}: {exc}") from None
    model.eval()
    with_types = bool(getattr(model.config, "trajet_features", None))
    traced = trace_model(model, with_types=with_types)
    meta: dict[str, Any] = {"key": key, "traced": False, "with_types": with_types, "source": str(Path(model_dir).resolve())}
    if traced is not None:
        path = out_dir / MODEL_FILE
        torch.jit.save(traced, str(path))
        loaded = torch.jit.load(str(path), map_location="cpu").eval()
        same = True
        with torch.inference_mode():
            for lengths in ([7], [12, 5, 9]):
                args = _probe(model, lengths, with_types)
                extra = {"token_type_ids": args[2]} if with_types else {}
                eager = model(input_ids=args[0], attention_mask=args[1], **extra).logits
                same = same and torch.allclose(loaded(*args), eager, atol=_ATOL, rtol=_ATOL)
        if same:
            meta.update(traced=True, model_sha256=_file_sha256(path))
        else:
            path.unlink()
    meta["plain_tokenizer"] = plain_tokenizer_agrees(Path(model_dir))
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return meta


class SavedTracePredictor(Predictor):
    """`Predictor` whose forward pass is the saved graph; no transformers model behind it."""

    def __init__(self, module: Any, saved: SavedTrace, tokenizer: Any, *, max_length: int, batch_size: int,
                 id2label: dict[int, str], lexicon: Any) -> None:
        super().__init__(None, tokenizer, max_length=max_length, batch_size=batch_size, id2label=id2label,
                         lexicon=lexicon)
        self._traced = module
        self.saved_trace = saved


def load_saved(model_dir: Path, *, batch_size: int = 32, num_threads: int = 0,
               cache_root: Path | None = None) -> Predictor:
    """A predictor running the saved trace (exported first when missing or stale); the eager predictor when no
    faithful trace can be saved. Same preparation, decoding and output as the eager one."""
    import torch

    from trajet.lexicon import model_lexicon
    from trajet.onnx_runtime import _config_dict, _id2label
    from trajet.predictor import check_model_dir, max_length_of
    from trajet.subwords import PlainTokenizer, load_tokenizer

    model_dir = check_model_dir(model_dir)
    saved = ensure_saved_trace(model_dir, cache_root=cache_root)
    if saved is None or saved.model is None:
        return Predictor.load(model_dir, batch_size=batch_size, num_threads=num_threads, trace=False)
    if num_threads > 0:
        torch.set_num_threads(num_threads)
    try:
        module = torch.jit.load(str(saved.model), map_location="cpu").eval()
    except Exception:  # noqa: BLE001 - it hashed right but does not load: drop it, answer with the eager model
        shutil.rmtree(saved.folder, ignore_errors=True)
        return Predictor.load(model_dir, batch_size=batch_size, num_threads=num_threads, trace=False)
    tokenizer = PlainTokenizer(model_dir) if saved.meta.get("plain_tokenizer") is True else load_tokenizer(model_dir)
    cfg = _config_dict(model_dir)
    return SavedTracePredictor(module, saved, tokenizer, max_length=max_length_of(model_dir, tokenizer),
                               batch_size=batch_size, id2label=_id2label(model_dir, cfg),
                               lexicon=model_lexicon(model_dir, cfg.get("trajet_features")))
