import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trajet.labels import ID2LABEL, LABEL2ID, LABELS
from trajet.phrases import (
    DataFileError,
    Entity,
    Phrase,
    PhraseError,
    bio_to_spans,
    conll_to_phrase,
    iter_jsonl,
    iter_lines,
    normalise_text,
    read_conll,
    read_jsonl,
    spans_to_bio,
    tokenize,
    write_conll,
    write_jsonl,
)

DATA = Path(__file__).resolve().parent.parent / "data"


def test_labels_exact():
    assert LABELS == ("O", "B-DEPART", "I-DEPART", "B-ARRIVEE", "I-ARRIVEE", "B-VIA", "I-VIA")
    assert all(ID2LABEL[LABEL2ID[label]] == label for label in LABELS)


@pytest.mark.parametrize(
    "text,expected",
    [
        ("Je vais d'Orléans à Lyon.", ["Je", "vais", "d'", "Orléans", "à", "Lyon", "."]),
        ("jusqu'à L'Isle-Adam", ["jusqu'", "à", "L'", "Isle-Adam"]),
        ("aux Sables-d'Olonne aujourd'hui", ["aux", "Sables-d'Olonne", "aujourd'hui"]),
        ("Paris->Lyon,Dijon?", ["Paris", "->", "Lyon", ",", "Dijon", "?"]),
        ("Villeneuve d’Ascq à 14h30", ["Villeneuve", "d’", "Ascq", "à", "14h30"]),
        ("Paris - Lyon...", ["Paris", "-", "Lyon", "..."]),
    ],
)
def test_tokenize(text, expected):
    toks = tokenize(text)
    assert [t.text for t in toks] == expected
    assert all(text[t.start : t.end] == t.text for t in toks)


def _phrase(text, *marks):
    ents = []
    for surface, label in marks:
        start = text.index(surface)
        ents.append(Entity(start, start + len(surface), label))
    return Phrase(text, tuple(sorted(ents)))


def test_spans_to_bio_and_back():
    p = _phrase("De Paris Gare de Lyon à L'Isle-Adam via Saint-Étienne", ("Paris Gare de Lyon", "DEPART"),
                ("L'Isle-Adam", "ARRIVEE"), ("Saint-Étienne", "VIA"))
    tokens, tags = p.tokens_and_tags()
    assert tags == ["O", "B-DEPART", "I-DEPART", "I-DEPART", "I-DEPART", "O", "B-ARRIVEE", "I-ARRIVEE", "O", "B-VIA"]
    assert tuple(bio_to_spans(tokens, tags)) == p.entities
    assert p.trip() == {"departure": "Paris Gare de Lyon", "arrival": "L'Isle-Adam", "via": ["Saint-Étienne"]}


def test_span_off_token_boundary_is_refused():
    with pytest.raises(PhraseError, match="word boundaries"):
        spans_to_bio("de Parisiens", [Entity(3, 8, "DEPART")])
    with pytest.raises(PhraseError, match="overlaps"):
        spans_to_bio("de Paris", [Entity(3, 8, "DEPART"), Entity(3, 8, "VIA")])
    with pytest.raises(PhraseError, match="unknown label"):
        spans_to_bio("de Paris", [Entity(3, 8, "CITY")])


def test_malformed_bio_strict_and_lenient():
    toks = tokenize("vers Saint Malo")
    with pytest.raises(PhraseError, match="malformed BIO"):
        bio_to_spans(toks, ["O", "I-ARRIVEE", "I-ARRIVEE"])
    assert bio_to_spans(toks, ["O", "I-ARRIVEE", "I-ARRIVEE"], strict=False) == [Entity(5, 15, "ARRIVEE")]


def test_jsonl_and_conll_round_trip(tmp_path):
    phrases = [
        _phrase("je pars d'Orléans pour Lyon, en passant par Dijon.", ("Orléans", "DEPART"), ("Lyon", "ARRIVEE"),
                ("Dijon", "VIA")),
        _phrase("Quel temps fait-il à Nice ?"),
    ]
    write_jsonl(tmp_path / "a.jsonl", phrases)
    assert read_jsonl(tmp_path / "a.jsonl") == phrases
    write_conll(tmp_path / "a.conll", phrases)
    back = read_conll(tmp_path / "a.conll")
    assert [p.spans_text() for p in back] == [p.spans_text() for p in phrases]


def test_bad_lines_name_file_line_and_reason(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"text": "de Paris à Lyon", "entities": []}\n{"text": "x", "entities": [{"start": 0}]}\n')
    with pytest.raises(DataFileError) as exc:
        read_jsonl(f)
    assert exc.value.line == 2 and "bad.jsonl:2" in str(exc.value) and "start, end and label" in exc.value.reason
    f.write_bytes(b'{"text": "ok"}\n{"text": "\xff"}\n')
    with pytest.raises(DataFileError, match="not UTF-8") as exc:
        read_jsonl(f)
    assert exc.value.line == 2 and "byte 25" in exc.value.reason  # offset in the file, though read line by line
    c = tmp_path / "bad.conll"
    c.write_text("de\tO\nParis\tI-DEPART\n")
    with pytest.raises(DataFileError, match="bad.conll:1: malformed BIO"):
        read_conll(c)
    c.write_text("de\tO\nParis\n")
    with pytest.raises(DataFileError, match="token<TAB>tag"):
        read_conll(c)


def test_conll_count_mismatch():
    with pytest.raises(PhraseError, match="count mismatch"):
        conll_to_phrase(["a", "b"], ["O"])


def test_normalise_text():
    assert normalise_text("  Je vais à  SAINT-ÉTIENNE’s ") == "je vais a saint-etienne's"


_alpha = st.sampled_from(list("abcdeéèàôçxyzABCÉ"))
_word = st.text(_alpha, min_size=1, max_size=8)
_name = st.lists(_word, min_size=1, max_size=3).map(lambda ws: "-".join(ws))
_filler = st.sampled_from(["de", "à", "je", "vais", "d'", "l'", "jusqu'à", ",", ".", "->", "via", "aux", "?", "14h30"])


@st.composite
def _phrases(draw):
    parts = draw(st.lists(st.one_of(_filler.map(lambda f: (f, None)),
                                    st.tuples(_name, st.sampled_from(["DEPART", "ARRIVEE", "VIA"]))),
                          min_size=1, max_size=12))
    text, ents = "", []
    for surface, label in parts:
        sep = "" if (not text or text.endswith("'")) else " "
        if sep == "" and text and not surface[0].isalpha():
            sep = " "  # an elision is only glued to a following word
        text += sep
        start = len(text)
        text += surface
        if label:
            ents.append(Entity(start, len(text), label))
    return Phrase(text, tuple(ents))


@settings(max_examples=300, deadline=None)
@given(_phrases())
def test_round_trip_property(phrase):
    tokens, tags = spans_to_bio(phrase.text, phrase.entities)
    assert tuple(bio_to_spans(tokens, tags)) == phrase.entities
    back = conll_to_phrase([t.text for t in tokens], tags)
    # CoNLL keeps tokens, not spacing: a drawn name made of two gazetteer places (`Aze-Aze`) comes back as
    # its tokens joined by spaces, like any word the splitter cuts.
    spaced = [(e.label, " ".join(t.text for t in tokens if e.start <= t.start and t.end <= e.end))
              for e in phrase.entities]
    assert back.spans_text() == spaced


def _data_files():
    return sorted(p for p in DATA.rglob("*.jsonl"))


def test_round_trip_on_every_phrase_in_data():
    files = _data_files()
    checked = 0
    for f in files:
        for phrase in read_jsonl(f):
            tokens, tags = phrase.tokens_and_tags()
            assert tuple(bio_to_spans(tokens, tags)) == phrase.entities, (f, phrase.text)
            checked += 1
    if files:
        assert checked > 0


def test_markup_round_trip():
    from trajet.phrases import parse_markup, to_markup

    src = "de [Paris Gare de Lyon|D] jusqu'à [L'Isle-Adam|A] via [st etienne|V] et [bordo|V] !"
    p = parse_markup(src, group="typos")
    assert p.spans_text() == [("DEPART", "Paris Gare de Lyon"), ("ARRIVEE", "L'Isle-Adam"),
                              ("VIA", "st etienne"), ("VIA", "bordo")]
    assert p.meta == {"group": "typos"}
    assert to_markup(p) == src
    with pytest.raises(PhraseError):
        parse_markup("de [Paris|X] à Lyon")
    with pytest.raises(PhraseError, match="word boundaries"):
        parse_markup("de [Par|D]is")


def test_line_separator_inside_json_string_stays_one_row(tmp_path):
    f = tmp_path / "ls.jsonl"
    f.write_text('{"text": "de Paris\u2028à Lyon", "entities": [{"start": 3, "end": 8, "label": "DEPART"}]}\n',
                 encoding="utf-8")
    rows = read_jsonl(f)
    assert len(rows) == 1 and rows[0].spans_text() == [("DEPART", "Paris")]


def _boundaries_agree(text: str) -> None:
    from trajet.phrases import is_token_end, is_token_start

    tokens = tokenize(text)
    starts, ends = {t.start for t in tokens}, {t.end for t in tokens}
    for i in range(-1, len(text) + 2):
        assert is_token_start(text, i) == (i in starts), (text, i)
        assert is_token_end(text, i) == (i in ends), (text, i)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="aéZ9'’- ,.\t\n>=d-lLjusqu", max_size=40))
def test_local_boundary_checks_agree_with_the_tokenizer(text):
    _boundaries_agree(text)


def test_local_boundary_checks_agree_on_the_data():
    from trajet.phrases import read_phrases

    data = Path(__file__).resolve().parent.parent / "data"
    phrases = list(read_phrases(data / "phrases" / "test.jsonl"))[:400] + list(read_phrases(data / "challenge.jsonl"))
    for phrase in phrases:
        _boundaries_agree(phrase.text)
    _boundaries_agree("Je pars d'Orléans jusqu'à L'Isle-Adam (via Lyon), Paris->Lyon... aujourd'hui")


def test_tokenize_cuts_as_the_scan_does():
    """`tokenize` writes out `scan_spans`'s loop (the one `is_token_start` uses): the same tokens on every sentence of
    the challenge set and glued, hyphenated or elided words."""
    from trajet.phrases import default_splitter, iter_lines
    from trajet.words import scan_spans as _scan

    texts = [json.loads(line)["text"] for _, line in iter_lines(Path(__file__).parent.parent / "data" / "challenge.jsonl")]
    texts += ["deLyon à Paris-Lyon via jusqu'àNice", "d'Orléans -> L'Isle-sur-la-Sorgue...", "Saint-Étienne, aParis !"]
    for text in texts:
        spans = list(_scan(text, 0, len(text), default_splitter()))
        assert [(t.start, t.end, t.text) for t in tokenize(text)] == [(a, b, text[a:b]) for a, b in spans]


def test_jsonl_lines_read_as_written(tmp_path):
    """Read a line at a time: a BOM, CRLF endings, blank lines, U+2028 inside a string and no final newline
    all give the rows the file holds, numbered as an editor numbers them."""
    f = tmp_path / "a.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"text": "de Paris \xc3\xa0 Lyon"}\r\n\r\n{"text": "a\xe2\x80\xa8b"}\n{"text": "x"}')
    assert [(n, line) for n, line in iter_lines(f)] == [
        (1, '{"text": "de Paris \u00e0 Lyon"}'), (3, '{"text": "a\u2028b"}'), (4, '{"text": "x"}')]
    assert [p.text for p in iter_jsonl(f)] == ["de Paris \u00e0 Lyon", "a\u2028b", "x"]
