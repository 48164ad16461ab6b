import json
import shutil

import pytest

from tests.train_fixtures import trained_tiny
from trajet.errors import TrajetError
from trajet.lexicon import (
    BEGIN,
    CONTEXT_SLIP,
    FUZZY_BEGIN,
    FUZZY_INSIDE,
    INSIDE,
    KNOWN_WORDS_FILE,
    LEXICON_FILE,
    NONE,
    SPELL_FEATURE,
    VOCABULARY_FILE,
    Lexicon,
    drop_spans,
    name_keys,
    token_types,
)
from trajet.phrases import parse_markup, tokenize


@pytest.fixture(scope="module")
def small():
    return Lexicon.from_names(["Paris", "Paris Gare de Lyon", "Lyon", "Saint-Étienne", "Le Havre", "gare du Nord", "La"])


def _features(lexicon, text):
    return [(t.text, f) for t, f in zip(tokenize(text), lexicon.word_features([t.text for t in tokenize(text)]), strict=True)]


def test_matching_ignores_case_accents_and_apostrophe_style():
    lexicon = Lexicon.from_names(["Saint-Étienne", "L'Isle-Adam"])
    assert [f for _, f in _features(lexicon, "SAINT-ETIENNE")] == [BEGIN]
    assert [f for _, f in _features(lexicon, "l’isle-adam")] == [BEGIN, INSIDE]


def test_name_keys_cover_how_people_type_a_name():
    assert name_keys("Saint-Étienne") == {("saint-etienne",), ("saint", "etienne"), ("st-etienne",), ("st", "etienne"),
                                          ("st", ".", "etienne")}  # St.Etienne, St. Etienne
    assert name_keys("Le Havre") == {("le", "havre"), ("havre",)}
    assert name_keys("La") == set()  # an article alone is never a place


def test_longest_match_wins_and_marks_begin_inside(small):
    got = _features(small, "De Paris Gare de Lyon à saint etienne, puis au HAVRE")
    assert got == [
        ("De", NONE), ("Paris", BEGIN), ("Gare", INSIDE), ("de", INSIDE), ("Lyon", INSIDE), ("à", NONE),
        ("saint", BEGIN), ("etienne", INSIDE), (",", NONE), ("puis", NONE), ("au", NONE), ("HAVRE", BEGIN),
    ]
    assert _features(small, "la gare du nord")[1:] == [("gare", BEGIN), ("du", INSIDE), ("nord", INSIDE)]
    assert [f for _, f in _features(small, "la ville de Parisiens")] == [NONE] * 4


def test_gazetteer_lexicon_knows_communes_alternates_and_stations():
    lexicon = Lexicon.from_gazetteer()
    assert len(lexicon) > 15_000
    assert [f for _, f in _features(lexicon, "de st etienne à clermont")][1:] == [BEGIN, INSIDE, NONE, BEGIN]
    assert [f for _, f in _features(lexicon, "Lyon Part-Dieu")] == [BEGIN, INSIDE]
    assert ("la",) not in lexicon.entries and ("de",) not in lexicon.entries


def test_save_and_load_round_trip(small, tmp_path):
    small.save(tmp_path)
    again = Lexicon.load(tmp_path)
    assert again.entries == small.entries and not again.fuzzy
    assert not (tmp_path / KNOWN_WORDS_FILE).exists()
    with pytest.raises(TrajetError, match=f"{LEXICON_FILE}: the model expects gazetteer features but this file is missing"):
        Lexicon.load(tmp_path / "nope")
    fuzzy = Lexicon(small.entries, fuzzy=True, known_words=["pour", "demain"])
    (tmp_path / "f").mkdir()
    fuzzy.save(tmp_path / "f")
    again = Lexicon.load(tmp_path / "f", fuzzy=True)
    assert again.fuzzy and again.known_words == {"pour", "demain"} and again.entries == small.entries
    (tmp_path / "f" / KNOWN_WORDS_FILE).unlink()
    with pytest.raises(TrajetError, match=f"{KNOWN_WORDS_FILE}: the model expects"):
        Lexicon.load(tmp_path / "f", fuzzy=True)


def test_one_slip_matches_get_their_own_types():
    lexicon = Lexicon.from_names(["Montpellier", "Perpignan", "Noisy-le-Grand", "Lyon", "Saint-Caradec", "Dan"],
                                 fuzzy=True).with_known_words([[("dans", "O"), ("pour", "O")]] * 2)
    text = "de Monpellier à Perpigan via Noisy le Grnd et yLon puis St.Caradec pour Lyon dans Dna"
    got = dict(_features(lexicon, text))
    assert [got[w] for w in ("Monpellier", "Perpigan", "yLon", "Lyon")] == [FUZZY_BEGIN, FUZZY_BEGIN, FUZZY_BEGIN, BEGIN]
    feats = _features(lexicon, text)
    noisy = [f for w, f in feats if w in ("Noisy", "le", "Grnd")]
    assert noisy == [BEGIN, NONE, NONE] or noisy == [FUZZY_BEGIN, FUZZY_INSIDE, FUZZY_INSIDE]
    assert [f for w, f in feats if w in ("St", ".", "Caradec")] == [BEGIN, INSIDE, INSIDE]  # "St." form, exact
    # known context words and too-short spans are never one-slip places; an unknown slip of a short name is
    assert got["dans"] == NONE and got["pour"] == NONE and got["de"] == NONE and got["Dna"] == NONE
    # the exact-only lexicon of the same names marks no slip
    plain = Lexicon(lexicon.entries)
    assert dict(_features(plain, text))["Monpellier"] == NONE


def test_one_slip_is_one_edit():
    from trajet.lexicon import _one_slip

    assert _one_slip("paris", "parris") and _one_slip("parris", "paris") and _one_slip("lyon", "ylon")
    assert _one_slip("toulouse", "toulouze") and _one_slip("perpignan", "perpigan")
    assert not _one_slip("paris", "paris") and not _one_slip("paris", "prais ") and not _one_slip("nice", "nisse")
    assert not _one_slip("lyon", "noyl") and not _one_slip("abcd", "badc")


def test_drop_spans_hides_whole_places_only():
    features = [NONE, BEGIN, INSIDE, NONE, BEGIN, BEGIN, INSIDE]
    assert drop_spans(features, [True, False, True]) == [NONE, BEGIN, INSIDE, NONE, NONE, BEGIN, INSIDE]
    assert drop_spans(features, [False, True, False]) == [NONE] * 4 + [BEGIN, NONE, NONE]
    fuzzy = [FUZZY_BEGIN, FUZZY_INSIDE, BEGIN, NONE, FUZZY_BEGIN]
    assert drop_spans(fuzzy, [False, True, False]) == [NONE, NONE, BEGIN, NONE, NONE]


def test_token_types_follow_word_ids():
    assert token_types([BEGIN, INSIDE, NONE], [None, 0, 0, 1, 2, None]) == [0, 1, 1, 2, 0, 0]


def test_encoding_carries_features_on_every_sub_token(tmp_path_factory, small):
    from transformers import AutoTokenizer

    from trajet.encoding import encode_phrases

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrase = parse_markup("Train de [Saint-Étienne|D] à [Paris Gare de Lyon|A]")
    (enc,) = encode_phrases([phrase], tokenizer, 64, small)
    words = [t.text for t in tokenize(phrase.text)]
    word_ids = tokenizer(words, is_split_into_words=True).word_ids()
    expected = [0 if w is None else [NONE, NONE, BEGIN, NONE, BEGIN, INSIDE, INSIDE, INSIDE][w] for w in word_ids]
    assert enc["token_type_ids"] == expected
    assert len(enc["token_type_ids"]) == len(enc["input_ids"])
    (plain,) = encode_phrases([phrase], tokenizer, 64)
    assert "token_type_ids" not in plain and plain["labels"] == enc["labels"]


def test_trained_model_saves_its_lexicon_and_reads_the_features(tmp_path_factory):
    import torch

    from trajet.predict import Predictor

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    model_dir = tiny["model"]
    cfg = json.loads((model_dir / "config.json").read_text())
    assert cfg["trajet_features"] == "gazetteer-bio-fuzzy-v1" and cfg["type_vocab_size"] == 5
    saved = Lexicon.load(model_dir, fuzzy=True)
    assert saved.entries == Lexicon.from_gazetteer().entries
    assert {"de", "je", "veux"} <= saved.known_words and not saved.known_words & {"paris", "lyon"}
    predictor = Predictor.load(model_dir)
    assert predictor.lexicon is not None
    prepared = predictor._prepare_many([(0, "Je veux aller de Paris à Lyon demain")])
    inputs = predictor._encode_batch(prepared)
    assert inputs["token_type_ids"].tolist()[0] == prepared[0].type_ids
    assert 1 in prepared[0].type_ids
    with torch.inference_mode():
        with_hints = predictor.model(**inputs).logits
        without = predictor.model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).logits
    assert not torch.allclose(with_hints, without)  # the features reach the model


def test_model_without_features_still_predicts(tmp_path_factory, tmp_path):
    from trajet.predict import Predictor

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    plain = tmp_path / "plain"
    shutil.copytree(tiny["model"], plain)
    cfg = json.loads((plain / "config.json").read_text())
    del cfg["trajet_features"]
    (plain / "config.json").write_text(json.dumps(cfg))
    (plain / LEXICON_FILE).unlink()
    predictor = Predictor.load(plain)
    assert predictor.lexicon is None
    (result,) = predictor.predict(["Je veux aller de Paris à Lyon"])
    assert "entities" in result and "error" not in result


def test_missing_lexicon_is_a_clear_error(tmp_path_factory, tmp_path):
    from trajet.predict import Predictor

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    broken = tmp_path / "broken"
    shutil.copytree(tiny["model"], broken)
    (broken / LEXICON_FILE).unlink()
    with pytest.raises(TrajetError, match=f"{LEXICON_FILE}: the model expects gazetteer features"):
        Predictor.load(broken)


def test_warm_start_without_features_drops_the_claim(tmp_path_factory, tmp_path):
    from trajet.predict import Predictor
    from trajet.train import train_model
    from trajet.train_config import config_for

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    cfg = config_for("tiny", {"base_model": str(tiny["model"]), "gazetteer": False, "max_steps": 4, "eval_steps": 2,
                              "save_steps": 2})
    out = train_model(tiny["train"][:40], tiny["val"][:10], cfg, tmp_path / "plain", progress=False).output_dir
    assert "trajet_features" not in json.loads((out / "config.json").read_text())
    assert not (out / LEXICON_FILE).exists()
    assert Predictor.load(out).lexicon is None


def _spelling_lexicon():
    """Context words counted on (word, tag) sentences: `horaires`, `puis` and `depuis` frequent O words, `Marie` a
    name seen often enough to be a word of its own, `gare` often inside a station name."""
    sentences = (
        [[("horaires", "O"), ("depuis", "O"), ("Nevers", "B-DEPART"), ("puis", "O"), ("Lyon", "B-ARRIVEE")]] * 12
        + [[("Marie", "O"), ("mairie", "O"), ("marre", "O")]] * 10
        + [[("la", "O"), ("gare", "O"), ("de", "O"), ("Lyon", "B-DEPART")]] * 20
        + [[("Paris", "B-DEPART"), ("Gare", "I-DEPART"), ("de", "I-DEPART"), ("Lyon", "I-DEPART")]] * 30
    )
    names = Lexicon.from_names(["Nevers", "Lyon", "Paris Gare de Lyon", "Puiseux"], fuzzy=True)
    return names.with_known_words(sentences, spelling=True)


def test_misspelled_context_words_are_read_as_meant():
    lexicon = _spelling_lexicon()
    assert lexicon.feature == SPELL_FEATURE and lexicon.n_types == 6
    words = [t.text for t in tokenize("HORAIIRES Nevers puuis Lyon, Marie à la garre")]
    read, features = lexicon.read(words)
    assert read == ["HORAIRES", "Nevers", "puis", "Lyon", ",", "Marie", "à", "la", "gare"]  # case kept
    assert features == [CONTEXT_SLIP, BEGIN, CONTEXT_SLIP, BEGIN, NONE, NONE, NONE, NONE, CONTEXT_SLIP]
    # a form seen in training is a word of its own (`Marie` is no slip of `mairie`), a place match wins, a word
    # far from every context word stays as typed
    assert lexicon.read(["Marie", "Nevvers", "vélo"]) == (["Marie", "Nevvers", "vélo"], [NONE, FUZZY_BEGIN, NONE])
    # a dropped, doubled or swapped letter is a slip; a replaced one is not (`marre` is a word, not a slip of
    # `garre`), and `dpuis` is `depuis` less a letter, not `puis` with one added (only a doubled letter is)
    assert lexicon.read(["dpuis", "gare", "pius", "puiss", "pyis"])[0] == ["depuis", "gare", "puis", "puis", "pyis"]
    # without spelling (a fuzzy-v1 model) nothing is respelled
    plain = Lexicon(lexicon.entries, fuzzy=True, known_words=lexicon.known_words)
    assert plain.read(["puuis"]) == (["puuis"], [NONE]) and plain.n_types == 5


def test_hint_dropout_keeps_corrected_words():
    features = [BEGIN, CONTEXT_SLIP, BEGIN, INSIDE]
    assert drop_spans(features, [False, False]) == [NONE, CONTEXT_SLIP, NONE, NONE]


def test_vocabulary_round_trip_and_errors(tmp_path):
    lexicon = _spelling_lexicon()
    lexicon.save(tmp_path)
    again = Lexicon.load(tmp_path, fuzzy=True, spelling=True)
    assert again.vocabulary.rows == lexicon.vocabulary.rows and again.feature == SPELL_FEATURE
    assert again.read(["puuis", "garre"]) == lexicon.read(["puuis", "garre"])
    (tmp_path / VOCABULARY_FILE).write_text("puis\tpuis\t12\n", encoding="utf-8")
    with pytest.raises(TrajetError, match=f"{VOCABULARY_FILE}:1: expected word, form, O count, count"):
        Lexicon.load(tmp_path, fuzzy=True, spelling=True)
    (tmp_path / VOCABULARY_FILE).unlink()
    with pytest.raises(TrajetError, match=f"{VOCABULARY_FILE}: the model expects"):
        Lexicon.load(tmp_path, fuzzy=True, spelling=True)
    with pytest.raises(TrajetError, match="needs a fuzzy lexicon"):
        Lexicon(lexicon.entries, vocabulary=lexicon.vocabulary)


def test_a_spelling_model_reads_misspelled_context_words_as_meant(tmp_path_factory, tmp_path):
    """Trained with gazetteer_spelling, the model saves its vocabulary, and the predictor feeds it `veux` for a
    typed `veeux` (marked as corrected), as training did."""
    from trajet.predict import Predictor
    from trajet.train import train_model
    from trajet.train_config import config_for

    tiny = trained_tiny(tmp_path_factory.mktemp("tiny"))
    cfg = config_for("tiny", {"gazetteer_spelling": True, "max_steps": 4, "eval_steps": 2, "save_steps": 2})
    out = train_model(tiny["train"], tiny["val"][:10], cfg, tmp_path / "spell", progress=False).output_dir
    config = json.loads((out / "config.json").read_text())
    assert config["trajet_features"] == SPELL_FEATURE and config["type_vocab_size"] == 6
    assert (out / VOCABULARY_FILE).is_file()
    predictor = Predictor.load(out)
    typed, meant = predictor._prepare_many([(0, "Je veeux aller de Paris à Lyon"), (1, "Je veux aller de Paris à Lyon")])
    assert typed.input_ids == meant.input_ids
    assert CONTEXT_SLIP in typed.type_ids and CONTEXT_SLIP not in meant.type_ids
    text = "Je veeux aller de Paris à Lyon"
    (result,) = predictor.predict([text])
    assert "error" not in result  # offsets still point into the text as typed
    assert all(text[e["start"] : e["end"]] == e["text"] for e in result["entities"])


def test_one_slip_lookups_without_the_index_answer_as_the_index_does(monkeypatch):
    """A command tagging a few sentences does not build the symmetric-delete index (~1 s): its first lookups
    scan the names of nearby lengths sharing an end. Same answers on slipped names (dropped, added, replaced,
    swapped letters), multi-word names and ordinary words."""
    import random

    import trajet.lexicon as lexicon_module

    entries = Lexicon.from_gazetteer().entries
    names = sorted(" ".join(e) for e in entries)
    rng = random.Random(7)

    def slip(word: str) -> str:
        i, kind = rng.randrange(len(word)), rng.randrange(4)
        if kind == 0:
            return word[:i] + word[i + 1 :]
        if kind == 1:
            return word[:i] + rng.choice("aeéiosz") + word[i:]
        if kind == 2:
            return word[:i] + rng.choice("aeéiosz") + word[i + 1 :]
        return word[:i] + word[i + 1 : i + 2] + word[i : i + 1] + word[i + 2 :]

    queries = [slip(rng.choice(names)).split(" ") for _ in range(1500)]
    queries += [w.split(" ") for w in ("pour", "dans", "demain", "voudrais", "bonjour", "marseile", "sanit malo")]
    monkeypatch.setattr(lexicon_module, "SCAN_QUERIES", 10**9)
    scanning = Lexicon(entries, fuzzy=True)
    by_scan = [scanning._near(q, 0) for q in queries]
    assert scanning._by_deletion is None  # the index was never built
    indexed = Lexicon(entries, fuzzy=True)
    indexed.build_index()
    assert [indexed._near(q, 0) for q in queries] == by_scan
    assert sum(n > 0 for n in by_scan) > 1000
