"""A trained model's directory: its file names, what it holds, and the checks every loader and publisher makes.

Why one module: the directory is the unit that training writes, the registry pushes and pulls, and every
predictor loads. Its file names and its rules (safetensors only, never a pickle) used to be spelled in each
of those places; here they are spelled once, and `ModelDir` reads each file once.

Layout (Hugging Face's, plus Trajet's own files)::

    config.json, model.safetensors, tokenizer.json, tokenizer_config.json ...   written by save_pretrained
    trajet_training.json    training config, metrics, history (TRAINING_FILE)
    README.md               the model card (MODEL_CARD_FILE)
    trajet_lexicon.txt ...  the gazetteer the model was trained with (trajet.lexicon's file names)
    manifest.json           only in a pulled copy: the registry manifest it was verified against
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajet.errors import TrajetError
from trajet.manifest import MANIFEST_FILE, PICKLE_SUFFIXES, WEIGHTS_SUFFIX, Manifest

if TYPE_CHECKING:  # pragma: no cover - typing only
    from trajet.lexicon import Lexicon

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TOKENIZER_FILE = "tokenizer.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILES = (TOKENIZER_FILE, TOKENIZER_CONFIG_FILE, "special_tokens_map.json")
TRAINING_FILE = "trajet_training.json"
MODEL_CARD_FILE = "README.md"
log = logging.getLogger(__name__)


def is_pickle(name: str) -> bool:
    return name.lower().endswith(PICKLE_SUFFIXES)


def has_weights(model_dir: Path) -> bool:
    return any(Path(model_dir).glob(f"*{WEIGHTS_SUFFIX}"))


def assert_safetensors_only(model_dir: Path) -> None:
    """For a directory about to be published: pickled weights execute code on load, so none may be in it."""
    model_dir = Path(model_dir)
    bad = [p.name for p in model_dir.rglob("*") if is_pickle(p.name)]
    if bad:
        raise TrajetError(f"{model_dir} holds pickled weight files: {', '.join(sorted(bad))}")
    if not has_weights(model_dir):
        raise TrajetError(f"{model_dir} holds no .safetensors weights")


def check_safetensors(model_dir: Path) -> None:
    """For a directory about to be loaded: refuse pickle-only weights, and say so when a pickle lies next to
    safetensors.

    Why: loading a pickle can run arbitrary code, and a pickle that is not a plain state dict makes
    transformers raise deep inside torch. Trajet loads safetensors only; a pickle beside them is ignored,
    but a person looking at the folder should know which file was used."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return
    pickles = sorted(p.name for p in model_dir.iterdir() if p.is_file() and is_pickle(p.name))
    if not pickles:
        return
    if not has_weights(model_dir):
        raise TrajetError(
            f"{model_dir}: only pickle-format weights ({', '.join(pickles)}); Trajet loads safetensors only: "
            "re-save the model with save_pretrained(..., safe_serialization=True)"
        )
    log.warning("%s: ignoring %s (pickle format); loading the safetensors weights", model_dir, ", ".join(pickles))


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise TrajetError(f"{path} is not readable JSON: {exc}") from None


class ModelDir:
    """One model directory, each of its files read at most once (the properties are cached).

    Construction only checks that the folder is a model directory (it has a config.json and loadable
    weights); nothing heavy is imported until a property needs it."""

    def __init__(self, path: Path | str, *, check: bool = True) -> None:
        self.path = Path(path)
        if check:
            if not (self.path / CONFIG_FILE).is_file():
                raise TrajetError(f"{self.path} is not a model directory (no {CONFIG_FILE})")
            check_safetensors(self.path)

    def __repr__(self) -> str:
        return f"ModelDir({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    @functools.cached_property
    def config(self) -> dict[str, Any]:
        """config.json as a dict (the transformers config, plus Trajet's `trajet_features`)."""
        cfg = _read_json(self.path / CONFIG_FILE)
        if not isinstance(cfg, dict):
            raise TrajetError(f"{self.path / CONFIG_FILE} is not a JSON object")
        return cfg

    @property
    def features(self) -> str | None:
        """The gazetteer features the model reads (None: words only)."""
        return self.config.get("trajet_features")

    @functools.cached_property
    def tokenizer_config(self) -> dict[str, Any]:
        cfg = _read_json(self.path / TOKENIZER_CONFIG_FILE)
        return cfg if isinstance(cfg, dict) else {}

    @functools.cached_property
    def training_info(self) -> dict[str, Any]:
        """What training wrote beside the weights; {} for a model trained elsewhere."""
        path = self.path / TRAINING_FILE
        if not path.is_file():
            return {}
        info = _read_json(path)
        if not isinstance(info, dict):
            raise TrajetError(f"{path} is not a JSON object")
        return info

    @property
    def has_training_info(self) -> bool:
        return (self.path / TRAINING_FILE).is_file()

    @functools.cached_property
    def lexicon(self) -> Lexicon | None:
        """The gazetteer saved with the model, when its config asks for gazetteer features."""
        from trajet.lexicon import model_lexicon

        return model_lexicon(self.path, self.features)

    @functools.cached_property
    def manifest_bytes(self) -> bytes | None:
        """The registry manifest a pulled copy was verified against, as stored (its sha256 is the pointer's)."""
        try:
            return (self.path / MANIFEST_FILE).read_bytes()
        except FileNotFoundError:
            return None

    @functools.cached_property
    def manifest(self) -> Manifest | None:
        raw = self.manifest_bytes
        if raw is None:
            return None
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise TrajetError(f"{self.path / MANIFEST_FILE} is not readable JSON: {exc}") from None
        return Manifest.from_dict(obj, str(self.path / MANIFEST_FILE))

    def drop_manifest(self) -> Manifest | None:
        """Reads the pulled manifest, then removes the file, so the folder can be pushed as a new version."""
        manifest = self.manifest
        (self.path / MANIFEST_FILE).unlink(missing_ok=True)
        return manifest

    def metrics(self) -> Mapping[str, Any] | None:
        """The evaluation stored in the registry manifest, else the validation metrics training wrote."""
        manifest = self.manifest
        if manifest is not None and manifest.evaluation() is not None:
            return manifest.evaluation()
        try:
            return self.training_info.get("metrics")
        except TrajetError:
            return None

    def write_training_info(self, info: Mapping[str, Any]) -> None:
        """trajet_training.json and the model card made from it."""
        (self.path / TRAINING_FILE).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        (self.path / MODEL_CARD_FILE).write_text(model_card(info), encoding="utf-8")
        self.__dict__.pop("training_info", None)


def write_model_dir(output_dir: Path, model: Any, tokenizer: Any, lexicon: Lexicon | None,
                    info: Mapping[str, Any]) -> None:
    """A trained model's directory, written beside, checked, then renamed into place: a run killed while writing
    leaves no half model where a model is expected (a model already there stays until the new one is whole)."""
    output_dir = Path(output_dir)
    partial = output_dir.with_name(f".{output_dir.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(str(partial))
    tokenizer.save_pretrained(str(partial))
    if lexicon is not None:
        lexicon.save(partial)
    ModelDir(partial, check=False).write_training_info(info)
    assert_safetensors_only(partial)
    if output_dir.exists():
        shutil.rmtree(output_dir)
    partial.rename(output_dir)


def read_training_info(model_dir: Path) -> dict[str, Any]:
    return ModelDir(model_dir, check=False).training_info


def model_card(info: Mapping[str, Any]) -> str:
    """A Hugging Face model card: YAML metadata (language, pipeline, metrics) then a short human summary."""
    cfg = info["config"]
    m = info["metrics"]
    base = cfg["base_model"]
    # Only a hub id ("org/name") names a base others can find; built-in ("trajet:mini"), s3:// and local bases don't.
    hub_base = None if ":" in base or base.startswith(("/", ".")) else base
    front = [
        "---",
        "language: fr",
        "library_name: transformers",
        "pipeline_tag: token-classification",
        "tags: [token-classification, ner, travel, trajet]",
    ]
    if hub_base:
        front.append(f"base_model: {hub_base}")
    front += [
        "model-index:",
        "- name: trajet-ner",
        "  results:",
        "  - task: {type: token-classification, name: Travel NER}",
        "    dataset: {type: trajet-phrases, name: validation split of the training snapshot}",
        "    metrics:",
        f"    - {{type: f1, name: macro F1 (DEPART, ARRIVEE, VIA), value: {m.get('f1_macro', 0):.4f}}}",
        f"    - {{type: f1, name: micro F1, value: {m.get('f1_micro', 0):.4f}}}",
        "---",
        "",
    ]
    body = f"""# Trajet travel NER

Tags French travel requests with `O, B-DEPART, I-DEPART, B-ARRIVEE, I-ARRIVEE, B-VIA, I-VIA`
(departure, arrival, stops). Words come from `trajet.phrases.tokenize`; the label of a word is read on its
first sub-token, so use `trajet predict` or `trajet.predict.Predictor` (which split words the same way)
rather than the generic pipeline.

| | |
| --- | --- |
| base | `{base}` |
| preset | `{cfg.get("preset")}` |
| training phrases | {info["n_train"]} (validation {info["n_validation"]}) |
| dataset snapshot | `{info.get("snapshot_hash")}` |
| steps | {info["steps"]} ({info["seconds"]} s) |
| validation macro F1 | {m.get("f1_macro", 0):.4f} |
| validation micro F1 | {m.get("f1_micro", 0):.4f} |
| validation F1 DEPART / ARRIVEE / VIA | {m.get("f1_DEPART", 0):.4f} / {m.get("f1_ARRIVEE", 0):.4f} / {m.get("f1_VIA", 0):.4f} |

Inputs: {_inputs_line(cfg)}.

Hyperparameters: learning rate {cfg["learning_rate"]}, batch {cfg["batch_size"]}, max length {cfg["max_length"]},
epochs {cfg["num_epochs"]}, warmup {cfg["warmup_ratio"]}, weight decay {cfg["weight_decay"]}, early stopping
patience {cfg["early_stopping_patience"]} evaluations, best checkpoint by `{cfg["metric_for_best_model"]}`.
The full configuration is in `{TRAINING_FILE}`.

Limits: trained on generated French sentences; places it never saw in a similar context may be missed.
Metrics above are on the validation split; the registry manifest holds test and challenge-set results.
"""
    return "\n".join(front) + body


def _inputs_line(cfg: Mapping[str, Any]) -> str:
    from trajet.lexicon import KNOWN_WORDS_FILE, LEXICON_FILE, VOCABULARY_FILE

    if not cfg.get("gazetteer"):
        return "word tokens only"
    line = ("word tokens plus gazetteer match features (token types 0/1/2: no match, first word, inside a known "
            f"place) from `{LEXICON_FILE}`, saved with the model")
    if cfg.get("gazetteer_fuzzy"):
        line += ("; types 3/4 mark a span one keyboard slip from a known place (context words of "
                 f"`{KNOWN_WORDS_FILE}` excepted)")
    if cfg.get("gazetteer_spelling"):
        line += (f"; type 5 marks a rare word one slip from a frequent context word of `{VOCABULARY_FILE}`, "
                 "which the model reads in its place")
    return line
