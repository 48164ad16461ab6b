"""Fine-tuning a token classifier on phrases with the HF Trainer, into a self-contained model directory.

The other stages of a run live beside it: what to train with (trajet.train_config), on which phrases
(trajet.train_data), from which base (trajet.base), how words become labelled sub-tokens (trajet.encoding), how
validation is scored (trajet.metrics) and what the Trainer reports (trajet.train_callbacks). Heavy libraries
(torch, transformers) are imported inside functions: importing this module stays cheap.

Every rank of a distributed run (trajet.distributed) runs the same function: the Trainer shards the batches,
validation is gathered so every rank scores it alike, and rank 0 alone writes the model and the progress lines.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trajet.base import resolve_base
from trajet.encoding import encode_phrases
from trajet.errors import TrajetError
from trajet.labels import ID2LABEL, LABEL2ID, LABELS
from trajet.metrics import compute_token_metrics
from trajet.model_dir import write_model_dir
from trajet.train_callbacks import averaging_callback, failure_hook, progress_callback, try_average
from trajet.train_config import TrainingConfig, cuda_available
from trajet.train_data import PhraseSource, Texts, row_recorder, weighted


@dataclass
class TrainResult:
    output_dir: Path
    best_metrics: dict[str, Any]
    steps: int
    seconds: float
    history: list[dict[str, Any]] = field(default_factory=list)


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


def check_inputs(train: PhraseSource, validation: PhraseSource, config: TrainingConfig) -> None:
    """Refused before any work: before the base is built, or before torchrun starts N processes."""
    if not train or not validation:
        raise TrajetError("training needs at least one training and one validation phrase")
    if config.gazetteer and config.gazetteer_spelling and not config.gazetteer_fuzzy:
        raise TrajetError("gazetteer_spelling=true needs gazetteer_fuzzy=true")
    if config.human_weight < 1:
        raise TrajetError(f"human_weight must be at least 1, got {config.human_weight}")


def _load_base(config: TrainingConfig, corpus: Iterable[str], base: Path | str | None) -> tuple[Path | str, Any, Any]:
    """(resolved base, tokenizer, token classifier with Trajet's labels and a fresh head). `base`: already
    resolved by a distributed run's parent, so the ranks neither rebuild nor re-download it."""
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    if base is None:
        base = resolve_base(config.base_model, corpus=corpus, spec=config.base_spec)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        model = AutoModelForTokenClassification.from_pretrained(
            str(base), num_labels=len(LABELS), id2label=dict(ID2LABEL), label2id=dict(LABEL2ID)
        )
    except OSError as exc:
        raise TrajetError(f"cannot load base model {config.base_model!r}: {exc}") from None
    return base, tokenizer, model


def _attach_lexicon(model: Any, config: TrainingConfig, train: PhraseSource) -> Any:
    """The gazetteer lexicon the model reads as token types (None without gazetteer features)."""
    if not config.gazetteer:
        if getattr(model.config, "trajet_features", None) is not None:
            # Warm start from a model that had features, trained without: the result must not claim them.
            del model.config.trajet_features
        return None
    from trajet import lexicon as lex

    lexicon = lex.Lexicon.from_gazetteer(fuzzy=config.gazetteer_fuzzy)
    if lexicon.fuzzy:
        lexicon = lexicon.with_known_words(
            ([(t.text, tag) for t, tag in zip(*p.tokens_and_tags(), strict=True)] for p in train),
            spelling=config.gazetteer_spelling,
        )
    enable_type_features(model, lexicon.n_types)
    model.config.trajet_features = lexicon.feature
    return lexicon


def _train_dataset(train: PhraseSource, tokenizer: Any, lexicon: Any, config: TrainingConfig,
                   cache_path: Path | None = None) -> Any:
    """`cache_path`: keep the tokenized sentences in a memory-mapped file there (`trajet.token_cache`), not in
    lists: what a streamed training set (a snapshot split) gets, so memory does not grow with its size."""
    if config.augment <= 0:
        if cache_path is None:
            return encode_phrases(train, tokenizer, config.max_length, lexicon)
        from trajet.encoding import encode_words, phrase_words
        from trajet.token_cache import TokenCache

        def rows() -> Any:
            for phrase in train:
                words, tags, features = phrase_words(phrase, lexicon)
                yield words, tags, features, encode_words(words, tags, tokenizer, config.max_length, features)

        return TokenCache(cache_path, rows()).plain
    from trajet.augment import AugmentedPhrases, GroupedEpochs

    # Drawn, then grouped by the drawn length and served in that order (sequential sampler below).
    return GroupedEpochs(AugmentedPhrases(
        train, tokenizer, config.max_length, prob=config.augment, seed=config.seed,
        word_prob=config.augment_word_prob, lexicon=lexicon, hint_dropout=config.gazetteer_dropout,
        place_prob=config.augment_place_prob, typo_prob=config.augment_typo_prob,
        untagged_places=config.augment_untagged_places, compose_prob=config.augment_compose, cache_path=cache_path,
    ), config.batch_size, config.seed)


def _validation_dataset(
    validation: PhraseSource, tokenizer: Any, lexicon: Any, config: TrainingConfig, cache_path: Path | None = None
) -> tuple[Sequence[dict[str, list[int]]], Sequence[Sequence[bool]]]:
    """Encoded validation rows sorted by length, with each row's closed-class word flags (for decoding).

    Sorted: evaluation batches are padded to their longest sentence, and the metrics do not depend on the order.
    With `cache_path` (a streamed set) the rows live in a memory-mapped file and only their order is in memory."""
    from trajet.decode import closed_words

    if cache_path is None:
        val_pairs = sorted(
            zip(encode_phrases(validation, tokenizer, config.max_length, lexicon),
                [closed_words([t.text for t in p.tokens_and_tags()[0]]) for p in validation], strict=True),
            key=lambda pair: len(pair[0]["input_ids"]),
        )
        return [enc for enc, _ in val_pairs], [closed for _, closed in val_pairs]
    from trajet.encoding import encode_words, phrase_words
    from trajet.token_cache import Ordered, TokenCache

    lengths: list[int] = []

    def rows() -> Any:
        for phrase in validation:
            words, tags, features = phrase_words(phrase, lexicon)
            encoding = encode_words(words, tags, tokenizer, config.max_length, features)
            lengths.append(len(encoding["input_ids"]))
            yield words, tags, None, encoding, closed_words([t.text for t in phrase.tokens_and_tags()[0]])

    cache = TokenCache(cache_path, rows())
    order = sorted(range(len(lengths)), key=lengths.__getitem__)  # stable: the order the lists path gives
    return Ordered(cache.plain, order), Ordered(cache.closed, order)


def training_arguments(config: TrainingConfig, checkpoints: Path, ddp_backend: str | None = None) -> Any:
    """The Trainer's arguments: the config fields it takes as they are (`TrainingConfig.trainer_arguments`),
    those derived from the config, and Trajet's fixed choices (checkpoints by steps, best one reloaded). Under
    torchrun: DDP on `ddp_backend`, and each host keeps its own checkpoints for its ranks to reload the best."""
    from transformers import TrainingArguments

    precision = config.resolved_precision()
    workers = config.dataloader_workers > 0
    several_hosts = int(os.environ.get("WORLD_SIZE") or 1) > int(os.environ.get("LOCAL_WORLD_SIZE") or 1)
    return TrainingArguments(
        **config.trainer_arguments(),
        output_dir=str(checkpoints),
        eval_strategy="steps",
        save_strategy="steps",
        save_total_limit=2,
        save_only_model=True,
        load_best_model_at_end=True,
        greater_is_better=config.metric_for_best_model != "loss",
        train_sampling_strategy="sequential" if config.augment > 0 else "group_by_length",
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=not cuda_available(),
        logging_strategy="steps",
        logging_steps=max(config.eval_steps, 10),
        report_to="none",
        disable_tqdm=True,
        dataloader_persistent_workers=workers,
        # A worker draws a whole group of batches at once (GroupedEpochs): queue enough batches ahead that the
        # training loop never waits for one.
        dataloader_prefetch_factor=16 if workers else None,
        ddp_backend=ddp_backend,
        # Every parameter of a Trajet token classifier is used in every step: no graph walk for unused ones.
        ddp_find_unused_parameters=False,
        save_on_each_node=several_hosts,
        # Ranks must shuffle alike (disjoint shards): the length-grouping sampler's global RNG drifts apart with
        # dropout, so accelerate gives it a generator synced from rank 0 each epoch (only when it shards).
        accelerator_config={"use_seedable_sampler": False},
    )


def train_model(
    train: PhraseSource,
    validation: PhraseSource,
    config: TrainingConfig,
    output_dir: Path,
    *,
    snapshot_hash: str | None = None,
    progress: bool = True,
    log_line: Callable[[str], None] | None = None,
    base: Path | str | None = None,
    ddp_backend: str | None = None,
) -> TrainResult:
    """Fine-tune `config.base_model` and write a self-contained, safetensors-only model directory.
    `log_line` receives one readable line per validation (step, F1, loss). Under torchrun, every rank returns
    the same metrics and rank 0 alone writes `output_dir`."""
    check_inputs(train, validation, config)
    import torch
    from transformers import set_seed
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    if config.num_threads > 0:
        torch.set_num_threads(config.num_threads)
    set_seed(config.seed)
    started = time.perf_counter()
    output_dir = Path(output_dir)
    corpus = Texts(train, validation)
    train = weighted(train, config.human_weight)
    base, tokenizer, model = _load_base(config, corpus, base)
    lexicon = _attach_lexicon(model, config, train)
    tokens = output_dir.parent / f".{output_dir.name}.tokens"  # a streamed set's tokenized cache, one per rank
    cache_path = None if isinstance(train, list) else tokens / f"train-rank{os.environ.get('RANK', '0')}.arrow"
    try:
        return _fit(train, validation, config, output_dir, model, tokenizer, lexicon, base, started,
                    snapshot_hash=snapshot_hash, progress=progress, log_line=log_line, ddp_backend=ddp_backend,
                    cache_path=cache_path)
    finally:
        if cache_path is not None:
            cache_path.unlink(missing_ok=True)
            cache_path.with_suffix(".val.arrow").unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                tokens.rmdir()  # the last rank out removes the folder


def _fit(train: PhraseSource, validation: PhraseSource, config: TrainingConfig, output_dir: Path, model: Any,
         tokenizer: Any, lexicon: Any, base: Path | str, started: float, *, snapshot_hash: str | None,
         progress: bool, log_line: Callable[[str], None] | None, ddp_backend: str | None,
         cache_path: Path | None) -> TrainResult:
    import torch
    from transformers import (
        DataCollatorForTokenClassification,
        EarlyStoppingCallback,
        PrinterCallback,
        ProgressCallback,
        Trainer,
    )

    train_ds = row_recorder(_train_dataset(train, tokenizer, lexicon, config, cache_path))
    val_ds, val_closed = _validation_dataset(validation, tokenizer, lexicon, config,
                                             None if cache_path is None else cache_path.with_suffix(".val.arrow"))
    checkpoints = output_dir.parent / f".{output_dir.name}.checkpoints"
    args = training_arguments(config, checkpoints, ddp_backend)
    writes = args.process_index == 0  # the one process that writes the model, its record and the progress
    if args.should_save:  # the process that writes this host's checkpoints
        shutil.rmtree(checkpoints, ignore_errors=True)

    def metrics_fn(eval_pred: Any) -> dict[str, float]:
        if len(eval_pred.label_ids) != len(val_closed):  # ranks' predictions gathered short or padded
            raise RuntimeError(f"validation scored {len(eval_pred.label_ids)} rows, expected {len(val_closed)}")
        return compute_token_metrics(eval_pred.predictions, eval_pred.label_ids, val_closed)

    def log_probs(logits: Any, labels: Any) -> Any:
        return torch.log_softmax(logits.float(), dim=-1)

    averager = averaging_callback(config.average_last) if config.average_last >= 2 else None

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
            progress_callback(progress and writes, log_line if writes else None),
            *([averager] if averager is not None else []),
            *failure_hook(args.process_index),
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
        best, averaging = try_average(trainer, averager, best, config.metric_for_best_model)
    best_metrics = {k.removeprefix("eval_"): v for k, v in best.items() if isinstance(v, int | float)}
    steps = trainer.state.global_step
    seconds = time.perf_counter() - started
    if args.should_save:
        shutil.rmtree(checkpoints, ignore_errors=True)  # every rank has reloaded the best one (evaluate synced)
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
        "processes": args.world_size,
    }
    if writes:
        write_model_dir(output_dir, trainer.model, tokenizer, lexicon, info)
    return TrainResult(output_dir=output_dir, best_metrics=best_metrics, steps=steps, seconds=seconds, history=info["history"])


def _transformers_version() -> str:
    import transformers

    return transformers.__version__
