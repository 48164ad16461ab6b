"""The built-in `trajet:mini` / `trajet:tiny` bases: a small CamemBERT-architecture encoder initialised from
scratch, with a BPE tokenizer trained on the project's own corpus plus the gazetteer.

Why from scratch: no French transformer weights ship on PyPI and the hub is unreachable here. Why BPE with
a modest vocabulary: a place seen only in the gazetteer must fall apart into sub-words the model trained on,
not become a whole-word token whose embedding training never touches (Unigram collapsed to characters on a
small corpus; BPE keeps frequent words whole). The base is cached under TRAJET_HOME keyed by corpus + spec.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from trajet import config as trajet_config
from trajet.errors import TrajetError
from trajet.phrases import Phrase, normalise_text, read_phrases, words

SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0-4, CamemBERT's order

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
    # The base's weights come from its own seed, and the caller's random state is left as it was: a training that
    # builds its base first must draw its head and batches exactly as one that finds the base in the cache.
    with torch.random.fork_rng(devices=[]):
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


def build_or_reuse(name: str, *, corpus: Iterable[str] = (), spec: Mapping[str, Any] | None = None) -> Path:
    """The built-in base `name` for this corpus (training texts + project corpus), built once per content."""
    mini = MiniSpec.named(name, spec)
    texts = list(corpus) + project_corpus()
    out = trajet_config.home() / "bases" / f"{name}-{corpus_key(texts, mini)}"
    if (out / "config.json").is_file():
        return out
    return build_mini(texts, out, mini)
