"""HTTP inference service that follows the registry's champion.

Ops want one process that answers `POST /predict` while the training pipeline keeps promoting better models:
the service polls the champion pointer, loads a newly promoted version completely in a background thread
(checksums verified by `Registry.pull`), then swaps one reference. A request reads that reference once, so an
in-flight request finishes on the model it started with and never sees a half-loaded one. A champion that
fails to load (checksum mismatch, missing file, broken weights) is kept out: the old model keeps serving and
`GET /health` says what failed.

Heavy imports (torch, transformers through `trajet.predict`, fastapi, uvicorn) happen inside functions so that
`trajet --help` stays fast.
"""

import json
import logging
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trajet import config
from trajet.errors import TrajetError

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fastapi import FastAPI

    from trajet.predict import Predictor
    from trajet.registry import Registry

log = logging.getLogger("trajet.serve")

CHAMPION = "champion"
MANIFEST = "manifest.json"  # written by Registry.pull next to the model files


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Limits:
    """Request limits: a public endpoint must bound the work one request can ask for."""

    max_text_chars: int = 512
    max_texts: int = 64
    max_body_bytes: int = 64 * 1024


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

    def metrics(self) -> dict[str, Any] | None:
        """Evaluation stored at push time (registry manifest), else the metrics training wrote."""
        if self.manifest:
            for key in ("metrics", "training_metrics"):
                if self.manifest.get(key) is not None:
                    return self.manifest[key]
        info = self.model_dir / "trajet_training.json"
        if info.is_file():
            try:
                data = json.loads(info.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                return None
            for key in ("metrics", "best_metrics"):
                if isinstance(data, dict) and data.get(key) is not None:
                    return data[key]
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
    version = pointer.get("version")
    if not isinstance(version, str) or not version:
        raise TrajetError(f"champion pointer has no version: {json.dumps(pointer)[:200]}")
    return version


def _error_text(exc: BaseException) -> str:
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
            raw = (model_dir / MANIFEST).read_bytes()
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
                self.last_poll_error = _error_text(exc)
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
                self.last_load_error = LoadError(version, _error_text(exc), _now(), pointer)
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
            "pushed_at": manifest.get("pushed_at") or manifest.get("created_at"),
            "loaded_at": model.loaded_at,
            "model_dir": str(model.model_dir),
            "pointer": model.pointer,
            "manifest": model.manifest,
        }


# ---------------------------------------------------------------------------------------------- HTTP


def _loc_text(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [p for p in loc if p != "body"]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _explain(err: dict[str, Any], limits: Limits) -> str:
    """One sentence a client developer can act on, instead of pydantic's internal error codes."""
    kind = err.get("type", "")
    loc = err.get("loc", ())
    where = _loc_text(loc)
    ctx = err.get("ctx") or {}
    value = err.get("input")
    if kind == "json_invalid":
        return f"request body is not valid JSON: {ctx.get('error', 'decode error')}"
    if kind == "missing" and tuple(loc) == ("body",):
        return 'request body is missing: send {"text": "..."} or {"texts": ["...", ...]}'
    if kind == "string_too_long":
        n = len(value) if isinstance(value, str) else "too many"
        return f"{where}: text has {n} characters, the limit is {limits.max_text_chars}"
    if kind == "too_long":
        n = len(value) if isinstance(value, list) else "too many"
        return f"{where}: {n} texts in one request, the limit is {limits.max_texts}"
    if kind == "extra_forbidden":
        return f"unknown field {where!r}: send either 'text' or 'texts'"
    if kind == "string_type":
        return f"{where}: must be a string"
    if kind == "list_type":
        return f"{where}: must be a list of strings"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return 'request body must be a JSON object: {"text": "..."} or {"texts": ["...", ...]}'
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{where}: {msg}" if where != "body" else msg


def _request_model(limits: Limits) -> type:
    """Build the request schema with this service's limits, so the OpenAPI document shows them."""
    from typing import Annotated

    from pydantic import BaseModel, ConfigDict, Field, StringConstraints, create_model, model_validator

    class _PredictBody(BaseModel):
        model_config = ConfigDict(
            extra="forbid",
            json_schema_extra={"examples": [{"text": "Je veux aller de Paris à Lyon en passant par Dijon"},
                                            {"texts": ["de Nantes à Brest", "Metz - Lyon par Nancy"]}]},
        )

        @model_validator(mode="after")
        def _exactly_one(self) -> Any:
            if (getattr(self, "text", None) is None) == (getattr(self, "texts", None) is None):
                raise ValueError("send exactly one of 'text' (a string) or 'texts' (a list of strings)")
            return self

    text_type = Annotated[str, StringConstraints(max_length=limits.max_text_chars)]
    return create_model(
        "PredictRequest",
        __base__=_PredictBody,
        text=(text_type | None, Field(None, description="one text to tag")),
        texts=(
            list[text_type] | None,
            Field(None, max_length=limits.max_texts, description="several texts, tagged in one batch"),
        ),
    )


def _response_models() -> tuple[type, type, type, type]:
    from pydantic import BaseModel, ConfigDict

    class EntityOut(BaseModel):
        start: int
        end: int
        label: str
        text: str
        score: float

    class PredictionOut(BaseModel):
        """Same fields as `trajet predict`; `error` alone for a text the model cannot tag (e.g. empty)."""

        model_config = ConfigDict(extra="allow")
        entities: list[EntityOut] | None = None
        departure: str | None = None
        arrival: str | None = None
        via: list[str] | None = None
        error: str | None = None

    class SingleOut(BaseModel):
        version: str
        prediction: PredictionOut

    class ManyOut(BaseModel):
        version: str
        predictions: list[PredictionOut]

    return EntityOut, PredictionOut, SingleOut, ManyOut


class BodyLimitMiddleware:
    """Refuse bodies over the limit from Content-Length, and count the bytes actually received too: a client
    can lie about Content-Length or stream a chunked body without one."""

    def __init__(self, app: Any, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    def _too_large(self) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {"error": f"request body is larger than {self.max_body_bytes} bytes"}, status_code=413
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared < 0 or declared > self.max_body_bytes:
                    await self._too_large()(scope, receive, send)
                    return
        from starlette.exceptions import HTTPException

        received = 0
        limit = self.max_body_bytes

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise HTTPException(413, f"request body is larger than {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)


def create_app(service: ModelService, limits: Limits | None = None) -> "FastAPI":
    """The FastAPI app. `service` must already hold a model (`load_initial`); the app's lifespan runs the
    champion poller so that polling lives exactly as long as the server."""
    from contextlib import asynccontextmanager

    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from trajet import __version__

    limits = limits or Limits()
    request_model = _request_model(limits)
    _, _, single_out, many_out = _response_models()

    @asynccontextmanager
    async def lifespan(_app: "FastAPI"):
        service.start_polling()
        try:
            yield
        finally:
            await run_in_threadpool(service.stop)

    app = FastAPI(
        title="Trajet",
        version=__version__,
        description=(
            "Tags departure, arrival and stops in French travel requests with the registry's champion model. "
            f"Limits: {limits.max_text_chars} characters per text, {limits.max_texts} texts per request, "
            f"{limits.max_body_bytes} bytes per body."
        ),
        lifespan=lifespan,
    )
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=limits.max_body_bytes)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        messages = [_explain(e, limits) for e in errors]
        detail = [{"loc": list(e.get("loc", ())), "msg": m, "type": e.get("type")}
                  for e, m in zip(errors, messages, strict=True)]
        return JSONResponse({"error": "; ".join(dict.fromkeys(messages)), "detail": detail}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.post(
        "/predict",
        response_model=single_out | many_out,
        response_model_exclude_unset=True,
        summary="Tag one text ({'text': ...}) or several ({'texts': [...]})",
        responses={413: {"description": "body too large"}, 422: {"description": "bad JSON, field or limit"},
                   500: {"description": "the model failed on this request"}},
    )
    def predict(body: request_model) -> Any:  # type: ignore[valid-type]
        texts = [body.text] if body.text is not None else list(body.texts)
        try:
            version, results = service.predict(texts)
        except Exception as exc:  # answered here: a re-raised error would also drop the client's connection
            log.exception("prediction failed")
            return JSONResponse({"error": f"internal error: {_error_text(exc)}"}, status_code=500)
        if body.text is not None:
            return {"version": version, "prediction": results[0]}
        return {"version": version, "predictions": results}

    @app.get("/health", summary="Serving status, last champion poll, last load error")
    def health() -> JSONResponse:
        info = service.health()
        return JSONResponse(info, status_code=503 if info["version"] is None else 200)

    @app.get("/model", summary="The served model: version, metrics, promotion time")
    def model() -> dict[str, Any]:
        return service.model_info()

    return app


# ---------------------------------------------------------------------------------------------- running


@contextmanager
def serve_in_thread(app: "FastAPI", host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Run uvicorn in a background thread on a real socket; yields the base URL. Port 0 picks a free port."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound_port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="trajet-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise TrajetError(f"the HTTP server did not start on {host}:{bound_port}")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def run_server(
    service: ModelService,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    limits: Limits | None = None,
    log_level: str = "info",
) -> None:
    """Blocking: serve until interrupted. The model is loaded before the port opens."""
    import uvicorn

    if service._current is None:
        service.load_initial()
    app = create_app(service, limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level)
