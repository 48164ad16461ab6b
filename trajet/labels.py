"""The label set is a contract shared by the data, the model head and every consumer of predictions."""

from __future__ import annotations

ENTITY_TYPES: tuple[str, ...] = ("DEPART", "ARRIVEE", "VIA")
LABELS: tuple[str, ...] = ("O", "B-DEPART", "I-DEPART", "B-ARRIVEE", "I-ARRIVEE", "B-VIA", "I-VIA")
NUM_LABELS = len(LABELS)
LABEL2ID: dict[str, int] = {label: i for i, label in enumerate(LABELS)}
ID2LABEL: dict[int, str] = dict(enumerate(LABELS))


def is_valid_tag(tag: str) -> bool:
    return tag in LABEL2ID


def entity_of(tag: str) -> str | None:
    """Entity type of a BIO tag, None for O."""
    return None if tag == "O" else tag[2:]
