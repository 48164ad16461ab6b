"""The served model: a holder that follows the registry's champion and swaps models without a pause.

Ops want one process that answers requests while the training pipeline keeps promoting better models:
the service polls the champion pointer, loads a newly promoted version completely in a background thread
(checksums verified by `Registry.pull`), then swaps one reference. A request reads that reference once, so an
in-flight request finishes on the model it started with and never sees a half-loaded one. A champion that
fails to load (checksum mismatch, missing file, broken weights) is kept out: the old model keeps serving and
`health()` says what failed. After a swap nothing refers to the old model any more, so its memory goes back,
and the folder it was pulled into is removed.

The HTTP face is `trajet.serve`; nothing here imports a web framework. Heavy imports (torch, transformers
through `trajet.predict`) happen inside functions so that `trajet --help` stays fast.
"""

import json
import logging
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajet import config
from trajet.coalesce import Coalescer
from trajet.errors import TrajetError
from trajet.manifest import CHAMPION, ChampionPointer, Manifest
from trajet.model_dir import ModelDir

if TYPE_CHECKING:  # pragma: no cover - typing only
    from trajet.predict import Predictor
    from trajet.registry import Registry

log = logging.getLogger("trajet.serve")


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")




@dataclass(frozen=True)
class LoadedModel:
    """One fully loaded model; immutable so a request holding it is never affected by a swap."""

    version: str
    predictor: "Predictor"
    model_dir: Path
    source: str
    manifest: dict[str, Any] | None
    pointer: dict[str, Any] | None
    loaded_at: str
    # One per model: a freshly swapped-in model never waits behind requests still running on the old one.
    runner: Coalescer = field(default_factory=Coalescer, compare=False, repr=False)

    def metrics(self) -> Any:
        """Evaluation stored at push time (registry manifest), else the metrics training wrote."""
        if self.manifest:
            stored = Manifest.from_dict(self.manifest).evaluation()
            if stored is not None:
                return stored
        try:
            return ModelDir(self.model_dir, check=False).training_info.get("metrics")
        except TrajetError:
            return None


@dataclass
class LoadError:
    version: str | None
    error: str
    at: str
    pointer: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "error": self.error, "at": self.at}


def _pointer_version(pointer: dict[str, Any]) -> str:
    return ChampionPointer.from_dict(pointer).version


def error_text(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if isinstance(exc, TrajetError) else f"{type(exc).__name__}: {text}"


class ModelService:
    """Owns the served model: initial load, champion polling, background load and atomic swap.

    `model_ref` is "champion" (follow the registry's champion), a version name (pinned, no polling) or an
    existing model directory (served as is, no polling).
    """

    def __init__(
        self,
        model_ref: str = CHAMPION,
        *,
        registry_uri: str | None = None,
        cache_dir: Path | None = None,
        poll_interval: float = 30.0,
        retry_interval: float = 300.0,
        batch_texts: int = 64,
        backend: str = "torch",
        threads: int = 0,
        poll_stale_after: float | None = None,
    ) -> None:
        from trajet.backends import check_backend

        if poll_interval <= 0:
            raise TrajetError(f"poll interval must be positive, got {poll_interval}")
        # A hung registry raises nothing for a while: past this age of the last successful champion read,
        # /health says degraded (3 missed polls, at least a minute by default).
        self.poll_stale_after = poll_stale_after if poll_stale_after is not None else max(3 * poll_interval, 60.0)
        self.backend = check_backend(backend)  # every model this service loads, hot-swapped ones too
        self.threads = max(0, threads)
        self.model_ref = model_ref
        self.registry_uri = registry_uri or config.registry_uri()
        self.cache_dir = (cache_dir or config.home() / "serve" / "models").resolve()
        self.poll_interval = poll_interval
        self.retry_interval = retry_interval
        self.batch_texts = max(1, batch_texts)
        self._registry: Registry | None = None
        self._current: LoadedModel | None = None
        self._state_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.last_poll: str | None = None
        self.last_poll_error: str | None = None
        self._last_poll_ok: float | None = None  # monotonic time of the last successful champion read
        self._poll_started: float | None = None  # monotonic start of the poll running now
        self._loading: str | None = None  # the version being pulled and loaded now
        self.champion_version: str | None = None
        self.last_load_error: LoadError | None = None
        self._failed_key: str | None = None
        self._failed_at = 0.0
        self.swaps = 0
        self._pulled: list[Path] = []

    # ------------------------------------------------------------------ set-up

    @property
    def follows_champion(self) -> bool:
        return self.model_ref == CHAMPION and not Path(self.model_ref).is_dir()

    @property
    def registry(self) -> "Registry":
        if self._registry is None:
            from trajet.registry import open_registry

            self._registry = open_registry(self.registry_uri)
        return self._registry

    def load_initial(self) -> LoadedModel:
        """First load, in the caller's thread: a service that cannot load any model must not start."""
        ref_path = Path(self.model_ref)
        if ref_path.is_dir():
            model = self._load_directory(ref_path)
        elif self.model_ref == CHAMPION:
            pointer = self.registry.champion()
            self.last_poll = _now()
            self._last_poll_ok = time.monotonic()
            if pointer is None:
                raise TrajetError(
                    f"registry {self.registry_uri} has no champion yet: promote a version first "
                    "(or serve a version or a model directory with --model)"
                )
            self.champion_version = _pointer_version(pointer)
            model = self._load_version(self.champion_version, pointer)
        elif "/" in self.model_ref or self.model_ref.startswith("."):
            raise TrajetError(f"--model {self.model_ref}: no such model directory")
        else:
            model = self._load_version(self.model_ref, None)
        self._current = model
        return model

    @property
    def current(self) -> LoadedModel:
        model = self._current
        if model is None:
            raise TrajetError("no model loaded yet")
        return model

    # ------------------------------------------------------------------ loading

    def _load_predictor(self, model_dir: Path) -> "Predictor":
        from trajet.predict import load_predictor

        predictor = load_predictor(model_dir, backend=self.backend, num_threads=self.threads)
        if predictor.lexicon is not None and predictor.lexicon.fuzzy:
            predictor.lexicon.build_index()  # at load, not on the requests that come first
        return predictor

    def _load_directory(self, model_dir: Path) -> LoadedModel:
        model_dir = model_dir.resolve()
        predictor = self._load_predictor(model_dir)
        return LoadedModel(
            version=f"dir:{model_dir.name}",
            predictor=predictor,
            model_dir=model_dir,
            source="directory",
            manifest=None,
            pointer=None,
            loaded_at=_now(),
        )

    def _load_version(self, version: str, pointer: dict[str, Any] | None) -> LoadedModel:
        """Pull (every file's sha256 checked by the registry) into a fresh folder, check the manifest against
        the champion pointer, then load. Nothing is shared with the model being served, so a failure here
        cannot disturb it."""
        import hashlib

        self.cache_dir.mkdir(parents=True, exist_ok=True)
        dest = self.cache_dir / f"{version}-{uuid.uuid4().hex[:8]}"
        try:
            model_dir = Path(self.registry.pull(version, dest))
            raw = ModelDir(model_dir, check=False).manifest_bytes
            if raw is None:
                raise TrajetError(f"{model_dir} holds no registry manifest after the pull")
            expected = (pointer or {}).get("manifest_sha256")
            if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
                raise TrajetError(
                    f"manifest of champion {version} does not match the sha256 recorded in the champion "
                    f"pointer of {self.registry_uri}; refusing it"
                )
            manifest = json.loads(raw)
            predictor = self._load_predictor(model_dir)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
        self._pulled.append(model_dir)
        return LoadedModel(
            version=version,
            predictor=predictor,
            model_dir=model_dir,
            source="registry",
            manifest=manifest,
            pointer=pointer,
            loaded_at=_now(),
        )

    def _prune_cache(self, keep: LoadedModel) -> None:
        """Weights are in memory once loaded; old pulled folders only cost disk. Only folders this service
        pulled are removed: another service sharing the cache may be pulling into it right now."""
        for folder in list(self._pulled):
            if folder != keep.model_dir:
                shutil.rmtree(folder, ignore_errors=True)
                self._pulled.remove(folder)

    # ------------------------------------------------------------------ polling

    def poll_once(self) -> bool:
        """Read the champion pointer; load and swap when it names another version. True when swapped."""
        with self._state_lock:
            self._poll_started = time.monotonic()
        try:
            return self._poll()
        finally:
            with self._state_lock:
                self._poll_started = None
                self._loading = None

    def _poll(self) -> bool:
        try:
            pointer = self.registry.champion()
        except Exception as exc:  # registry unreachable: keep serving, say so on /health
            with self._state_lock:
                self.last_poll = _now()
                self.last_poll_error = error_text(exc)
            log.warning("champion poll failed: %s", exc)
            return False
        with self._state_lock:
            self.last_poll = _now()
            self.last_poll_error = None
            self._last_poll_ok = time.monotonic()
        if pointer is None:
            return False
        try:
            version = _pointer_version(pointer)
        except TrajetError as exc:
            with self._state_lock:
                self.last_poll_error = str(exc)
            return False
        self.champion_version = version
        current = self._current
        if current is not None and current.version == version:
            with self._state_lock:  # back on the served version (e.g. rollback of a bad promote)
                self.last_load_error = None
                self._failed_key = None
            return False
        key = json.dumps(pointer, sort_keys=True, default=str)
        if key == self._failed_key and time.monotonic() - self._failed_at < self.retry_interval:
            return False
        log.info("champion is now %s: loading it in the background", version)
        with self._state_lock:
            self._loading = version
        try:
            model = self._load_version(version, pointer)
        except Exception as exc:
            with self._state_lock:
                self.last_load_error = LoadError(version, error_text(exc), _now(), pointer)
                self._failed_key = key
                self._failed_at = time.monotonic()
            log.error("champion %s failed to load, still serving %s: %s",
                      version, current.version if current else None, exc)
            return False
        self._current = model  # the swap: one reference assignment, atomic for readers
        with self._state_lock:
            self.last_load_error = None
            self._failed_key = None
            self.swaps += 1
        self._prune_cache(model)
        log.info("now serving %s", version)
        return True

    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval):
            try:
                self.poll_once()
            except Exception:  # never let the poller die silently
                log.exception("unexpected error while polling the champion")

    def start_polling(self) -> None:
        if not self.follows_champion or self._poller is not None:
            return
        self._stop.clear()
        self._poller = threading.Thread(target=self._poll_loop, name="trajet-champion-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling and remove the pulled folders (the weights live in memory; a restart pulls again)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=60)
            self._poller = None
        for folder in self._pulled:
            shutil.rmtree(folder, ignore_errors=True)
        self._pulled.clear()

    # ------------------------------------------------------------------ serving

    def predict(self, texts: list[str]) -> tuple[str, list[dict[str, Any]]]:
        """Read the current model once; the whole request runs on it even if a swap happens meanwhile."""
        model = self.current
        return model.version, model.runner.run(model.predictor, texts, self.batch_texts)

    def _poll_problem(self, now: float) -> tuple[float | None, float | None, str | None]:
        """(age of the last successful champion read, seconds the running poll has taken, what is wrong)."""
        age = None if self._last_poll_ok is None else now - self._last_poll_ok
        running = None if self._poll_started is None else now - self._poll_started
        if not self.follows_champion:
            return age, running, None
        problem = None
        if age is not None and age > self.poll_stale_after and self._loading is None:
            problem = f"no successful champion poll for {age:.0f} s (limit {self.poll_stale_after:g} s)"
            if running is not None:
                problem += f"; the current poll of {self.registry_uri} has been waiting for {running:.0f} s"
            if self.last_poll_error:
                problem += f"; last error: {self.last_poll_error}"
        elif self.last_poll_error:
            problem = f"champion poll failed: {self.last_poll_error}"
        return age, running, problem

    def health(self) -> dict[str, Any]:
        model = self._current
        with self._state_lock:
            load_error = self.last_load_error
            age, running, problem = self._poll_problem(time.monotonic())
            if problem is None and load_error is not None:
                problem = f"champion {load_error.version} failed to load: {load_error.error}"
            degraded = problem is not None
            return {
                "status": "unavailable" if model is None else ("degraded" if degraded else "ok"),
                "problem": problem,
                "version": model.version if model else None,
                "backend": self.backend,
                "model_ref": self.model_ref,
                "follows_champion": self.follows_champion,
                "champion_version": self.champion_version,
                "loaded_at": model.loaded_at if model else None,
                "last_poll": self.last_poll,
                "last_poll_age_s": None if age is None else round(age, 3),
                "poll_running_s": None if running is None else round(running, 3),
                "poll_stale_after_s": self.poll_stale_after,
                "loading": self._loading,
                "last_poll_error": self.last_poll_error,
                "last_load_error": load_error.to_dict() if load_error else None,
                "poll_interval_s": self.poll_interval,
                "swaps": self.swaps,
            }

    def model_info(self) -> dict[str, Any]:
        model = self.current
        pointer = model.pointer or {}
        manifest = model.manifest or {}
        return {
            "version": model.version,
            "backend": self.backend,
            "source": model.source,
            "registry": self.registry_uri if model.source == "registry" else None,
            "metrics": model.metrics(),
            "promoted_at": pointer.get("promoted_at"),
            "pushed_at": manifest.get("created_at"),
            "loaded_at": model.loaded_at,
            "model_dir": str(model.model_dir),
            "pointer": model.pointer,
            "manifest": model.manifest,
        }
