"""Constrained decoding: the answer keeps the trip's rules and is the best such sequence (checked by brute force)."""

from __future__ import annotations

import itertools
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from trajet import decode
from trajet.labels import LABEL2ID, LABELS


def _rows(*tags_and_probs: dict[str, float]) -> list[list[float]]:
    """Log-probability rows; labels not named share what is left of the mass."""
    out = []
    for named in tags_and_probs:
        rest = (1.0 - sum(named.values())) / (len(LABELS) - len(named))
        out.append([math.log(named.get(label, rest)) for label in LABELS])
    return out


def _tags(ids):
    return [LABELS[i] for i in ids]


def test_valid_argmax_is_kept_as_is():
    rows = _rows({"B-DEPART": 0.9}, {"O": 0.9}, {"B-ARRIVEE": 0.6}, {"I-ARRIVEE": 0.7})
    assert _tags(decode.decode(rows)) == ["B-DEPART", "O", "B-ARRIVEE", "I-ARRIVEE"]


def test_two_departures_become_departure_and_stop():
    # "Paris Lyon Dijon": the model says DEPART twice; the second is read as its next-best role.
    rows = _rows({"B-DEPART": 0.9}, {"B-ARRIVEE": 0.8}, {"B-DEPART": 0.5, "B-VIA": 0.4})
    assert _tags(decode.decode(rows)) == ["B-DEPART", "B-ARRIVEE", "B-VIA"]


def test_the_more_confident_of_two_arrivals_keeps_the_role():
    rows = _rows({"B-ARRIVEE": 0.55, "B-VIA": 0.4}, {"O": 0.9}, {"B-ARRIVEE": 0.95})
    assert _tags(decode.decode(rows)) == ["B-VIA", "O", "B-ARRIVEE"]


def test_inside_tag_without_its_begin_is_repaired():
    # O I-VIA: either the span opens (B-VIA) or the word is O, whichever scores higher overall.
    rows = _rows({"O": 0.9}, {"I-VIA": 0.6, "B-VIA": 0.3})
    assert _tags(decode.decode(rows)) == ["O", "B-VIA"]
    # a span that changes type half-way is not an entity: B-DEPART I-ARRIVEE
    rows = _rows({"B-DEPART": 0.7, "B-ARRIVEE": 0.2}, {"I-ARRIVEE": 0.5, "I-DEPART": 0.45})
    assert _tags(decode.decode(rows)) == ["B-DEPART", "I-DEPART"]


def test_no_entity_ends_on_a_function_word():
    # "les tarifs de la carte Avantage": the model tags `la` as a departure; `la` cannot end a place name.
    words = ["tarifs", "de", "la", "carte"]
    closed = decode.closed_words(words)
    assert closed == [False, True, True, False]
    # a word ending on punctuation cannot end one either (ingestion refuses such a span edge): `St.` of `St.Herlain`
    assert decode.closed_words(["St", ".", "St.", "Herlain", "→", "8h20"]) == [False, True, True, False, True, False]
    rows = _rows({"O": 0.9}, {"O": 0.9}, {"B-DEPART": 0.6}, {"O": 0.8})
    assert _tags(decode.decode(rows)) == ["O", "O", "B-DEPART", "O"]  # without the rule
    assert _tags(decode.decode(rows, closed)) == ["O", "O", "O", "O"]
    # ... but it may begin one or sit inside one: "de [La Rochelle]", "[Paris Gare de Lyon]"
    rows = _rows({"O": 0.9}, {"B-ARRIVEE": 0.7}, {"I-ARRIVEE": 0.7})
    assert _tags(decode.decode(rows, decode.closed_words(["de", "La", "Rochelle"]))) == ["O", "B-ARRIVEE", "I-ARRIVEE"]
    rows = _rows({"B-VIA": 0.8}, {"I-VIA": 0.8}, {"I-VIA": 0.8}, {"I-VIA": 0.8})
    assert _tags(decode.decode(rows, decode.closed_words(["Paris", "Gare", "de", "Lyon"]))) == ["B-VIA"] + ["I-VIA"] * 3
    # nor end the sentence: "... à l'" -> the span stops before, or takes the next-best reading
    rows = _rows({"B-ARRIVEE": 0.9}, {"I-ARRIVEE": 0.6, "O": 0.3})
    assert _tags(decode.decode(rows, [False, True])) == ["B-ARRIVEE", "O"]
    assert not decode.is_valid([LABEL2ID["B-VIA"], LABEL2ID["O"]], [True, False])
    assert decode.is_valid([LABEL2ID["B-VIA"], LABEL2ID["I-VIA"]], [True, False])


def test_empty_sentence():
    assert decode.decode([]) == []


def test_is_valid():
    ids = [LABEL2ID[t] for t in ["B-DEPART", "I-DEPART", "O", "B-VIA", "B-VIA", "B-ARRIVEE"]]
    assert decode.is_valid(ids)
    assert not decode.is_valid([LABEL2ID["I-VIA"]])
    assert not decode.is_valid([LABEL2ID["B-ARRIVEE"], LABEL2ID["O"], LABEL2ID["B-ARRIVEE"]])
    assert not decode.is_valid([LABEL2ID["B-VIA"], LABEL2ID["I-DEPART"]])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(st.floats(-8.0, 0.0), min_size=len(LABELS), max_size=len(LABELS)), min_size=1, max_size=4),
       st.lists(st.booleans(), min_size=4, max_size=4), st.booleans())
def test_viterbi_finds_the_best_valid_sequence(rows, closed, with_closed):
    closed = closed[: len(rows)] if with_closed else None
    best = decode.decode(rows, closed)
    assert decode.is_valid(best, closed)
    got = sum(r[t] for r, t in zip(rows, best, strict=True))
    optimum = max(
        sum(r[t] for r, t in zip(rows, seq, strict=True))
        for seq in itertools.product(range(len(LABELS)), repeat=len(rows))
        if decode.is_valid(seq, closed)
    )
    assert math.isclose(got, optimum, rel_tol=0, abs_tol=1e-9)


def _viterbi_reference(log_probs, closed=None):
    """The search as first written (each move tested for every word), to check the table-driven one against."""
    n_tags = len(LABELS)
    once_bit = {kind: 1 << k for k, kind in enumerate(decode.ONCE)}
    n_states = n_tags * (1 << len(decode.ONCE))
    kinds = [None if t == "O" else t[2:] for t in LABELS]
    score = [-math.inf] * n_states
    score[LABELS.index("O")] = 0.0
    back = []
    for i, row in enumerate(log_probs):
        new, ptr = [-math.inf] * n_states, [-1] * n_states
        must_go_on = closed is not None and i > 0 and closed[i - 1]
        for state in range(n_states):
            if score[state] == -math.inf:
                continue
            prev, used = state % n_tags, state // n_tags
            for t in range(n_tags):
                inside, begin = LABELS[t].startswith("I-"), LABELS[t].startswith("B-")
                if must_go_on and kinds[prev] is not None and not inside:
                    continue
                if inside:
                    if kinds[prev] != kinds[t]:
                        continue
                    nxt = used
                elif begin:
                    bit = once_bit.get(kinds[t], 0)
                    if used & bit:
                        continue
                    nxt = used | bit
                else:
                    nxt = used
                cand, j = score[state] + row[t], nxt * n_tags + t
                if cand > new[j]:
                    new[j], ptr[j] = cand, state
        back.append(ptr)
        score = new
    if closed is not None and log_probs and closed[-1]:
        score = [v if kinds[st % n_tags] is None else -math.inf for st, v in enumerate(score)]
    state = max(range(n_states), key=score.__getitem__)
    tags = []
    for ptr in reversed(back):
        tags.append(state % n_tags)
        state = ptr[state]
    return tags[::-1]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(st.sampled_from([-8.0, -3.0, -1.0, -0.5, 0.0]), min_size=len(LABELS), max_size=len(LABELS)),
                min_size=1, max_size=8),
       st.lists(st.booleans(), min_size=8, max_size=8), st.booleans())
def test_table_driven_viterbi_answers_as_the_first_one_did(rows, closed, with_closed):
    """Same sequence, ties included (few distinct scores make many), as the search that tested each move."""
    closed = closed[: len(rows)] if with_closed else None
    assert decode.viterbi(rows, closed) == _viterbi_reference(rows, closed)
    best = [max(range(len(LABELS)), key=lambda t, r=r: (r[t], -t)) for r in rows]  # first of equal maxima
    assert decode.decode(rows, closed, best=best) == decode.decode(rows, closed)


def test_closed_words_answer_the_same_the_second_time():
    words = ["de", "La", "Rochelle", "St.", "→", "", "l'", "Lyon"]
    assert decode.closed_words(words) == decode.closed_words(words) == [True, True, False, True, True, False, True, False]


def test_no_known_name_ends_on_a_word_decoding_closes():
    """The rule costs nothing on names people use: no gazetteer spelling and no annotated entity in `data/`
    ends on a `NEVER_LAST` word (one-word communes named like a function word, `Y`, are the gazetteer's own
    exception, filtered where names are matched)."""
    from pathlib import Path

    from trajet.lexicon import FUNCTION_WORDS, gazetteer_entries
    from trajet.phrases import normalise_text, read_phrases, tokenize

    assert {"sur", "qui", "je", "votre"} <= decode.NEVER_LAST and "vers" not in decode.NEVER_LAST
    ends = {e[-1] for e in gazetteer_entries() if len(e) > 1 or e[-1] not in FUNCTION_WORDS}
    assert len(ends) > 5000 and not ends & decode.NEVER_LAST
    root = Path(__file__).resolve().parent.parent / "data"
    annotated = [p for f in sorted(root.rglob("*.jsonl")) for p in read_phrases(f)]
    last = {normalise_text(tokenize(p.text[e.start:e.end])[-1].text) for p in annotated for e in p.entities}
    assert len(annotated) > 10000 and len(last) > 1000 and not last & decode.NEVER_LAST
    words = ["Je", "redescends", "de", "Grésanerque", "sur", "Lormoigny", "qui", "Vers"]
    assert decode.closed_words(words) == [True, False, True, False, True, False, True, False]
