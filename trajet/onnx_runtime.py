"""ONNX Runtime inference: export a Trajet model directory to ONNX once, quantize it to int8, tag with it.

The model directory stays the source of truth (safetensors, as trained and as the registry stores it). On first
use the token classifier is exported with torch's `torch.export`-based ONNX exporter (`dynamo=True`, the default
since torch 2.9; the TorchScript exporter is deprecated) with dynamic batch and sequence axes, then the weights
of its MatMuls are quantized to int8 with ONNX Runtime's dynamic quantization (`quantize_dynamic`, QInt8
weights, activations quantized per batch at run time; embeddings stay fp32). Both files are cached in a folder
keyed by the sha256 of the weights, so a second load, another process or a re-pull of the same registry version
reuses them:

- `$TRAJET_HOME/cache/onnx/<sha256>/` by default: outside the model directory, so `trajet model push` never
  uploads derived files, and a model the service pulls into a fresh folder still finds its export;
- `<model_dir>/onnx/` is read first when it holds an export of these very weights (files shipped next to the
  model), and written when the cache folder is not writable.

`OnnxPredictor` is a `trajet.predictor.Predictor` whose forward pass runs in ONNX Runtime: word splitting,
sub-word encoding, batching, per-line errors and decoding are the same code, so the output fields are the same.
No Prefect, no registry import here; onnx/onnxscript are needed only to export, onnxruntime to run.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.lexicon import Lexicon, model_lexicon
from trajet.model_dir import WEIGHTS_FILE, ModelDir
from trajet.predictor import Predictor, check_model_dir, max_length_of
from trajet.subwords import PlainTokenizer, load_tokenizer, plain_tokenizer_agrees, tokenizer_sha256

INSTALL_HINT = "the onnx backend needs: pip install 'trajet[onnx]'"
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
META_FILE = "trajet_onnx.json"
# Bump when the export recipe changes: caches written by an older recipe are then exported again.
EXPORT_FORMAT = 2
# Exports record whether the plain `tokenizers` encoding matches transformers' for this model (trajet_onnx.json):
PLAIN_TOKENIZER_KEYS = ("tokenizer_sha256", "plain_tokenizer")
PRECISIONS = ("int8", "fp32")

_exports = 0  # exports done by this process (tests check that a cached export is reused)


def export_count() -> int:
    return _exports


def require(*modules: str) -> None:
    """Import check with the one-line install hint instead of a traceback."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise TrajetError(INSTALL_HINT) from None


# ------------------------------------------------------------------------------------------- cache


def weights_sha256(model_dir: Path) -> str:
    """sha256 of model.safetensors (the value the registry manifest records); sharded weights hash together."""
    model_dir = Path(model_dir)
    single = model_dir / WEIGHTS_FILE
    files = [single] if single.is_file() else sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise TrajetError(f"{model_dir}: no *.safetensors weights to export")
    h = hashlib.sha256()
    for path in files:
        if len(files) > 1:
            h.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while chunk := fh.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()


def default_cache_root() -> Path:
    return trajet_config.home() / "cache" / "onnx"


@dataclass(frozen=True)
class OnnxFiles:
    folder: Path
    fp32: Path
    int8: Path
    meta: dict[str, Any]
    exported: bool  # True when this call exported them, False when a cached export was reused

    def path(self, precision: str) -> Path:
        if precision not in PRECISIONS:
            raise TrajetError(f"unknown ONNX precision {precision!r}: choose {' or '.join(PRECISIONS)}")
        return self.int8 if precision == "int8" else self.fp32


def _cached(folder: Path, sha: str) -> OnnxFiles | None:
    try:
        meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("weights_sha256") != sha or meta.get("format") != EXPORT_FORMAT:
        return None
    fp32, int8 = folder / FP32_FILE, folder / INT8_FILE
    if not (fp32.is_file() and int8.is_file()):
        return None
    return OnnxFiles(folder, fp32, int8, meta, exported=False)


def _writable_parent(folder: Path) -> bool:
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder.parent, os.W_OK)


def ensure_onnx(model_dir: Path, *, cache_root: Path | None = None) -> OnnxFiles:
    """The fp32 and int8 ONNX files of this model: reused when cached for the same weights, else exported.

    Exports go to a temporary sibling folder renamed into place, so a crash leaves no half-written cache and two
    processes exporting the same model at once both end up with a complete folder.
    """
    model_dir = check_model_dir(model_dir)
    sha = weights_sha256(model_dir)
    beside = model_dir / "onnx"
    keyed = (cache_root or default_cache_root()) / sha
    for folder in (beside, keyed):
        found = _cached(folder, sha)
        if found is not None:
            return found
    target = keyed if _writable_parent(keyed) else beside
    if not _writable_parent(target):
        raise TrajetError(f"cannot write the ONNX export of {model_dir}: neither {keyed.parent} nor {model_dir} is writable")
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.partial")
    try:
        meta = _export_in_child(model_dir, tmp, sha=sha)
        raced = install_dir(tmp, target, lambda: _cached(target, sha))
        if raced is not None:
            return raced
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return OnnxFiles(target, target / FP32_FILE, target / INT8_FILE, meta, exported=True)


# ------------------------------------------------------------------------------------------ export


def _export_in_child(model_dir: Path, out_dir: Path, *, sha: str) -> dict[str, Any]:
    """`export_model` in a child Python process.

    Exporting holds the torch model, the exporter's graphs and both ONNX files at once: a camembert-base-sized
    export peaked at 3 GiB inside `trajet serve`, memory the process kept. In a child, all of it is returned
    when the child exits; the service only ever holds its ONNX Runtime session.
    """
    global _exports
    import subprocess
    import sys

    require("onnxruntime", "onnx", "onnxscript")  # the one-line hint, before starting anything
    package_root = str(Path(__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    code = (
        "import sys; from pathlib import Path; from trajet.onnx_runtime import export_model; "
        "export_model(Path(sys.argv[1]), Path(sys.argv[2]), sha=sys.argv[3])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(model_dir), str(out_dir), sha],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit status {done.returncode}"
        raise TrajetError(f"ONNX export of {model_dir} failed: {reason.removeprefix('trajet.errors.TrajetError: ')}")
    try:
        meta = json.loads((Path(out_dir) / META_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrajetError(f"ONNX export of {model_dir} wrote no usable {META_FILE}: {exc}") from None
    _exports += 1
    return meta


def export_model(model_dir: Path, out_dir: Path, *, sha: str | None = None) -> dict[str, Any]:
    """Write `model.onnx` (fp32), `model.int8.onnx` (dynamic int8) and `trajet_onnx.json` into `out_dir`."""
    global _exports
    require("onnxruntime", "onnx", "onnxscript")
    import warnings

    import onnxruntime
    import torch
    from onnxruntime.quantization import QuantType, quant_pre_process, quantize_dynamic
    from transformers import AutoModelForTokenClassification
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    model_dir = Path(model_dir)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    try:
        model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise TrajetError(f"cannot load model from {model_dir}: {exc}") from None
    model.eval()

    class _Logits(torch.nn.Module):
        """The graph's one output is the logits tensor (no ModelOutput container)."""

        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    cfg = model.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 1
    # Two rows of different lengths (padding, a 0 in the mask) so nothing specialises on a full mask or on 1.
    max_seq = max(2, int(getattr(cfg, "max_position_embeddings", 514)) - (pad + 1))
    ids = torch.full((2, 8), pad, dtype=torch.long)
    ids[0, :] = torch.arange(8) % max(cfg.vocab_size - 5, 1) + 5
    ids[1, :5] = torch.arange(5) + 5
    mask = (ids != pad).long()
    dim = torch.export.Dim
    batch, seq = dim("batch", min=1, max=4096), dim("sequence", min=1, max=max_seq)
    dynamic = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    args: tuple[Any, ...] = (ids, mask)
    names = ["input_ids", "attention_mask"]
    if getattr(cfg, "trajet_features", None):  # gazetteer features (trajet.lexicon) arrive as token types
        types = torch.zeros_like(ids)
        types[0, 2:4] = torch.tensor([1, 2])
        args += (types,)
        names.append("token_type_ids")
        dynamic["token_type_ids"] = {0: batch, 1: seq}
    fp32, int8 = out_dir / FP32_FILE, out_dir / INT8_FILE
    prepared = out_dir / "model.prep.onnx"
    exporter_log = logging.getLogger("torch.onnx")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed" and the like: not actionable here
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # axis renaming and exporter chatter, not actionable either
            program = torch.onnx.export(
                _Logits(model), args, dynamo=True, input_names=names,
                output_names=["logits"], dynamic_shapes=dynamic, external_data=False, verbose=False,
            )
            program.save(str(fp32), external_data=False)
            exported_s = time.perf_counter() - started
            # Shape inference + graph clean-up first, as ONNX Runtime's quantization guide asks.
            quant_pre_process(str(fp32), str(prepared))
            # MatMuls only: the embedding lookups (Gather) stay fp32. Quantizing them too saved little (they
            # are lookups, not compute) and cost accuracy: challenge micro-F1 -0.0053 vs torch on the tiny
            # preset (MatMul only: +0.0023), word labels equal to fp32 0.976 vs 0.980 on a base-sized model.
            quantize_dynamic(str(prepared), str(int8), weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"])
    finally:
        exporter_log.setLevel(level)
    prepared.unlink(missing_ok=True)
    meta = {
        "format": EXPORT_FORMAT,
        "weights_sha256": sha or weights_sha256(model_dir),
        "source": str(model_dir.resolve()),
        "exporter": "torch.onnx.export(dynamo=True)",
        "opset": _opset(fp32),
        "quantization": "onnxruntime.quantization.quantize_dynamic(weight_type=QInt8, op_types=[MatMul])",
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "export_seconds": round(exported_s, 2),
        "total_seconds": round(time.perf_counter() - started, 2),
        "bytes": {FP32_FILE: fp32.stat().st_size, INT8_FILE: int8.stat().st_size},
        "tokenizer_sha256": tokenizer_sha256(model_dir),
        "plain_tokenizer": plain_tokenizer_agrees(model_dir),
    }
    (out_dir / META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    _exports += 1
    return meta


def _opset(path: Path) -> int | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)


def make_session(path: Path, *, num_threads: int = 0) -> Any:
    require("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if num_threads > 0:
        options.intra_op_num_threads = num_threads
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # a corrupt or foreign file: say which
        raise TrajetError(f"ONNX Runtime cannot load {path}: {exc}") from None


# --------------------------------------------------------------------------------------- tokenizer

def install_dir(tmp: Path, target: Path, valid: Any) -> Any:
    """Move a freshly written cache folder into place. A folder already there that `valid()` accepts was written
    by a concurrent process: it is kept and returned (tmp dropped); a stale or corrupt one is replaced."""
    if target.exists():
        raced = valid()
        if raced is not None:
            shutil.rmtree(tmp, ignore_errors=True)
            return raced
        shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return None


def _config_dict(model_dir: Path) -> dict[str, Any]:
    return ModelDir(model_dir, check=False).config


def _id2label(model_dir: Path, cfg: dict[str, Any]) -> dict[int, str]:
    try:
        return {int(k): str(v) for k, v in cfg["id2label"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise TrajetError(f"{model_dir}/config.json has no usable id2label: {exc}") from None


class OnnxPredictor(Predictor):
    """`Predictor` with the forward pass in ONNX Runtime: same preparation, batching, errors and output."""

    def __init__(self, session: Any, tokenizer: Any, *, max_length: int, batch_size: int = 32,
                 id2label: dict[int, str], files: OnnxFiles | None = None, precision: str = "int8",
                 lexicon: Lexicon | None = None) -> None:
        super().__init__(session, tokenizer, max_length=max_length, batch_size=batch_size, id2label=id2label,
                         lexicon=lexicon)
        self.session = session
        self.files = files
        self.precision = precision

    @classmethod
    def load(cls, model_dir: Path, *, batch_size: int = 32, num_threads: int = 0, precision: str = "int8",
             cache_root: Path | None = None) -> OnnxPredictor:
        require("onnxruntime")  # before anything slow: a missing extra is one clear line
        model_dir = check_model_dir(model_dir)
        files = ensure_onnx(model_dir, cache_root=cache_root)
        session = make_session(files.path(precision), num_threads=num_threads)
        tokenizer = PlainTokenizer(model_dir) if _plain_tokenizer_ok(files, model_dir) else load_tokenizer(model_dir)
        cfg = _config_dict(model_dir)
        return cls(session, tokenizer, max_length=max_length_of(model_dir, tokenizer), batch_size=batch_size,
                   id2label=_id2label(model_dir, cfg), files=files, precision=precision,
                   lexicon=model_lexicon(model_dir, cfg.get("trajet_features")))

    def _encode_batch(self, batch: Sequence[Any]) -> dict[str, Any]:
        """The predictor's inputs as numpy arrays: ONNX Runtime needs no torch."""
        return self._numpy_inputs(batch)

    def _logits(self, inputs: Mapping[str, Any]) -> Any:
        """(batch, length, labels) logits as a float32 numpy array."""
        return self.session.run(["logits"], {name: _as_numpy(t) for name, t in inputs.items()})[0]

    def _log_probs(self, batch: Sequence[Any]) -> Any:
        import numpy as np

        logits = np.asarray(self._logits(self._encode_batch(batch)), dtype=np.float64)
        shifted = logits - logits.max(axis=-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _as_numpy(tensor: Any) -> Any:
    return tensor.numpy() if hasattr(tensor, "numpy") else tensor


def _plain_tokenizer_ok(files: OnnxFiles, model_dir: Path) -> bool:
    """Whether the export found the plain tokenizer equal to transformers' for these tokenizer files. An export
    made before that check ran (or for other tokenizer files with the same weights) is checked once here, with
    transformers, and the answer saved beside the export when the folder is writable."""
    sha = tokenizer_sha256(model_dir)
    if files.meta.get("tokenizer_sha256") == sha and isinstance(files.meta.get("plain_tokenizer"), bool):
        return bool(files.meta["plain_tokenizer"])
    agrees = plain_tokenizer_agrees(model_dir)
    meta = {**files.meta, "tokenizer_sha256": sha, "plain_tokenizer": agrees}
    tmp = files.folder / f".{META_FILE}.{uuid.uuid4().hex[:8]}"
    try:
        tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, files.folder / META_FILE)
    except OSError:
        tmp.unlink(missing_ok=True)
    return agrees
