"""The FastAPI app: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``, ``GET /health``.

Also ``GET /v1/models/{id}`` (one model card, or a 404).  Every error, an unknown route or a wrong method included, has the OpenAI shape (``errors.ApiError``).  CORS
headers (and preflight answers) only for the origins the server was started with (``--cors-origin``).

With an API key, every ``/v1`` request needs ``Authorization: Bearer KEY`` (compared in constant time;
``/health`` stays open for load balancers).  The key is never logged or echoed.  No conversation state is kept
between requests: each one carries its whole conversation, so replicas behind a load balancer are interchangeable.
"""
from __future__ import annotations

import hmac
import time
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..core import sampling_options
from ..errors import SdaError
from ..judges.spec import Judges
from ..presets import all_presets, builtin_presets
from ..runtime.engine import Engine
from .config import ServerConfig
from .errors import ApiError
from .request import (
    TEMPERATURE_OPTION,
    SYSTEM_ALIAS,
    RequestPlan,
    build_plan,
    build_text_plan,
    field_path,
    parse_body,
    split_model,
)
from .schemas import ChatRequest, CompletionRequest, range_schema
from .slot import GenerationSlot, QueueFull
from .sse import DISCONNECT_POLL_S, Job, JobStream, complete, stop_all
from .worker import Runner, check_grammar, check_prompt_fits


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
    if config.max_tokens_limit is None:  # default cap: the context (no answer can be longer anyway)
        config = replace(config, max_tokens_limit=engine.n_ctx)
    judges = judges or Judges(engine)
    runner, slot = Runner(engine, judges), GenerationSlot(config.max_queue)
    served = served_names(engine)
    running: set[Job] = set()

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        yield
        stop_all(running)  # shutting down: no generation may outlive the app (the engine is closed next)

    app = FastAPI(title="sda-local", docs_url=None, redoc_url=None, openapi_url="/openapi.json", lifespan=lifespan)
    app.openapi = lambda: _openapi(app)
    app.state.judges, app.state.slot, app.state.running = judges, slot, running
    auth = Depends(_auth(config))
    _install_errors(app)
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["*"],
                           expose_headers=["Retry-After", "WWW-Authenticate"], max_age=600)

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok", "model": engine.name, **slot.status(), "max_tokens_limit": config.max_tokens_limit}

    _model_routes(app, engine, served, auth)

    async def run(plan: RequestPlan, request: Request):
        check_prompt_fits(engine, plan)
        check_grammar(engine, plan)
        runner.prepare_control(plan)
        if not await _take_slot(slot, request, config):
            return Response(status_code=499)  # the client left while it waited: nothing to run, nobody to answer
        job = Job(runner, plan, slot, running)
        try:
            job.start()
        except BaseException:
            slot.release()
            raise
        if plan.stream:
            return JobStream(job)
        return await complete(job, request)

    @app.post("/v1/chat/completions", dependencies=[auth], openapi_extra=_body("ChatRequest"))
    async def chat_completions(request: Request):
        return await run(build_plan(parse_body(await read_body(request, config.max_body)), config, served), request)

    @app.post("/v1/completions", dependencies=[auth], openapi_extra=_body("CompletionRequest"))
    async def completions(request: Request):
        req = parse_body(await read_body(request, config.max_body), CompletionRequest)
        return await run(build_text_plan(req, config, served), request)

    return app


async def _take_slot(slot: GenerationSlot, request: Request, config: ServerConfig) -> bool:
    """Wait for the model: a 503 when the queue is full; False when the client disconnects while waiting (it
    leaves the queue then, and its generation never runs)."""
    try:
        return await slot.acquire(request.is_disconnected, DISCONNECT_POLL_S)
    except QueueFull:
        raise ApiError(503, f"the server is busy ({slot.max_queue} requests already waiting); retry later",
                       code="queue_full", headers={"Retry-After": str(config.retry_after)}) from None


def _model_routes(app: FastAPI, engine: Engine, served: set[str], auth) -> None:
    """``GET /v1/models`` (the model and each ``MODEL+PRESET``) and ``GET /v1/models/{id}``."""
    created = int(time.time())

    def card(model_id: str) -> dict:
        return {"id": model_id, "object": "model", "created": created, "owned_by": "sda-local"}

    @app.get("/v1/models", dependencies=[auth])
    async def models() -> dict:
        ids = [engine.name] + [f"{engine.name}+{p}" for p in [*_preset_names(), SYSTEM_ALIAS]]
        return {"object": "list", "data": [card(i) for i in ids]}

    @app.get("/v1/models/{model_id:path}", dependencies=[auth])
    async def model(model_id: str) -> dict:
        split_model(model_id, served)  # a 404 (model_not_found) unless a request could name it
        return card(model_id)


_ROUTES = "POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /v1/models/ID, GET /health"


def _install_errors(app: FastAPI) -> None:
    """Every error in the OpenAI shape, also those Starlette and FastAPI raise (unknown route, wrong method)."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        where = f"{request.method} {request.url.path}"[:200]
        if exc.status_code == 404:
            err = ApiError(404, f"unknown endpoint {where} (this server has {_ROUTES})", code="unknown_url")
        elif exc.status_code == 405:
            allowed = (exc.headers or {}).get("Allow", "")
            err = ApiError(405, f"method {request.method} is not allowed on {request.url.path[:200]}"
                                + (f" (allowed: {allowed})" if allowed else ""), code="method_not_allowed")
        else:
            err = ApiError(exc.status_code, str(exc.detail))
        err.headers = dict(exc.headers or {})
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = (exc.errors() or [{}])[0]
        where = field_path(tuple(first.get("loc", ())))
        return ApiError(422, f"{where}: {first.get('msg', 'invalid request')}", where or None).response()

    @app.exception_handler(Exception)
    async def _server_error(_request: Request, exc: Exception) -> JSONResponse:  # (uvicorn logs the traceback)
        return ApiError(500, f"the server failed ({type(exc).__name__}); see the server log").response()


def _body(name: str) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{name}"}}}}}


def _standard_ranges() -> dict:
    """The OpenAI fields whose values ``request`` checks against an ``Option`` (temperature's own, the others
    ``SamplingParams``'): their ranges go into the schema, as the ``sda`` fields' do.  (``seed`` is not one:
    any integer is taken, a negative one mapped into the engine's range, ``request.engine_seed``.)"""
    opts = {name: opt for name, _annotation, _default, opt in sampling_options()}
    return {"temperature": TEMPERATURE_OPTION, "top_p": opts["top_p"],
            "max_tokens": opts["max_tokens"], "max_completion_tokens": opts["max_tokens"]}


def _openapi(app: FastAPI) -> dict:
    """The OpenAPI document, with the request body's schema generated from the pydantic models (the body is read
    by hand, so FastAPI does not see it): every field, the ``sda`` options and the sampling fields with their
    ranges."""
    if app.openapi_schema is None:
        from fastapi.openapi.utils import get_openapi
        doc = get_openapi(title=app.title, version=__version__, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for model in (ChatRequest, CompletionRequest):
            body = model.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            for name, opt in _standard_ranges().items():  # checked in ``request``; shown here
                body["properties"][name].update(range_schema(opt))
            schemas[model.__name__] = body
        app.openapi_schema = doc
    return app.openapi_schema
