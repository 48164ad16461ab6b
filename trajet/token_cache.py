"""The training set's tokenized cache on disk: an Arrow IPC file, memory-mapped, read a row at a time.

Why: augmentation re-draws sentences from their words, tags and gazetteer hints each epoch, and serves the plain
encoding of the rest, so training keeps all four for every sentence. As Python lists that is a few KB a sentence:
fine for the 10,000 sentences of a nightly CPU run, gigabytes for a million on a GPU host. Written once as Arrow
record batches and memory-mapped, the pages are the operating system's to keep or drop, and the process holds
one batch while writing and one row while reading, whatever the number of sentences. The values are the same
Python lists the in-memory path keeps, so a model trained either way is the same model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

WRITE_ROWS = 10_000  # rows held while the file is written
ENCODING_KEYS = ("input_ids", "attention_mask", "labels", "token_type_ids")


def _schema() -> Any:
    import pyarrow as pa

    ints = pa.list_(pa.int32())
    return pa.schema([
        ("words", pa.list_(pa.string())), ("tags", pa.list_(pa.string())),
        ("hints", ints), *((key, ints) for key in ENCODING_KEYS), ("closed", pa.list_(pa.bool_())),
    ])


class TokenCache:
    """Rows of (words, tags, hints or None, plain encoding), written once from an iterable, then read by index.

    `items`, `hints` and `plain` are sequences shaped like the lists `augment.AugmentedPhrases` keeps."""

    def __init__(self, path: Path, rows: Iterable[tuple[Any, ...]]):
        """`rows`: (words, tags, hints or None, plain encoding[, closed-word flags]) per sentence."""
        import pyarrow as pa
        import pyarrow.ipc as ipc

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        schema = _schema()
        with pa.OSFile(str(self.path), "wb") as sink, ipc.new_file(sink, schema) as writer:
            columns: dict[str, list[Any]] = {name: [] for name in schema.names}
            for words, tags, hints, plain, *closed in rows:
                columns["closed"].append(closed[0] if closed else None)
                columns["words"].append(words)
                columns["tags"].append(tags)
                columns["hints"].append(hints)
                for key in ENCODING_KEYS:
                    columns[key].append(plain.get(key))
                if len(columns["words"]) >= WRITE_ROWS:
                    writer.write_batch(pa.record_batch(columns, schema=schema))
                    columns = {name: [] for name in schema.names}
            if columns["words"] or writer.stats.num_record_batches == 0:
                writer.write_batch(pa.record_batch(columns, schema=schema))
        self._open()

    def _open(self) -> None:
        import pyarrow as pa
        import pyarrow.ipc as ipc

        schema = _schema()
        self.table = ipc.open_file(pa.memory_map(str(self.path), "r")).read_all()
        self.n = self.table.num_rows
        self.has_hints = self.n > 0 and self.table.column("hints").null_count < self.n
        self._columns = {name: self.table.column(name) for name in schema.names}
        self.items = _Rows(self, ("words", "tags"), _pair)
        self.hints = _Rows(self, ("hints",), _first) if self.has_hints else None
        self.plain = _Rows(self, ENCODING_KEYS, _encoding)
        self.closed = _Rows(self, ("closed",), _first)

    def __len__(self) -> int:
        return self.n

    def row(self, names: Sequence[str], index: int) -> list[Any]:
        return [self._columns[name][index].as_py() for name in names]

    def rows(self, names: Sequence[str]) -> Iterator[list[Any]]:
        """Every row's `names`, a record batch at a time (a pass over the file without one lookup per row)."""
        for batch in self.table.select(list(names)).to_batches():
            yield from zip(*(batch.column(i).to_pylist() for i in range(len(names))), strict=True)

    def __getstate__(self) -> dict[str, Any]:
        # A data-loader worker started by pickling maps the file again rather than receiving a copy of it.
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = state["path"]
        self._open()

    def close(self) -> None:
        self.table = None
        self._columns = {}
        self.path.unlink(missing_ok=True)


class Ordered(Sequence[Any]):
    """`rows` read in the order of `order` (indices into it): the validation set sorted by length, on disk."""

    def __init__(self, rows: Sequence[Any], order: Sequence[int]) -> None:
        self.rows, self.order = rows, order

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return self.rows[self.order[index]]


def _pair(row: Sequence[Any]) -> tuple[Any, Any]:
    return row[0], row[1]


def _first(row: Sequence[Any]) -> Any:
    return row[0]


def _encoding(row: Sequence[Any]) -> dict[str, list[int]]:
    return {key: value for key, value in zip(ENCODING_KEYS, row, strict=True) if value is not None}


class _Rows(Sequence[Any]):
    """A read-only sequence over some columns of the cache, each row shaped by `shape`."""

    def __init__(self, cache: TokenCache, names: Sequence[str], shape: Any) -> None:
        self.cache, self.names, self.shape = cache, tuple(names), shape

    def __len__(self) -> int:
        return len(self.cache)

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.shape(self.cache.row(self.names, index))

    def __iter__(self) -> Iterator[Any]:
        for row in self.cache.rows(self.names):
            yield self.shape(list(row))
