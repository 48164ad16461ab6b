"""Training-time augmentation: rare context words are swapped for unseen pseudo-words, epoch after epoch.

Why: the generator writes its sentences with about 2,000 distinct context words but thousands of place
names, so a small encoder trained from scratch learns a shortcut, "a word I have not seen is a place", and
tags `bagage`, `couchettes` or `kel` in real requests. Replacing rare context words (never the trip cues:
`de`, `via`, `escale`, ... are among the frequent ones, and those are kept) by pseudo-words that it has never
seen forces the decision onto the sentence's structure, which is what carries over to hand-written French.
The tags do not change: a replaced word is an `O` word and stays `O`.

The same shortcut exists on the other side: the model memorises the place names of its training sentences,
and a name it never saw (most names users type: France has 35,000 communes) is found less often even when
the gazetteer marks it (measured on the generated test split, whose places are held out: recall 0.98 on names
seen in training, 0.96 on unseen ones). So a share of the places in augmented sentences become pseudo-places:
each name part is spliced from two parts of other training place names (`Saint-Genès-de-Fronsac` ->
`Saint-Gerlac-de-Monvieux`), connectors (`Saint`, `sur`, `le`, `gare`...) and the tags kept, and the span keeps
the gazetteer hint the real name had. The model then has to find a place it cannot have memorised from its
hint and its context, as it must for an unseen one. Pseudo-places come from training names only, never from
the gazetteer, so the held-out test places stay unseen.
"""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trajet.encoding import encode_words
from trajet.lexicon import BEGINS, PLACE_TYPES, drop_spans, match_case
from trajet.phrases import Phrase, Token, bio_to_spans
from trajet.token_cache import TokenCache

KEEP_MOST_FREQUENT = 200  # the cue words (de, à, via, vers, depuis, correspondance, escale...) rank below this
WORD_PROB = 0.35  # share of the rare context words of an augmented sentence that are replaced
# Trip cues that must keep their form even if a future corpus makes them rare.
CUES = frozenset(
    "de du des à au aux en par pour vers via depuis entre et jusqu jusqu' passant partant partir aller arrivée "
    "arrivee départ depart destination direction escale étape etape arrêt arret changement correspondance "
    "correspondances retour gare chez".split()
)


# Parts of a place name that carry its shape, not its identity: kept when a pseudo-place is spliced.
PLACE_CONNECTORS = frozenset(
    "saint sainte saints saintes st ste sur sous lès lez les le la l' d' de du des en et aux au près gare ville "
    "tgv aéroport aeroport porte".split()
)
_PART_RE = re.compile(r"(\w+)")


def _is_word(text: str) -> bool:
    return len(text) >= 3 and text.replace("-", "").replace("'", "").isalpha()


def words_and_tags(phrase: Phrase) -> tuple[list[str], list[str]]:
    tokens, tags = phrase.tokens_and_tags()
    return [t.text for t in tokens], tags


def rare_context_words(
    items: Sequence[tuple[Sequence[str], Sequence[str]]], keep: int = KEEP_MOST_FREQUENT
) -> tuple[frozenset[str], list[str]]:
    """(the frequent context words to keep, the rare ones to splice pseudo-words from), lower-cased, counted
    over (words, tags) pairs."""
    counts: Counter[str] = Counter()
    for words, tags in items:
        for word, tag in zip(words, tags, strict=True):
            if tag == "O" and _is_word(word):
                counts[word.lower()] += 1
    frequent = frozenset(w for w, _ in counts.most_common(keep)) | CUES
    rare = sorted(w for w in counts if w not in frequent)
    return frequent, rare


def pseudo_word(rng: random.Random, pool: Sequence[str]) -> str:
    """The head of one rare word joined to the tail of another: French-looking, and almost never a real word."""
    a, b = rng.choice(pool), rng.choice(pool)
    cut_a = rng.randint(1, max(1, len(a) - 1))
    cut_b = rng.randint(1, max(1, len(b) - 1))
    word = a[:cut_a] + b[cut_b:]
    return word if len(word) >= 3 else word + b[:2]


def augment_words(
    rng: random.Random,
    words: Sequence[str],
    tags: Sequence[str],
    frequent: frozenset[str],
    pool: Sequence[str],
    word_prob: float = WORD_PROB,
) -> list[str]:
    """Rare `O` words replaced by pseudo-words with probability `word_prob`; tags are unchanged."""
    out = list(words)
    if not pool:
        return out
    for i, (word, tag) in enumerate(zip(words, tags, strict=True)):
        if tag == "O" and _is_word(word) and word.lower() not in frequent and rng.random() < word_prob:
            out[i] = match_case(word, pseudo_word(rng, pool))
    return out


def slip_words(rng: random.Random, words: Sequence[str], tags: Sequence[str], prob: float) -> list[str]:
    """Context words of 4+ letters get one keyboard slip with probability `prob` (`biillet`, `verrs`,
    `horaiires`): people mistype the words around the places too, and a misspelled context word is still no
    place. Tags are unchanged."""
    if prob <= 0:
        return list(words)
    from trajet.generate import typo

    return [typo(rng, w) if tag == "O" and len(w) >= 4 and w.isalpha() and rng.random() < prob else w
            for w, tag in zip(words, tags, strict=True)]


def place_parts(items: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[str]:
    """Lower-cased name parts (between hyphens and apostrophes) of the tagged places, connectors excepted: the
    material pseudo-places are spliced from."""
    parts: set[str] = set()
    for words, tags in items:
        for word, tag in zip(words, tags, strict=True):
            if tag != "O":
                parts.update(p.lower() for p in _PART_RE.findall(word) if len(p) >= 3 and p.lower() not in PLACE_CONNECTORS)
    return sorted(parts)


def pseudo_place_word(rng: random.Random, word: str, pool: Sequence[str]) -> str:
    """`word` (one token of a place name) with each name part replaced by a spliced pseudo-part of the same
    case pattern; hyphens, apostrophes and connectors stay, so `Villeneuve-d'Ascq` keeps its shape."""
    def swap(m: re.Match[str]) -> str:
        part = m.group()
        if len(part) < 3 or part.lower() in PLACE_CONNECTORS or part.isdigit():
            return part
        for _ in range(4):  # a splice of a word with itself can give the word back
            new = pseudo_word(rng, pool)
            if new != part.lower():
                break
        return match_case(part, new)

    return _PART_RE.sub(swap, word)


def place_spans(tags: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) word indices of the tagged spans, read leniently as `phrases.bio_to_spans` reads them."""
    positions = [Token("", i, i + 1) for i in range(len(tags))]
    return [(e.start, e.end) for e in bio_to_spans(positions, tags, strict=False)]


def swap_places(
    rng: random.Random,
    words: Sequence[str],
    spans: Sequence[tuple[int, int]],
    pool: Sequence[str],
    prob: float,
    shape: Sequence[str] | None = None,
) -> tuple[list[str], list[tuple[int, int]]]:
    """Each span becomes a pseudo-place with probability `prob`, spliced on the `shape` words (the sentence
    before other augmentations; default `words`); returns the words and the swapped spans (word counts, and so
    tags, are unchanged)."""
    shape = words if shape is None else shape
    out = list(words)
    swapped: list[tuple[int, int]] = []
    if not pool or prob <= 0:
        return out, swapped
    for start, end in spans:
        if rng.random() >= prob:
            continue
        for i in range(start, end):
            out[i] = pseudo_place_word(rng, shape[i], pool)
        if out[start:end] != list(shape[start:end]):
            swapped.append((start, end))
    return out, swapped


def untagged_places(
    features: Sequence[int], tags: Sequence[str], words: Sequence[str], frequent: frozenset[str]
) -> list[tuple[int, int]]:
    """Exact gazetteer matches on `O` words (where someone lives, a club, a town in a no-trip sentence, a person
    named like a town), frequent context words excepted (`vers`, `pars` are communes too). Swapping them as well
    keeps pseudo-places from meaning "part of the trip": the context must decide, as for real names."""
    from trajet.lexicon import BEGIN, INSIDE

    spans: list[tuple[int, int]] = []
    i = 0
    while i < len(features):
        if features[i] != BEGIN:
            i += 1
            continue
        j = i + 1
        while j < len(features) and features[j] == INSIDE:
            j += 1
        if all(t == "O" for t in tags[i:j]) and not any(w.lower() in frequent for w in words[i:j]):
            spans.append((i, j))
        i = j
    return spans


FILLER_WORDS = (2, 30)  # a filler's word count: a greeting at least, and short enough to stay cheap
SEPARATORS = (".", ".", ",", "!", "?", "...", "")
SENTENCE_ENDS = frozenset({".", "!", "?", "...", "…"})


def filler_pieces(items: Sequence[tuple[Sequence[str], Sequence[str]]],
                  hints: Sequence[Sequence[int]] | None) -> list[tuple[str, ...]]:
    """The sentences of the training messages that name nothing: no entity and no word the gazetteer reads as a
    place ("Bonjour madame .", "Pouvez-vous m' aider ?", "Les enfants ont 3 , 7 et 11 ans ."), each once.

    Why no place: a sentence that names a town means something beside a trip that it does not mean alone
    ("Je suis à Routot ." is no trip alone and the departure before "Un billet pour Caen"); its annotation, made
    for the message it came from, cannot say."""
    lo, hi = FILLER_WORDS
    seen: dict[tuple[str, ...], None] = {}
    for (words, tags), hint in zip(items, hints if hints is not None else [None] * len(items), strict=True):
        for start, end in _sentences(words):
            span = range(start, end)
            if (lo <= len(span) <= hi and all(tags[k] == "O" for k in span)
                    and not (hint is not None and any(hint[k] in PLACE_TYPES for k in span))
                    and any(c.isalpha() for k in span for c in words[k])):
                seen.setdefault(tuple(words[start:end]), None)
    return list(seen)


def _sentences(words: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) of each sentence, its closing punctuation included."""
    out: list[tuple[int, int]] = []
    start = i = 0
    while i < len(words):
        if words[i] in SENTENCE_ENDS:
            i += 1
            while i < len(words) and words[i] in SENTENCE_ENDS:
                i += 1
            out.append((start, i))
            start = i
        else:
            i += 1
    if start < len(words):
        out.append((start, len(words)))
    return out


def compose(
    rng: random.Random,
    sentence: tuple[Sequence[str], Sequence[str], Sequence[int]],
    fillers: Sequence[tuple[str, ...]],
) -> tuple[list[str], list[str], list[int]]:
    """The sentence inside a longer message: a filler piece before it (two times in three) or after it, joined by
    a random separator.

    Why: people write several sentences to a chatbot ("Bonjour, ici Léa. Nous partons ... de Lyon à Nice.
    Merci"), and a model that only saw one-sentence requests reads the chatter as part of the trip or loses the
    trip in it. Real sentences, not written ones: the chatter comes from the training messages themselves (the
    hand-written ones among them), so no new template is learnt. Tags and gazetteer hints follow the words; the
    filler adds only `O` words and no hint."""
    words, tags, hint = sentence
    filler = list(rng.choice(fillers))
    first, second = (filler, list(words)) if rng.random() < 2 / 3 else (list(words), filler)
    sep = rng.choice(SEPARATORS)
    join = [sep] if sep and first and first[-1] not in SENTENCE_ENDS | {",", ";", ":"} else []
    new_words = [*first, *join, *second]
    at = len(first) + len(join) if first is filler else 0  # where the sentence's own words start
    new_tags = ["O"] * len(new_words)
    new_tags[at:at + len(words)] = tags
    new_hints: list[int] = []
    if hint:
        new_hints = [0] * len(new_words)
        new_hints[at:at + len(words)] = hint
    return new_words, new_tags, new_hints


class AugmentedPhrases:
    """A map-style dataset: each access re-draws the augmentation of a share `prob` of the sentences.

    The un-augmented encoding of every sentence is kept, so `prob=0` is exactly the plain dataset. `phrases` is read
    once, in order; with `cache_path` what is kept per sentence goes to a memory-mapped file there
    (`trajet.token_cache`) instead of lists, for a training set that streams from a snapshot.
    """

    def __init__(
        self,
        phrases: Sequence[Phrase],
        tokenizer: Any,
        max_length: int,
        *,
        prob: float,
        seed: int,
        word_prob: float = WORD_PROB,
        lexicon: Any = None,
        hint_dropout: float = 0.0,
        place_prob: float = 0.0,
        typo_prob: float = 0.0,
        untagged_places: bool = False,
        compose_prob: float = 0.0,
        cache_path: Path | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.prob = prob
        self.word_prob = word_prob
        self.rng = random.Random(seed)
        self.lexicon = lexicon
        self.hint_dropout = hint_dropout
        self.place_prob = place_prob
        self.typo_prob = typo_prob
        self.untagged_places = untagged_places
        self.compose_prob = compose_prob
        # The hints of each sentence as written: its plain encoding, the spans pseudo-places keep, the untagged
        # names to swap; computed once, since the one-slip lookup is the costly part of an augmented item.
        rows = (self._row(phrase) for phrase in phrases)
        self.cache: TokenCache | None = None
        if cache_path is None:
            self.items, hints, self.plain = [], [], []
            for words, tags, features, plain in rows:
                self.items.append((words, tags))
                hints.append(features)
                self.plain.append(plain)
            self.hints: Sequence[Any] | None = hints if lexicon is not None else None
        else:
            self.cache = TokenCache(cache_path, rows)
            self.items, self.hints, self.plain = self.cache.items, self.cache.hints, self.cache.plain
        self.frequent, self.pool = rare_context_words(self.items)
        self.place_pool = place_parts(self.items) if place_prob > 0 else []
        self.fillers = filler_pieces(self.items, self.hints) if compose_prob > 0 else []

    def _row(self, phrase: Phrase) -> tuple[list[str], list[str], list[int] | None, dict[str, list[int]]]:
        words, tags = words_and_tags(phrase)
        model_words, features = self.lexicon.read(words) if self.lexicon is not None else (words, None)
        return words, tags, features, encode_words(model_words, tags, self.tokenizer, self.max_length, features)

    def _features(
        self,
        rng: random.Random,
        words: Sequence[str],
        dropout: float = 0.0,
        original: Sequence[int] = (),
        swapped: Sequence[tuple[int, int]] = (),
    ) -> list[int] | None:
        """Gazetteer features of these words; a pseudo-place (a `swapped` span) keeps the `original` features
        (those of the sentence as written), since it stands for a real place the gazetteer would know as well. In
        an augmented sentence each matched place then loses its hint with probability `dropout`, as a place missing
        from the gazetteer would."""
        if self.lexicon is None:
            return None
        features = self.lexicon.word_features(words)
        for start, end in swapped:
            features[start:end] = original[start:end]
        if dropout <= 0:
            return features
        return drop_spans(features, [rng.random() >= dropout for f in features if f in BEGINS])

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        return self.draw(index, self.rng)

    def draw(self, index: int, rng: random.Random) -> dict[str, list[int]]:
        """Sentence `index`, augmented or plain, with every random choice taken from `rng`."""
        if self.prob <= 0 or rng.random() >= self.prob:
            return self.plain[index]
        words, tags = self.items[index]
        hints = self.hints[index] if self.hints is not None else []
        if self.fillers and rng.random() < self.compose_prob:
            words, tags, hints = compose(rng, (words, tags, hints), self.fillers)
        new_words = augment_words(rng, words, tags, self.frequent, self.pool, self.word_prob)
        new_words = slip_words(rng, new_words, tags, self.typo_prob)
        spans = place_spans(tags)
        if self.untagged_places and hints:
            spans += untagged_places(hints, tags, words, self.frequent)
        new_words, swapped = swap_places(rng, new_words, spans, self.place_pool, self.place_prob, shape=words)
        features = self._features(rng, new_words, self.hint_dropout, hints, swapped)
        if self.lexicon is not None:  # respelled after the swaps, so a pseudo-place is read as drawn
            new_words = self.lexicon.respell(new_words, features)
        return encode_words(new_words, tags, self.tokenizer, self.max_length, features)


class GroupedEpochs:
    """Serves augmented sentences in batches of similar length, drawn anew each epoch.

    Why: grouping batches by length (the Trainer's `group_by_length`) needs the lengths before the batch is cut,
    but an augmented sentence's length is only known once it is drawn (pseudo-words and pseudo-places fall into
    more sub-words than the words they replace). Grouped on one draw and served another, the `mini` preset's
    batches were 45 % padding on top of 20 sub-words a sentence, and the training step's cost is its padded
    tokens. So this dataset draws first and cuts after: each epoch it shuffles the sentences, draws a group of
    `group_batches` batches at a time, sorts the group by drawn length and cuts it into batches, in random batch
    order (the last, short batch of the epoch stays last so batches stay aligned with the loader's).

    Item `i` is the `i`-th of the epoch's plan: read it with a sequential sampler and `batch_size` items per batch.
    Everything random comes from (seed, epoch, group), so the items do not depend on which process serves them:
    the main process, a data-loader worker, or each of several (each then draws the groups it touches). A process
    counts epochs itself (an index not above the last one it served starts a new epoch), so a loader worker must
    be persistent, or it would replay epoch 0 each epoch.
    """

    def __init__(self, source: AugmentedPhrases, batch_size: int, seed: int, group_batches: int = 50) -> None:
        if batch_size < 1 or group_batches < 1:
            raise ValueError("batch_size and group_batches must be positive")
        self.source = source
        self.batch_size = batch_size
        self.group_size = batch_size * group_batches
        self.seed = seed
        self.epoch = 0
        self._last = -1
        self._order: tuple[int, list[int]] | None = None
        self._group: tuple[tuple[int, int], list[dict[str, list[int]]]] | None = None

    def __len__(self) -> int:
        return len(self.source)

    def order(self, epoch: int) -> list[int]:
        """The epoch's shuffled sentence indices."""
        if self._order is None or self._order[0] != epoch:
            indices = list(range(len(self.source)))
            random.Random(f"{self.seed}:order:{epoch}").shuffle(indices)
            self._order = (epoch, indices)
        return self._order[1]

    def group(self, epoch: int, number: int) -> list[dict[str, list[int]]]:
        """Group `number` of `epoch`, drawn, sorted by length, cut into batches and shuffled batch-wise."""
        if self._group is not None and self._group[0] == (epoch, number):
            return self._group[1]
        rng = random.Random(f"{self.seed}:group:{epoch}:{number}")
        members = self.order(epoch)[number * self.group_size : (number + 1) * self.group_size]
        items = sorted((self.source.draw(i, rng) for i in members), key=lambda item: -len(item["input_ids"]))
        batches = [items[i : i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        tail = [batches.pop()] if len(batches[-1]) < self.batch_size else []
        rng.shuffle(batches)
        planned = [item for batch in batches + tail for item in batch]
        self._group = ((epoch, number), planned)
        return planned

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        if index <= self._last:
            self.epoch += 1
        self._last = index
        number, offset = divmod(index, self.group_size)
        return self.group(self.epoch, number)[offset]
