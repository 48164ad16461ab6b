import random

import pytest

from tests.train_fixtures import make_phrases, trained_tiny
from trajet.augment import (
    CUES,
    AugmentedPhrases,
    GroupedEpochs,
    augment_words,
    rare_context_words,
    swap_places,
    words_and_tags,
)
from trajet.encoding import encode_phrases
from trajet.labels import LABEL2ID
from trajet.phrases import parse_markup


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    return trained_tiny(tmp_path_factory.mktemp("tiny"))


def _corpus():
    common = [parse_markup(f"Je veux aller de [Paris|D] à [Lyon|A] demain matin {i}") for i in range(30)]
    rare = [
        parse_markup("Un billet de [Brest|D] à [Rennes|A] avec mon vélo et une poussette"),
        parse_markup("J'ai oublié mon parapluie à Nantes"),
    ]
    return common + rare


def test_rare_words_are_context_words_only():
    frequent, pool = rare_context_words([words_and_tags(p) for p in _corpus()], keep=5)
    assert {"veux", "aller", "demain", "matin"} <= frequent
    assert CUES <= frequent  # trip cues are always kept, however rare
    assert "poussette" in pool and "parapluie" in pool and "vélo" in pool
    # places, tagged or not, are not context words to splice from when tagged
    assert "brest" not in pool and "rennes" not in pool and "paris" not in pool


def test_augmentation_changes_only_rare_o_words():
    phrases = _corpus()
    frequent, pool = rare_context_words([words_and_tags(p) for p in phrases], keep=5)
    phrase = phrases[-2]
    tokens, tags = phrase.tokens_and_tags()
    words = [t.text for t in tokens]
    rng = random.Random(0)
    changed_positions = set()
    for _ in range(50):
        out = augment_words(rng, words, tags, frequent, pool)
        assert len(out) == len(words)
        for i, (before, after) in enumerate(zip(words, out, strict=True)):
            if before != after:
                changed_positions.add(i)
                assert tags[i] == "O" and before.lower() not in frequent
    assert changed_positions  # some rare words were replaced
    changed_words = {words[i] for i in changed_positions}
    assert changed_words <= {"billet", "avec", "mon", "vélo", "une", "poussette"}
    assert "Brest" not in changed_words and "Rennes" not in changed_words


def test_dataset_keeps_labels_and_plain_items(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrases = make_phrases(60, seed=5)
    plain = encode_phrases(phrases, tokenizer, 48)
    assert [AugmentedPhrases(phrases, tokenizer, 48, prob=0.0, seed=1)[i] for i in range(60)] == plain

    ds = AugmentedPhrases(phrases, tokenizer, 48, prob=1.0, seed=1)
    # these 9 templates have fewer context words than KEEP_MOST_FREQUENT: keep only the 5 most frequent
    ds.frequent, ds.pool = rare_context_words(ds.items, keep=5)
    differing = 0
    for i, phrase in enumerate(phrases):
        item = ds[i]
        _, tags = phrase.tokens_and_tags()
        # one label per word, on its first sub-token, whatever the pseudo-words' pieces
        assert [x for x in item["labels"] if x != -100] == [LABEL2ID[t] for t in tags]
        differing += item["input_ids"] != plain[i]["input_ids"]
    assert differing > 0


def _trips():
    return [
        parse_markup("Je veux aller de [Saint-Genès-de-Fronsac|D] à [la Rochelle|A] via [Villeneuve-d'Ascq|V]"),
        parse_markup("Un billet de [Montbéliard|D] à [Paris Gare de Lyon|A] demain"),
        parse_markup("J'ai oublié mon parapluie à Nantes"),
    ]


def test_place_parts_are_tagged_name_parts_without_connectors():
    from trajet.augment import PLACE_CONNECTORS, place_parts

    parts = place_parts([words_and_tags(p) for p in _trips()])
    assert {"genès", "fronsac", "rochelle", "villeneuve", "ascq", "montbéliard", "paris", "lyon"} <= set(parts)
    assert not set(parts) & PLACE_CONNECTORS  # saint, de, la, gare: the shape of a name, not its identity
    assert "nantes" not in parts and "parapluie" not in parts  # untagged words are no place material


def test_swapped_places_keep_shape_tags_and_word_count():
    from trajet.augment import PLACE_CONNECTORS, place_parts, place_spans, swap_places

    items = [words_and_tags(p) for p in _trips()]
    pool = place_parts(items)
    rng = random.Random(3)
    seen_new = set()
    for words, tags in items:
        for _ in range(40):
            out, swapped = swap_places(rng, words, place_spans(tags), pool, 1.0)
            assert len(out) == len(words)
            spans = place_spans(tags)
            assert set(swapped) <= set(spans)
            for i, (before, after) in enumerate(zip(words, out, strict=True)):
                if tags[i] == "O":
                    assert before == after  # context is the other augmentation's business
                    continue
                # hyphens, apostrophes and connectors stay where they were
                assert [c for c in before if c in "-'"] == [c for c in after if c in "-'"]
                for part in ("Saint", "de", "la", "Gare"):
                    if before.startswith(part + "-") or before == part:
                        assert after.startswith(part)
                if before.lower() not in PLACE_CONNECTORS:
                    assert after != before  # a pseudo-place never gives the real name back
                    seen_new.add(after)
    assert len(seen_new) > 20
    assert swap_places(rng, items[0][0], place_spans(items[0][1]), pool, 0.0) == (list(items[0][0]), [])


def test_pseudo_place_keeps_the_hint_of_the_name_it_replaces(tiny):
    from transformers import AutoTokenizer

    from trajet.augment import place_spans
    from trajet.lexicon import BEGIN, INSIDE, NONE, Lexicon

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    lexicon = Lexicon.from_names(["Saint-Genès-de-Fronsac", "La Rochelle", "Villeneuve-d'Ascq", "Montbéliard",
                                  "Paris Gare de Lyon"])
    phrases = _trips()
    ds = AugmentedPhrases(phrases, tokenizer, 48, prob=1.0, seed=2, lexicon=lexicon, place_prob=1.0, word_prob=0.0)
    words, tags = ds.items[1]
    out, swapped = swap_places(random.Random(0), words, place_spans(tags), ds.place_pool, 1.0)
    assert swapped and out != words
    assert lexicon.word_features(out)[swapped[0][0]] == NONE  # the gazetteer cannot know a pseudo-place...
    features = ds._features(ds.rng, out, 0.0, ds.hints[1], swapped)
    assert features == lexicon.word_features(words)  # ...but it keeps the hint of the real one
    assert BEGIN in features and INSIDE in features
    for i, phrase in enumerate(phrases):
        _, tags = phrase.tokens_and_tags()
        assert [x for x in ds[i]["labels"] if x != -100] == [LABEL2ID[t] for t in tags]


def test_untagged_places_are_gazetteer_names_outside_the_trip():
    from trajet.augment import untagged_places
    from trajet.lexicon import Lexicon

    lexicon = Lexicon.from_names(["Lisieux", "Le Havre", "Vers", "Rouen", "Saint-Lô"])
    phrase = parse_markup("Ma mère vit à Lisieux, je vais vers [Rouen|A] depuis [le Havre|D] et Saint-Lô m'attend")
    words, tags = words_and_tags(phrase)
    spans = untagged_places(lexicon.word_features(words), tags, words, frozenset({"vers"}))
    assert [" ".join(words[a:b]) for a, b in spans] == ["Lisieux", "Saint-Lô"]  # not the trip, not `vers`


def test_slipped_context_words_keep_tags_and_places():
    from trajet.augment import slip_words

    phrase = parse_markup("Un billet de [Montbéliard|D] à [Besançon|A] demain matin vers midi")
    words, tags = words_and_tags(phrase)
    rng = random.Random(4)
    slipped = set()
    for _ in range(30):
        out = slip_words(rng, words, tags, 0.5)
        assert len(out) == len(words)
        assert [w for w, t in zip(out, tags, strict=True) if t != "O"] == ["Montbéliard", "Besançon"]
        slipped |= {(a, b) for a, b in zip(words, out, strict=True) if a != b}
    assert slipped and all(len(a) >= 4 and abs(len(a) - len(b)) <= 1 for a, b in slipped)
    assert slip_words(rng, words, tags, 0.0) == words


@pytest.mark.parametrize("persistent", [True, False])
def test_a_persistent_loader_worker_draws_new_augmentations_each_epoch(tiny, persistent):
    """The `mini` preset prepares batches in a worker process. A worker holds its own copy of the dataset and of
    its random stream: kept alive across epochs it draws new augmentations each epoch, while a worker started
    afresh each epoch would replay the first epoch's (why `dataloader_workers` makes them persistent)."""
    from torch.utils.data import DataLoader
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrases = _trips() * 4
    ds = AugmentedPhrases(phrases, tokenizer, 48, prob=1.0, seed=3, place_prob=1.0)
    loader = DataLoader(ds, batch_size=len(ds), num_workers=1, persistent_workers=persistent,
                        collate_fn=lambda items: [item["input_ids"] for item in items])
    first, second = list(loader), list(loader)
    assert (first != second) is persistent


def _loader_items(ds, batch_size, workers, epochs=2):
    from torch.utils.data import DataLoader

    loader = DataLoader(ds, batch_size=batch_size, num_workers=workers, persistent_workers=workers > 0,
                        collate_fn=lambda items: [tuple(item["input_ids"]) for item in items])
    return [list(loader) for _ in range(epochs)]


def test_grouped_epochs_serve_every_sentence_once_per_epoch_in_length_sorted_batches(tiny):
    """Each epoch is a permutation of the sentences, cut into batches of similar drawn length: within a group,
    batches never overlap in length (that is what keeps padding low), and the short last batch stays last."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrases = make_phrases(203, seed=11)
    plain = [tuple(item["input_ids"]) for item in encode_phrases(phrases, tokenizer, 48)]
    ds = GroupedEpochs(AugmentedPhrases(phrases, tokenizer, 48, prob=0.0, seed=1), batch_size=8, seed=4,
                       group_batches=5)
    epochs = _loader_items(ds, 8, workers=0)
    for batches in epochs:
        assert sorted(x for b in batches for x in b) == sorted(plain)  # each sentence once, nothing else
        assert [len(b) for b in batches] == [8] * 25 + [3]
        for start in range(0, 25, 5):  # the full batches of each group of 5
            spans = sorted((min(map(len, b)), max(map(len, b))) for b in batches[start : start + 5])
            assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:], strict=False))
    assert epochs[0] != epochs[1]  # a new shuffle each epoch


def test_grouped_epochs_draw_the_same_items_in_any_process_and_new_ones_each_epoch(tiny):
    """Everything random comes from (seed, epoch, group): the main process and a persistent loader worker serve
    the same batches, and the second epoch draws new augmentations."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrases = _trips() * 10

    def dataset():
        return GroupedEpochs(AugmentedPhrases(phrases, tokenizer, 48, prob=1.0, seed=3, place_prob=1.0),
                             batch_size=4, seed=3, group_batches=2)

    in_main, in_worker = _loader_items(dataset(), 4, workers=0), _loader_items(dataset(), 4, workers=1)
    assert in_main == in_worker
    first, second = ({x for b in epoch for x in b} for epoch in in_main)
    assert first != second


def test_fillers_are_the_sentences_of_messages_that_name_nothing():
    from trajet.augment import filler_pieces
    from trajet.lexicon import Lexicon

    lexicon = Lexicon.from_names(["Nantes", "Brest", "Rennes", "Routot"])
    phrases = [
        parse_markup("Bonjour madame. Un billet de [Brest|D] à [Rennes|A] demain. Merci !"),
        parse_markup("Je suis à Routot. Pouvez-vous m'aider ?"),
        parse_markup("Bonjour madame. Ok"),  # a greeting seen twice is one filler; "Ok" alone is too short
    ]
    items = [words_and_tags(p) for p in phrases]
    hints = [lexicon.word_features(w) for w, _ in items]
    assert filler_pieces(items, hints) == [
        ("Bonjour", "madame", "."), ("Merci", "!"), ("Pouvez-vous", "m'", "aider", "?"),
    ]


def test_composed_message_keeps_tags_and_hints_aligned_and_adds_only_o_words():
    from trajet.augment import compose
    from trajet.lexicon import Lexicon

    lexicon = Lexicon.from_names(["Brest", "Rennes"])
    words, tags = words_and_tags(parse_markup("Un billet de [Brest|D] à [Rennes|A] demain"))
    hints = lexicon.word_features(words)
    fillers = [("Bonjour", "madame", "."), ("Merci", "beaucoup")]
    placed = set()
    for seed in range(40):
        new_words, new_tags, feats = compose(random.Random(seed), (words, tags, hints), fillers)
        assert len(new_words) == len(new_tags) == len(feats)
        assert feats == lexicon.word_features(new_words)  # hints follow their words; the filler has none
        trip = [(w, t) for w, t in zip(new_words, new_tags, strict=True) if t != "O"]
        assert trip == [("Brest", "B-DEPART"), ("Rennes", "B-ARRIVEE")]
        extra = [w for w in new_words if w not in words]
        assert set(extra) - {"Bonjour", "madame", "Merci", "beaucoup"} <= {".", ",", "!", "?", "..."}
        placed.add("before" if new_words[0] != "Un" else "after")
    assert placed == {"before", "after"}


def test_dataset_composes_messages_only_when_asked(tiny):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny["base"]))
    phrases = [parse_markup("Je veux aller à [Nîmes|A]"), parse_markup("Bonjour madame. Merci beaucoup !")]
    off = AugmentedPhrases(phrases, tokenizer, 64, prob=1.0, seed=3, word_prob=0.0)
    on = AugmentedPhrases(phrases, tokenizer, 64, prob=1.0, seed=3, word_prob=0.0, compose_prob=1.0)
    assert off.fillers == [] and len(on.fillers) == 2
    plain = len(on.plain[0]["input_ids"])
    assert all(len(off.draw(0, random.Random(s))["input_ids"]) == plain for s in range(10))
    for s in range(10):
        item = on.draw(0, random.Random(s))
        assert len(item["input_ids"]) > plain
        assert [x for x in item["labels"] if x != -100].count(LABEL2ID["B-ARRIVEE"]) == 1
