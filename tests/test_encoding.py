"""trajet.encoding: the one alignment of words and sub-tokens that training and the predictor share."""

from __future__ import annotations

from trajet.encoding import IGNORED, align_labels, encode_words, first_subtokens
from trajet.labels import LABEL2ID


class _Encoding(dict):
    def __init__(self, ids: list[int], word_ids: list[int | None]) -> None:
        super().__init__(input_ids=ids, attention_mask=[1] * len(ids))
        self._word_ids = word_ids

    def word_ids(self) -> list[int | None]:
        return self._word_ids


class _Tokenizer:
    """Splits each word into len(word) // 3 + 1 pieces between <s> and </s>, like a sub-word tokenizer would."""

    def __call__(self, words, *, is_split_into_words, truncation, max_length):
        assert is_split_into_words
        word_ids: list[int | None] = [None]
        for i, w in enumerate(words):
            word_ids += [i] * (len(w) // 3 + 1)
        word_ids.append(None)
        if truncation and len(word_ids) > max_length:
            word_ids = word_ids[: max_length - 1] + [None]
        return _Encoding(list(range(len(word_ids))), word_ids)


def test_first_subtokens_per_word_and_missing_words():
    assert first_subtokens([None, 0, 0, 1, 2, 2, None], 3) == [1, 3, 4]
    assert first_subtokens([None, 0, 2, None], 3) == [1, -1, 2]  # word 1 folded to nothing


def test_labels_sit_on_the_first_sub_token_of_each_word():
    labels = align_labels([None, 0, 0, 1, 2, 2, None], ["B-DEPART", "O", "B-ARRIVEE"])
    assert labels == [IGNORED, LABEL2ID["B-DEPART"], IGNORED, LABEL2ID["O"], LABEL2ID["B-ARRIVEE"], IGNORED, IGNORED]


def test_encode_words_truncates_and_types_every_piece():
    words, tags = ["de", "Zanzibarville", "à", "Lyon"], ["O", "B-DEPART", "O", "B-ARRIVEE"]
    enc = encode_words(words, tags, _Tokenizer(), 64, features=[0, 1, 0, 1])
    labelled = [lab for lab in enc["labels"] if lab != IGNORED]
    assert labelled == [LABEL2ID[t] for t in tags]
    assert len(enc["token_type_ids"]) == len(enc["input_ids"]) == len(enc["labels"])
    cut = encode_words(words, tags, _Tokenizer(), 4)  # <s>, de, two pieces of Zanzibarville... then </s>
    assert [lab for lab in cut["labels"] if lab != IGNORED] == [LABEL2ID["O"], LABEL2ID["B-DEPART"]]
