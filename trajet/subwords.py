"""Sub-word encoding with the `tokenizers` library alone, word by word, checked against transformers' tokenizer.

Why a module of its own: every backend (torch eager, saved trace, ONNX) encodes with it when the check passes, and
the word cache is what makes batched encoding cheap; it sits below the predictors so none of them imports another.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from trajet.errors import TrajetError
from trajet.model_dir import TOKENIZER_CONFIG_FILE, TOKENIZER_FILE, TOKENIZER_FILES

# Sentences the export checks the plain `tokenizers` encoding on, against transformers' own: accents, case,
# apostrophes, hyphens, digits, punctuation, a word the vocabulary never saw, an emoji.
_TOKENIZER_PROBES = (
    "Je veux aller de Paris à Lyon en passant par Dijon",
    "billet SAINT-ÉTIENNE → Aix-en-Provence, le 12/05 à 8h30 !",
    "d'Orléans jusqu'à L'Isle-sur-la-Sorgue via Châlons-en-Champagne",
    "Metz - Lyon par Nancy 🚄 xqzwvk ŒUVRE Ça ß ı",
)


def tokenizer_sha256(model_dir: Path) -> str:
    """What the plain tokenizer's equivalence was checked for: the tokenizer files, byte for byte."""
    h = hashlib.sha256()
    for name in TOKENIZER_FILES:
        path = Path(model_dir) / name
        h.update(name.encode() + b"\0")
        if path.is_file():
            h.update(path.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


class _Encoding:
    """The two things `Predictor` reads from a batch encoding: `["input_ids"]` and `word_ids(row)`; from
    `tokenizers` encodings, or from id and word-id lists built already (`ids`, `word_ids`)."""

    def __init__(self, encodings: list[Any] | None = None, *, ids: list[list[int]] | None = None,
                 word_ids: list[list[int | None]] | None = None) -> None:
        self._encodings = encodings
        self._ids = ids
        self._word_ids = word_ids

    def __getitem__(self, key: str) -> list[list[int]]:
        if key != "input_ids":
            raise KeyError(key)
        if self._ids is None:  # built once: the predictor reads it row by row
            self._ids = [e.ids for e in self._encodings or []]
        return self._ids

    def word_ids(self, row: int) -> list[int | None]:
        if self._word_ids is not None:
            return list(self._word_ids[row])
        return list(self._encodings[row].word_ids)  # type: ignore[index]


WORD_CACHE_SIZE = 100_000  # distinct words whose sub-word ids are kept (a few MB); the cache restarts when full


class PlainTokenizer:
    """The model's `tokenizer.json` run by the `tokenizers` library alone, for words already split: what a
    transformers fast tokenizer does for `is_split_into_words=True, truncation=False`, without importing
    transformers (about 1.3 s) or torch (2 s and more). Used only when the export checked both agree.

    Words already split are encoded one by one by `tokenizers` itself (each is normalised, pre-tokenized and
    cut into sub-words on its own, then the encodings are concatenated and the special tokens added), so a
    word's sub-word ids do not depend on the sentence: they are kept per word, and a sentence is the special
    tokens around its words' ids. Requests repeat their words; encoding whole sentences in Rust cost more
    than the model's forward pass of a batch on some lengths. Checked at load on probe sentences against
    `encode_batch` (which is used when they differ)."""

    def __init__(self, model_dir: Path) -> None:
        from tokenizers import Tokenizer

        model_dir = Path(model_dir)
        try:
            self._tok = Tokenizer.from_file(str(model_dir / TOKENIZER_FILE))
            cfg = json.loads((model_dir / TOKENIZER_CONFIG_FILE).read_text(encoding="utf-8"))
        except Exception as exc:  # noqa: BLE001 - any unreadable tokenizer: the caller falls back
            raise TrajetError(f"cannot load the tokenizer of {model_dir}: {exc}") from None
        self._tok.no_truncation()
        self._tok.no_padding()
        pad = cfg.get("pad_token")
        pad = pad.get("content") if isinstance(pad, dict) else pad
        self.pad_token_id = self._tok.token_to_id(pad) if isinstance(pad, str) else None
        max_len = cfg.get("model_max_length")
        self.model_max_length = max_len if isinstance(max_len, int) else None
        self._pieces: dict[str, list[int]] = {}
        self._around = self._specials()

    def _specials(self) -> tuple[list[int], list[int]] | None:
        """The ids the post-processor puts before and after a sentence's words, or None (no per-word cache) when
        an encoding is not that, or assembling words encoded alone differs from encoding the probe sentences."""
        probe = ["x"]
        full = self._tok.encode(probe, is_pretokenized=True, add_special_tokens=True)
        bare = self._tok.encode(probe, is_pretokenized=True, add_special_tokens=False).ids
        wids = list(full.word_ids)
        inner = [k for k, w in enumerate(wids) if w is not None]
        if not inner or inner != list(range(inner[0], inner[0] + len(bare))) or full.ids[inner[0]: inner[-1] + 1] != bare:
            return None
        around = (list(full.ids[: inner[0]]), list(full.ids[inner[-1] + 1 :]))
        self._around = around
        words = [text.split() for text in _TOKENIZER_PROBES]
        words += [[w.upper() for w in words[0]], ["x"]]
        expected = self._tok.encode_batch(words, is_pretokenized=True, add_special_tokens=True)
        got = self._assemble(words)
        same = got["input_ids"] == [e.ids for e in expected] and all(
            got.word_ids(i) == list(e.word_ids) for i, e in enumerate(expected))
        self._pieces.clear()
        return around if same else None

    def _assemble(self, words: list[list[str]]) -> _Encoding:
        pieces = self._pieces
        new = {w for ws in words for w in ws if w not in pieces}
        if new:
            if len(pieces) + len(new) > WORD_CACHE_SIZE:
                pieces.clear()
                new = {w for ws in words for w in ws}
            todo = list(new)
            for w, enc in zip(todo, self._tok.encode_batch([[w] for w in todo], is_pretokenized=True,
                                                           add_special_tokens=False), strict=True):
                pieces[w] = enc.ids
        before, after = self._around  # type: ignore[misc]
        head, tail = [None] * len(before), [None] * len(after)
        all_ids: list[list[int]] = []
        all_word_ids: list[list[int | None]] = []
        for ws in words:
            ids = list(before)
            word_ids: list[int | None] = list(head)
            for k, w in enumerate(ws):
                p = pieces[w]
                ids += p
                word_ids += [k] * len(p)
            ids += after
            word_ids += tail
            all_ids.append(ids)
            all_word_ids.append(word_ids)
        return _Encoding(ids=all_ids, word_ids=all_word_ids)

    def __call__(self, words: list[list[str]], *, is_split_into_words: bool = True,
                 truncation: bool = False) -> _Encoding:
        if not is_split_into_words or truncation:
            raise ValueError("PlainTokenizer encodes pre-split words without truncation only")
        if self._around is not None:
            return self._assemble(words)
        return _Encoding(self._tok.encode_batch(words, is_pretokenized=True, add_special_tokens=True))


def plain_tokenizer_agrees(model_dir: Path, *, plain: PlainTokenizer | None = None, hf: Any = None) -> bool:
    """Export-time check (transformers is loaded there anyway): the plain tokenizer gives the same ids, word
    ids, pad id and length limit as transformers' on the probe sentences, words split as Trajet splits them.
    `plain`, `hf`: the two tokenizers of this model when the caller has them loaded already."""
    from trajet.phrases import tokenize

    try:
        plain = PlainTokenizer(model_dir) if plain is None else plain
        hf = load_tokenizer(model_dir) if hf is None else hf
    except TrajetError:
        return False
    words = [[t.text for t in tokenize(text)] for text in _TOKENIZER_PROBES]
    words.append([w.upper() for w in words[0]])
    ours, theirs = plain(words), hf(words, is_split_into_words=True, truncation=False)
    return (
        ours["input_ids"] == [list(ids) for ids in theirs["input_ids"]]
        and all(ours.word_ids(i) == list(theirs.word_ids(i)) for i in range(len(words)))
        and plain.pad_token_id == hf.pad_token_id
        and plain.model_max_length == getattr(hf, "model_max_length", None)
    )


# --------------------------------------------------------------------------------------- predictor


def load_tokenizer(model_dir: Path) -> Any:
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        return AutoTokenizer.from_pretrained(str(model_dir))
    except (OSError, ValueError) as exc:
        raise TrajetError(f"cannot load model from {model_dir}: {exc}") from None
