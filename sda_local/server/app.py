"""The FastAPI app: ``POST /v1/chat/completions``, ``GET /v1/models``, ``GET /health``.

With an API key, every ``/v1`` request needs ``Authorization: Bearer KEY`` (compared in constant time;
``/health`` stays open for load balancers).  The key is never logged or echoed.  No conversation state is kept
between requests: each one carries its whole conversation, so replicas behind a load balancer are interchangeable.
"""
from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from .. import __version__
from ..errors import SdaError
from ..judges.spec import Judges
from ..presets import all_presets, builtin_presets
from ..runtime.engine import Engine
from .config import ServerConfig
from .errors import ApiError
from .request import build_plan, parse_body
from .schemas import ChatRequest
from .slot import GenerationSlot, QueueFull
from .sse import Job, complete, stop_all, stream_events
from .worker import Runner, check_prompt_fits


def served_names(engine: Engine) -> set[str]:
    """The names a request may use for the loaded model (its id or file name, and the file name's stem)."""
    return {engine.name, Path(engine.name).stem}


def _preset_names() -> list[str]:
    try:
        return list(all_presets())
    except SdaError:  # a broken custom-preset file must not take /v1/models down
        return list(builtin_presets())


def _auth(config: ServerConfig):
    key = (config.api_key or "").encode()

    async def check(request: Request) -> None:
        if not key:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key):
            raise ApiError(401, "a valid API key is required: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})
    return check


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    too_big = ApiError(413, f"the request body is larger than this server accepts ({limit} bytes)")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise too_big
    parts, n = [], 0
    async for chunk in request.stream():
        n += len(chunk)
        if n > limit:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


def create_app(engine: Engine, config: ServerConfig | None = None, judges: Judges | None = None) -> FastAPI:
    """The app serving ``engine`` (which it does not close; the caller does, with ``app.state.judges``)."""
    config = config or ServerConfig()
    judges = judges or Judges(engine)
    runner, slot = Runner(engine, judges), GenerationSlot(config.max_queue)
    served, created = served_names(engine), int(time.time())
    running: set[Job] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        stop_all(running)  # shutting down: no generation may outlive the app (the engine is closed next)

    app = FastAPI(title="sda-local", docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    app.openapi = lambda: _openapi(app)
    app.state.judges, app.state.slot, app.state.running = judges, slot, running
    auth = Depends(_auth(config))

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": engine.name, **slot.status()}

    @app.get("/v1/models", dependencies=[auth])
    async def models() -> dict:
        ids = [engine.name] + [f"{engine.name}+{p}" for p in _preset_names()]
        return {"object": "list", "data": [{"id": i, "object": "model", "created": created, "owned_by": "sda-local"}
                                           for i in ids]}

    @app.post("/v1/chat/completions", dependencies=[auth], openapi_extra=_CHAT_BODY)
    async def chat_completions(request: Request):
        plan = build_plan(parse_body(await read_body(request, config.max_body)), config, served)
        check_prompt_fits(engine, plan)
        runner.prepare_control(plan)
        try:
            await slot.acquire()
        except QueueFull:
            raise ApiError(503, f"the server is busy ({slot.max_queue} requests already waiting); retry later",
                           code="queue_full", headers={"Retry-After": str(config.retry_after)}) from None
        job = Job(runner, plan, slot, running)
        try:
            job.start()
        except BaseException:
            slot.release()
            raise
        if plan.stream:
            return StreamingResponse(stream_events(job), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await complete(job, request)

    return app


_CHAT_BODY = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/ChatRequest"}}}}}


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document, with the request body's schema generated from the pydantic models (the body is read
    by hand, so FastAPI does not see it): every field, the ``sda`` options with their ranges."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi
        doc = get_openapi(title=app.title, version=__version__, routes=app.routes)
        body = ChatRequest.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.update(body.pop("$defs", {}))
        schemas["ChatRequest"] = body
        app.openapi_schema = doc
    return app.openapi_schema
