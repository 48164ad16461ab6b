"""The HTTP face of the inference service: `POST /predict`, `GET /health`, `GET /model`.

What it adds to `trajet.service.ModelService` is what a public endpoint needs: request limits checked before
any work (body size, texts per request, characters per text), error messages a client developer can act on,
an OpenAPI document that shows the limits, and a lifespan that runs the champion poller exactly as long as
the server. fastapi and uvicorn are imported inside functions so that `trajet --help` stays fast.
"""

import logging
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trajet.errors import TrajetError
from trajet.service import ModelService, error_text

if TYPE_CHECKING:  # pragma: no cover - typing only
    from fastapi import FastAPI

log = logging.getLogger("trajet.serve")


@dataclass(frozen=True)
class Limits:
    """Request limits: a public endpoint must bound the work one request can ask for."""

    max_text_chars: int = 512
    max_texts: int = 64
    max_body_bytes: int = 64 * 1024



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
            return JSONResponse({"error": f"internal error: {error_text(exc)}"}, status_code=500)
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
