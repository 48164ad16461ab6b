"""Request coalescing: concurrent requests to one model share its forward passes.

Fast tokenizers are not safe to call from several threads at once ("Already borrowed"), so a model runs
one call at a time. Rather than making concurrent requests wait in line for one forward pass each, the
thread that gets the model takes every request queued so far and tags them in one batch.
"""

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from trajet.predict import Predictor


class _Request:
    __slots__ = ("texts", "results", "error", "done")

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.results: list[dict[str, Any]] | None = None
        self.error: BaseException | None = None
        self.done = False


class Coalescer:
    """Runs one model's predictions one batch at a time, merging the requests that queued meanwhile.

    Fast tokenizers are not safe to call from several threads at once ("Already borrowed"), so a model runs
    one call at a time. Rather than making concurrent requests wait in line for one forward pass each, the
    thread that gets the model takes every request queued so far (up to `max_texts` texts) and tags them in
    one batch: under load, a batch of short texts costs far less than as many single passes. No extra
    thread: whichever request finds the model idle works for the others, and each returns once its part
    is done.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()  # guards _queue and _busy
        self._queue: list[_Request] = []
        self._busy = False

    def _take(self, max_texts: int) -> list[_Request]:
        taken, n = [], 0
        while self._queue and (not taken or n + len(self._queue[0].texts) <= max_texts):
            req = self._queue.pop(0)
            taken.append(req)
            n += len(req.texts)
        return taken

    def run(self, predictor: "Predictor", texts: list[str], max_texts: int) -> list[dict[str, Any]]:
        mine = _Request(texts)
        with self._cond:
            self._queue.append(mine)
        while True:
            with self._cond:
                while not mine.done and self._busy:
                    self._cond.wait()
                if mine.done:
                    break
                self._busy = True
                batch = self._take(max_texts)
            results: list[dict[str, Any]] = []
            error: BaseException | None = None
            try:
                results = predictor.predict([text for req in batch for text in req.texts])
            except BaseException as exc:  # every request of the failed batch sees the error
                error = exc
            with self._cond:
                start = 0
                for req in batch:
                    req.results, req.error = results[start : start + len(req.texts)], error
                    req.done = True
                    start += len(req.texts)
                self._busy = False
                self._cond.notify_all()
        if mine.error is not None:
            raise mine.error
        return mine.results or []
