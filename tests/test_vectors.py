"""Pretrained French vectors as the start of a built-in base's embedding table (trajet/vectors.py)."""

from __future__ import annotations

import json

import pytest
import torch

from trajet.errors import TrajetError
from trajet.minibase import MiniSpec, build_mini
from trajet.vectors import fold, init_embeddings, piece_key

WORDS = ("lundi mardi mercredi jeudi vendredi samedi dimanche janvier février mars avril juin juillet train gare "
         "billet voyage aller partir arriver rejoindre rentrer voiture avion bus paris lyon marseille lille nantes "
         "demain matin soir midi réserver acheter merci bonjour pourquoi comment").split()


def test_fold_and_piece_keys_follow_the_mini_tokenizer():
    assert fold("Été") == "ete" and fold("ÎLE") == "ile"
    assert piece_key("▁Février") == "fevrier"
    assert piece_key("ment") is None  # an inner piece is no word
    assert piece_key("<s>") is None and piece_key("▁") is None


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


def test_pieces_with_a_vector_start_from_it_and_the_others_keep_their_start():
    vocab = {"<s>": 0, "<pad>": 1, "ment": 2, "▁zzqxw": 3}
    vocab.update({f"▁{w}": i + 4 for i, w in enumerate(WORDS)})
    torch.manual_seed(0)
    weight = torch.nn.Embedding(len(vocab), 16).weight
    with torch.no_grad():
        weight.normal_(0.0, 0.02)
    before = weight.detach().clone()
    report = init_embeddings(weight, vocab, "fr_core_news_md", std=0.02, seed=13)
    assert report.initialised == len(WORDS)  # every word above is in the French table, accents folded
    assert torch.equal(weight[:4], before[:4])  # specials, inner pieces and unknown words untouched
    changed = weight[4:].detach()
    assert not torch.allclose(changed, before[4:])
    assert abs(float(changed.std()) - 0.02) < 0.005
    # What a word's vector knows survives the projection: weekdays sit closer together than a weekday and a station.
    row = {w: weight[vocab[f"▁{w}"]].detach() for w in WORDS}
    assert _cosine(row["lundi"], row["mardi"]) > _cosine(row["lundi"], row["gare"]) + 0.2
    assert _cosine(row["janvier"], row["juillet"]) > _cosine(row["janvier"], row["voiture"]) + 0.2


def test_too_few_known_pieces_or_an_unknown_source_is_refused():
    weight = torch.nn.Embedding(8, 16).weight
    with pytest.raises(TrajetError, match="too few"):
        init_embeddings(weight, {"▁lundi": 0, "▁mardi": 1}, "fr_core_news_md", std=0.02, seed=1)
    with pytest.raises(TrajetError, match="unknown word-vector source"):
        init_embeddings(weight, {"▁lundi": 0}, "en_core_web_md", std=0.02, seed=1)


def test_a_built_base_records_its_vectors_and_differs_only_by_them(tmp_path):
    texts = [f"je voudrais aller de Paris à Lyon {w} matin" for w in WORDS] * 3
    spec = MiniSpec(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64, vocab_size=300,
                    max_positions=64, min_frequency=1)
    plain = build_mini(texts, tmp_path / "plain", spec)
    with_vectors = build_mini(texts, tmp_path / "vectors", MiniSpec(**{**spec.__dict__, "word_vectors": "fr_core_news_md"}))
    info = json.loads((with_vectors / "trajet_base.json").read_text())
    assert info["spec"]["word_vectors"] == "fr_core_news_md"
    assert info["word_vectors"]["initialised"] >= len(WORDS) // 2
    assert "word_vectors" not in json.loads((plain / "trajet_base.json").read_text())
    from safetensors.torch import load_file

    a, b = load_file(plain / "model.safetensors"), load_file(with_vectors / "model.safetensors")
    differing = {k for k in a if not torch.equal(a[k], b[k])}
    assert differing == {"embeddings.word_embeddings.weight"}
