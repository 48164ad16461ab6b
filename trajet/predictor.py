"""The predictor: a loaded token classifier that tags batches of texts; words split exactly as in training.

A word's tag is read on its first sub-token (where training put the label, trajet.encoding); the sequence is
the best one that keeps the trip's rules (trajet.decode), and each entity carries the mean probability of its
words' tags as `score`. Other backends (trajet.onnx_runtime, trajet.torchscript) subclass `Predictor` and
replace the step that computes log-probabilities; `trajet.predict.load_predictor` picks one.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trajet import decode
from trajet.encoding import first_subtokens
from trajet.errors import TrajetError
from trajet.labels import LABEL2ID, LABELS
from trajet.lexicon import Lexicon, model_lexicon, token_types
from trajet.phrases import Entity, Token, bio_to_spans, default_splitter, tokenize, trip_fields
from trajet.subwords import load_tokenizer

_ONLY_O = [0.0 if label == "O" else -math.inf for label in LABELS]  # a word that can only be O
_O_ID = LABELS.index("O")
MAX_CHARS = 2000  # longer than any travel request; refusing early keeps a pathological line cheap


@dataclass
class _Prepared:
    index: int
    tokens: list[Token]
    input_ids: list[int]
    word_ids: list[int | None]
    type_ids: list[int] | None = None


# A readable text as `_run` yields it: index, words, decoded tags, their probabilities, log-probability rows.
_Read = tuple[int, list[Token], list[str], list[float], list[list[float]]]


@dataclass(frozen=True)
class WordTags:
    """One text as the predictor read it: words, decoded BIO tags, each tag's probability (softmax of its word),
    and each word's probability of every label in `trajet.labels.LABELS` order (`label_probs[w][k]`), so a
    caller can ask how likely a tag the decoder did not choose is (trajet.audit: the annotated one)."""

    tokens: list[Token]
    tags: list[str]
    probs: list[float]
    label_probs: list[list[float]]

    def prob_of(self, word: int, tag: str) -> float:
        """The model's probability of `tag` on word `word` (its first sub-token's softmax)."""
        return self.label_probs[word][LABEL2ID[tag]]


class Predictor:
    """A loaded token classifier plus its tokenizer; `load` once, then `predict` many batches."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        max_length: int,
        batch_size: int = 32,
        id2label: Mapping[int | str, str] | None = None,
        lexicon: Lexicon | None = None,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.lexicon = lexicon
        self.max_length = max_length
        self.batch_size = batch_size
        labels = id2label if id2label is not None else model.config.id2label
        self.id2label = {int(k): v for k, v in labels.items()}
        # The decoder works in trajet.labels order; a model may number its labels otherwise.
        missing = sorted(set(LABELS) - set(self.id2label.values()))
        if missing or len(self.id2label) != len(LABELS):
            raise TrajetError(f"the model's labels {sorted(self.id2label.values())} are not Trajet's {list(LABELS)}")
        by_label = {label: i for i, label in self.id2label.items()}
        self._columns = None if all(by_label[label] == k for k, label in enumerate(LABELS)) else [
            by_label[label] for label in LABELS]
        self._traced: Any = None  # set by `load` (trace_model): same logits, a third of the eager time per call
        default_splitter()  # the word splitter's gazetteer at load, not on the first request a service answers

    @classmethod
    def load(cls, model_dir: Path, *, batch_size: int = 32, num_threads: int = 0, trace: bool = True) -> Predictor:
        import torch
        from transformers import AutoModelForTokenClassification

        model_dir = check_model_dir(model_dir)
        if num_threads > 0:
            torch.set_num_threads(num_threads)
        tokenizer = load_tokenizer(model_dir)
        try:
            model = AutoModelForTokenClassification.from_pretrained(str(model_dir))
        except (OSError, ValueError) as exc:
            raise TrajetError(f"cannot load model from {model_dir}: {exc}") from None
        model.eval()
        # Batches are encoded by the `tokenizers` library alone (sub-word ids kept per word) when it answers
        # exactly as the transformers tokenizer on the probe sentences, as the ONNX and saved-trace predictors do:
        # transformers' batch encoding was a tenth of batched inference.
        from trajet.subwords import PlainTokenizer, plain_tokenizer_agrees

        try:
            plain = PlainTokenizer(model_dir)
        except TrajetError:
            plain = None
        if plain is not None and plain_tokenizer_agrees(model_dir, plain=plain, hf=tokenizer):
            tokenizer = plain
        predictor = cls(model, tokenizer, max_length=max_length_of(model_dir, tokenizer), batch_size=batch_size,
                        lexicon=model_lexicon(model_dir, getattr(model.config, "trajet_features", None)))
        if trace:
            predictor._traced = trace_model(model, with_types=predictor.lexicon is not None)
        return predictor

    # -------------------------------------------------------------------------------- core

    @staticmethod
    def _words_or_reason(text: Any) -> list[Token] | str:
        if not isinstance(text, str):
            return "text must be a string"
        if not text.strip():
            return "empty text"
        if len(text) > MAX_CHARS:
            return f"text too long: {len(text)} characters (max {MAX_CHARS})"
        tokens = tokenize(text)
        return tokens if tokens else "no words in text"

    def _prepare_many(self, items: Sequence[tuple[int, Any]]) -> list[_Prepared | str]:
        """Per (index, text): its encoded words, or the reason it cannot be read. One sub-word tokenizer call for
        all: the HF tokenizer's per-call overhead was a third of batched inference time, one text at a time."""
        out: list[_Prepared | str] = []
        readable: list[tuple[int, int, list[Token]]] = []  # (position in out, index, tokens)
        for index, text in items:
            found = self._words_or_reason(text)
            if isinstance(found, str):
                out.append(found)
            else:
                readable.append((len(out), index, found))
                out.append("")
        if not readable:
            return out
        words = [[t.text for t in tokens] for _, _, tokens in readable]
        features: list[list[int]] | None = None
        if self.lexicon is not None:
            read = [self.lexicon.read(ws) for ws in words]
            words, features = [w for w, _ in read], [f for _, f in read]
        enc = self.tokenizer(words, is_split_into_words=True, truncation=False)
        for row, (pos, index, tokens) in enumerate(readable):
            ids = list(enc["input_ids"][row])
            if len(ids) > self.max_length:
                out[pos] = f"text too long: {len(ids)} sub-word tokens (max {self.max_length})"
                continue
            word_ids = list(enc.word_ids(row))
            type_ids = None
            if features is not None:
                type_ids = token_types(features[row], word_ids)
            out[pos] = _Prepared(index, tokens, ids, word_ids, type_ids)
        return out

    def _numpy_inputs(self, batch: Sequence[_Prepared]) -> dict[str, Any]:
        """input_ids, attention_mask (and token_type_ids for a gazetteer-feature model) as int64 numpy arrays,
        padded to the longest text of the batch: what every backend feeds its model. Filled as arrays, since one
        small tensor per row cost a tenth of batched inference."""
        import numpy as np

        width = max(len(p.input_ids) for p in batch)
        pad = self.tokenizer.pad_token_id or 0
        ids = np.full((len(batch), width), pad, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64) if self.lexicon is not None else None
        for row, p in enumerate(batch):
            ids[row, : len(p.input_ids)] = p.input_ids
            mask[row, : len(p.input_ids)] = 1
            if types is not None and p.type_ids is not None:
                types[row, : len(p.type_ids)] = p.type_ids
        inputs = {"input_ids": ids, "attention_mask": mask}
        if types is not None:
            inputs["token_type_ids"] = types
        return inputs

    def _encode_batch(self, batch: Sequence[_Prepared]) -> dict[str, Any]:
        """The numpy inputs shared with torch (no copy)."""
        import torch

        return {name: torch.from_numpy(array) for name, array in self._numpy_inputs(batch).items()}

    def _logits(self, inputs: Mapping[str, Any]) -> Any:
        """(batch, length, labels) logits as a torch tensor: the one step a backend replaces."""
        if self._traced is not None:
            return self._traced(*(inputs[name] for name in _input_names(self.lexicon is not None)))
        return self.model(**inputs).logits

    def _log_probs(self, batch: Sequence[_Prepared]) -> Any:
        """(batch, length, labels) log-probabilities as a numpy array; a backend without torch replaces this step."""
        import torch

        inputs = self._encode_batch(batch)
        with torch.inference_mode():
            return torch.log_softmax(self._logits(inputs).float(), dim=-1).numpy()

    def _tag_batch(self, batch: Sequence[_Prepared]) -> list[tuple[list[str], list[float], list[list[float]]]]:
        """Per text: a tag and its probability per word, read on each word's first sub-token and decoded
        under the trip's rules (trajet.decode: well-formed spans, one departure, one arrival), and each word's
        log-probability row over LABELS (the decoder's input, handed on as it is: no extra cost for `predict`).

        The rows of every word's first sub-token are gathered and their best tags taken for the whole batch in
        numpy; only those rows become Python floats (the values the sub-token rows had as lists)."""
        import numpy as np

        log_probs = np.asarray(self._log_probs(batch))
        if self._columns is not None:
            log_probs = log_probs[..., self._columns]
        rows_at: list[int] = []
        cols_at: list[int] = []
        words_of: list[list[int]] = []
        for row, p in enumerate(batch):
            positions = first_subtokens(p.word_ids, len(p.tokens))
            words_of.append(positions)
            rows_at.extend([row] * len(positions))
            # A word the sub-word tokenizer folds to nothing has no position: it is read as O, as in training.
            cols_at.extend(pos if pos >= 0 else 0 for pos in positions)
        gathered = log_probs[rows_at, cols_at]
        word_rows_all = gathered.tolist()
        best_all = gathered.argmax(axis=-1).tolist() if len(rows_at) else []
        out = []
        k = 0
        for p, positions in zip(batch, words_of, strict=True):
            n = len(positions)
            word_rows = word_rows_all[k : k + n]
            best = best_all[k : k + n]
            k += n
            for w, pos in enumerate(positions):
                if pos < 0:
                    word_rows[w], best[w] = _ONLY_O, _O_ID
            ids = decode.decode(word_rows, decode.closed_words([t.text for t in p.tokens]), best=best)
            out.append(([LABELS[i] for i in ids], [math.exp(r[i]) for r, i in zip(word_rows, ids, strict=True)],
                        word_rows))
        return out

    def _run(self, texts: Sequence[str]) -> Iterator[_Read | tuple[int, str]]:
        prepared: list[_Prepared] = []
        for i, item in enumerate(self._prepare_many(list(enumerate(texts)))):
            if isinstance(item, str):
                yield i, item
            else:
                prepared.append(item)
        prepared.sort(key=lambda p: len(p.input_ids))  # similar lengths per batch: less padding
        for start in range(0, len(prepared), self.batch_size):
            batch = prepared[start : start + self.batch_size]
            for p, (tags, scores, rows) in zip(batch, self._tag_batch(batch), strict=True):
                yield p.index, p.tokens, tags, scores, rows

    # ----------------------------------------------------------------------------- public

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """Per text: entities with character offsets and scores, plus departure/arrival/via; or an error."""
        results: list[dict[str, Any]] = [{} for _ in texts]
        for item in self._run(texts):
            if len(item) == 2:
                results[item[0]] = {"error": item[1]}
                continue
            index, tokens, tags, scores, _ = item
            text = texts[index]
            entities = bio_to_spans(tokens, tags, strict=False)
            word_at = {t.start: k for k, t in enumerate(tokens)}
            ents_out = []
            for e in entities:
                first = word_at[e.start]
                last = first
                while tokens[last].end < e.end:
                    last += 1
                score = sum(scores[first : last + 1]) / (last - first + 1)
                ents_out.append(
                    {"start": e.start, "end": e.end, "label": e.label, "text": text[e.start : e.end],
                     "score": round(score, 4)}
                )
            results[index] = {"entities": ents_out, **trip_fields(text, entities)}
        return results

    def tag_words(self, texts: Sequence[str]) -> list[WordTags | str]:
        """Per text: its words, the decoded tag of each and that tag's probability (what `predict` averages into
        an entity's score), every label's probability per word, or the reason the text cannot be read. For
        callers that judge the model's confidence word by word (trajet.suggest, trajet.audit), so none of them
        re-implements the encoding or the decoder."""
        out: list[WordTags | str] = ["" for _ in texts]
        for item in self._run(texts):
            if len(item) == 2:
                out[item[0]] = item[1]
            else:
                index, tokens, tags, probs, rows = item
                out[index] = WordTags(tokens, tags, probs, [[math.exp(v) for v in row] for row in rows])
        return out

    def predict_entities(self, texts: Sequence[str]) -> list[list[Entity]]:
        """Spans only, for evaluation: an unreadable text (empty, over-long) predicts nothing."""
        out: list[list[Entity]] = [[] for _ in texts]
        for item in self._run(texts):
            if len(item) == 5:
                index, tokens, tags, _, _ = item
                out[index] = bio_to_spans(tokens, tags, strict=False)
        return out


def _input_names(with_types: bool) -> tuple[str, ...]:
    return ("input_ids", "attention_mask", "token_type_ids") if with_types else ("input_ids", "attention_mask")


# A live traced module per architecture (config), reused by the next model of the same architecture. Every
# torch.jit.trace registers new class types and graphs in TorchScript's process-wide compilation unit, which never
# frees them (and a frozen graph holds its weights as constants): tracing each hot-swapped model anew leaked one
# model per swap. A copy of a live trace shares its types; only its weights are replaced.
_TRACES: dict[str, Any] = {}
_TRACES_LOCK = threading.Lock()


def _trace_key(model: Any, with_types: bool) -> str:
    """What a trace bakes in: the architecture, every config value the forward reads, the inputs it takes."""
    config = getattr(model, "config", None)
    if hasattr(config, "to_dict"):
        cfg = dict(config.to_dict())
    else:
        cfg = dict(vars(config)) if hasattr(config, "__dict__") else {"repr": repr(config)}
    for volatile in ("_name_or_path", "transformers_version", "id2label", "label2id"):
        cfg.pop(volatile, None)
    cls = type(model)
    return json.dumps([cls.__module__, cls.__qualname__, with_types, cfg], sort_keys=True, default=str)


def _retrace(template: Any, wrapper: Any) -> Any:
    """A copy of `template` (same TorchScript types, nothing new registered) running `wrapper`'s weights: its
    parameters and buffers are rebound to the eager model's tensors, so the weights are not held twice."""
    import copy

    traced = copy.deepcopy(template)
    tensors = {**dict(wrapper.named_parameters()), **dict(wrapper.named_buffers())}
    slots = [name for name, _ in traced.named_parameters()] + [name for name, _ in traced.named_buffers()]
    if sorted(slots) != sorted(tensors):
        raise ValueError("the traced module's tensors are not the model's")
    for name in slots:
        *path, attr = name.split(".")
        owner = traced
        for part in path:
            owner = getattr(owner, part)
        owner._c.setattr(attr, tensors[name])
    return traced


def trace_model(model: Any, *, with_types: bool) -> Any | None:
    """The model as a TorchScript graph, or None when it cannot be traced faithfully.

    Eager HF modules spend most of a short request in Python (module calls, mask building): for the 4 x 128
    default, 2.4 ms eager against 0.95 ms traced per sentence, same logits (freezing the graph gained nothing
    measurable over the plain trace: 1.99 vs 2.03 ms on a 4 x 256 model). The trace runs on a padded batch of
    two lengths, and is kept only if its logits match eager ones on another batch (other lengths, batch size,
    padding): a graph that had baked in a shape or skipped the mask would fail that check and is not used.
    A model whose architecture was traced before, and whose trace is still alive, reuses that graph.
    """
    import warnings
    import weakref

    import torch

    class _Logits(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any = None) -> Any:
            extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, **extra).logits

    def batch(lengths: Sequence[int]) -> tuple[Any, ...]:
        width = max(lengths)
        vocab = int(getattr(model.config, "vocab_size", 100) or 100)
        ids = (torch.arange(len(lengths) * width).reshape(len(lengths), width) * 7 + 5) % vocab
        mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
        types = (torch.arange(len(lengths) * width).reshape(len(lengths), width) % 2) * mask
        return (ids, mask, types) if with_types else (ids, mask)

    try:
        key = _trace_key(model, with_types)
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            wrapper = _Logits(model).eval()
            with _TRACES_LOCK:
                refs = _TRACES.get(key)
                # the very class, not one of the same name (a class made by a function, a reloaded module)
                template = refs[0]() if refs is not None and refs[1]() is type(model) else None
                if template is not None:
                    traced = _retrace(template, wrapper)
                else:
                    traced = torch.jit.trace(wrapper, batch([6, 3]), check_trace=False).eval()
                _TRACES[key] = (weakref.ref(traced), weakref.ref(type(model)))
            probe = batch([11, 4, 9])
            same = torch.allclose(traced(*probe), wrapper(*probe), atol=1e-4, rtol=1e-4)
    except Exception:  # noqa: BLE001 - any failure to trace means: run eager, which is always right
        return None
    return traced if same else None


def check_model_dir(model_dir: Path) -> Path:
    from trajet.model_dir import ModelDir

    return ModelDir(model_dir).path


def max_length_of(model_dir: Path, tokenizer: Any) -> int:
    """The longest input, in sub-words, that the model can read (its position embeddings), at most 512.

    Not the training `max_length`: that only bounds the cost of training batches. A long real request (dates,
    passengers, classes) read by a model trained on shorter ones is still tagged well; refusing it would lose
    every entity of the sentence. RoBERTa/CamemBERT positions start after the pad id, hence the offset.
    """
    from trajet.model_dir import ModelDir

    limits = [512]
    try:
        cfg = ModelDir(model_dir, check=False).config
    except TrajetError:
        cfg = {}
    positions = cfg.get("max_position_embeddings") if isinstance(cfg, dict) else None
    if isinstance(positions, int) and positions > 0:
        offset = (cfg.get("pad_token_id") or 0) + 1 if cfg.get("model_type") in ("camembert", "roberta") else 0
        limits.append(positions - offset)
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        limits.append(tok_max)
    return min(limits)
