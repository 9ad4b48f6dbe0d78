"""One request's body → a ``RequestPlan``: the conversation, the ``SamplingParams``, the SDA settings, the stops.

Every range comes from the ``Option`` metadata of ``SamplingParams`` / ``TurnSettings`` / ``JudgeSpec`` (the one
definition), so an out-of-range value is a 400 whose message names the field and its allowed range, as on the
command line.
``temperature`` is OpenAI's name for SDA's base temperature T0; 0 (greedy in OpenAI's API) becomes ``MIN_T0``.
"""
from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from pydantic import ValidationError

from ..core import CV_STREAMS, Option, SamplingParams
from ..core.control import DEFAULT_CV_STREAMS
from ..errors import SdaError
from ..judges.spec import JudgeSpec, judge_option
from ..runtime.logprobs import DecodeExtras
from ..runtime.schema_grammar import SchemaError, json_object_gbnf, schema_gbnf
from ..presets import DEFAULT_PRESET, Preset, custom_preset, get_preset
from ..turn import STEER_TARGETS, TurnSettings, resolve_placement, turn_options
from .config import ServerConfig
from .errors import ApiError
from .schemas import SDA_JUDGE, SDA_SAMPLING, ChatRequest, CompletionRequest, SdaOptions

MIN_T0 = 0.01           # temperature 0 ("greedy") → this T0: near-greedy, and T0 must stay positive
TEMPERATURE_OPTION = Option(help="OpenAI temperature, used as SDA's base temperature T0", lo=0.0, hi=2.0)
MAX_STOPS = 4


@dataclass(frozen=True)
class SdaPlan:
    """A request's SDA: the turn settings it asks for (``settings``: the preset, the λ mapping, the fallback λ, the
    placement resolved through the preset, what to steer toward; the request's sampling comes in
    ``turn_settings``), where λ comes from, the control vectors, and whether the base answer is returned."""

    settings: TurnSettings
    judge: JudgeSpec                       # where λ comes from: the server's default, with the request's changes
    control: tuple[tuple[str, float], ...] = ()
    cv_scale: float = 1.0
    cv_layers: str | None = None
    cv_streams: str = DEFAULT_CV_STREAMS
    return_base: bool = False

    def turn_settings(self, params: SamplingParams) -> TurnSettings:
        """The turn these settings describe, with the request's sampling."""
        return replace(self.settings, sampling=params)

    # the turn settings the worker reads, as they are held (read only)
    @property
    def preset(self) -> Preset:
        return self.settings.preset

    @property
    def mapping(self) -> str:
        return self.settings.mapping

    @property
    def fallback_lam(self) -> float:
        return self.settings.fallback_lam

    @property
    def placement(self) -> str:
        return self.settings.placement

    @property
    def steer_toward(self) -> str:             # "system": toward the conversation's own system message
        return self.settings.steer_toward


@dataclass
class RequestPlan:
    model: str
    messages: list[dict]
    params: SamplingParams
    stops: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False
    sda: SdaPlan | None = None
    logprobs: int | None = None       # None: not asked for; k: each token's log-prob and k alternatives
    stream_logprobs: bool = False     # SDA: also the two streams' own lists
    grammar: str | None = None        # GBNF from response_format
    prompt: str | None = None         # /v1/completions: the raw text to continue (``messages`` is then empty)
    prefill: str | None = None        # a final assistant message to continue (``messages`` then ends with the user)

    @property
    def extras(self) -> DecodeExtras | None:
        if self.logprobs is None and self.grammar is None:
            return None
        return DecodeExtras(self.logprobs, self.stream_logprobs, self.grammar)


_SURROGATE = re.compile(rb"\\u[dD][89a-fA-F]", re.ASCII)


def parse_body(raw: bytes, model=ChatRequest):
    """JSON → ``model`` (a ``ChatRequest`` unless told): malformed JSON is a 400, a missing field or a wrong type a
    422 naming it."""
    try:
        data = json.loads(raw)
        if _SURROGATE.search(raw):  # a lone surrogate escape ("\ud800") is JSON, but no text: it cannot be encoded
            json.dumps(data, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise ApiError(400, "the request body is not valid JSON text: a string holds a lone UTF-16 surrogate "
                            "(an escape such as \\ud800 without its pair)") from None
    except ValueError as exc:  # (also an integer of more than 4300 digits)
        raise ApiError(400, f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "the request body is nested too deeply to be read") from None
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = field_path(err["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise ApiError(422, f"{where}: {err['msg']}{more}", where) from None


_TYPE_TAGS = {"int", "float", "str", "bool", "dict", "list", "none"}


def field_path(loc: tuple) -> str:
    """pydantic's error location as the client wrote it: ``messages[0].content`` (union member tags left out)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.isidentifier() and part not in _TYPE_TAGS and not part[0].isupper():
            out += f".{part}" if out else part
    return out


def _check(opt: Option, param: str, value) -> None:
    try:
        opt.check(param, value)
    except ValueError as exc:
        raise ApiError(400, f"{exc} ({opt.help})", param) from None


def _refuse_unsupported(req: ChatRequest) -> None:
    if req.n not in (None, 1):
        raise ApiError(400, f"n = {req.n} is not supported: sda-local returns one choice per request (n = 1)", "n")
    _refuse_tools(req)
    _check_ignored_numbers(req)


def _refuse_tools(req: ChatRequest) -> None:
    """Tools (or functions) only with ``tool_choice`` (``function_call``) "none": then none would be called."""
    for name, choice in (("tools", "tool_choice"), ("functions", "function_call")):
        if getattr(req, choice) not in (None, "none"):
            raise ApiError(400, f"{choice} is not supported by sda-local (no tool calling)", choice)
        if getattr(req, name) and getattr(req, choice) != "none":
            raise ApiError(400, f"{name} are not supported by sda-local (no tool calling); remove the field or "
                                f"send {choice}: \"none\"", name)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_ignored_numbers(req: ChatRequest) -> None:
    """Fields refused as OpenAI refuses them: penalties (ignored otherwise) that are not numbers in [-2, 2],
    ``top_logprobs`` that is not 0–20 or comes without ``logprobs: true``."""
    for name in ("frequency_penalty", "presence_penalty"):
        value = getattr(req, name)
        if value is not None and not (_is_number(value) and -2.0 <= value <= 2.0):
            raise ApiError(400, f"{name} must be a number from -2.0 to 2.0, got {value!r:.40} (sda-local accepts "
                                "and ignores it)", name)
    top = getattr(req, "top_logprobs", None)
    if top is not None:
        if not (isinstance(top, int) and not isinstance(top, bool) and 0 <= top <= 20):
            raise ApiError(400, f"top_logprobs must be an integer from 0 to 20, got {top!r:.40}", "top_logprobs")
        if req.logprobs is not True:
            raise ApiError(400, "top_logprobs needs logprobs: true", "top_logprobs")


def _logprobs(req: ChatRequest) -> tuple[int | None, bool]:
    """(k or None, stream lists wanted): ``logprobs: true`` gives each token's log-prob, ``top_logprobs`` k
    alternatives (0 without it); ``sda.stream_logprobs`` needs ``logprobs: true``."""
    streams = bool(req.sda is not None and req.sda.stream_logprobs)
    if req.logprobs is not True:
        if streams:
            raise ApiError(400, "sda.stream_logprobs needs logprobs: true", "sda.stream_logprobs")
        return None, False
    return int(req.top_logprobs or 0), streams


def _grammar(fmt) -> str | None:
    """The GBNF grammar ``response_format`` asks for (None for text); a 400 naming the part of a schema that the
    grammar converter cannot enforce."""
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return json_object_gbnf()
    if fmt.type != "json_schema":
        raise ApiError(400, f"response_format.type must be text, json_object or json_schema, got {fmt.type!r:.40}",
                       "response_format.type")
    where = "response_format.json_schema.schema"
    if fmt.json_schema is None or fmt.json_schema.schema_ is None:
        raise ApiError(400, "response_format json_schema needs json_schema.schema (a JSON schema object)", where)
    try:
        return schema_gbnf(fmt.json_schema.schema_, where)
    except SchemaError as exc:
        raise ApiError(400, f"{exc} (response_format is enforced with a llama.cpp grammar made from the schema)",
                       exc.where or where, code="unsupported_schema") from None


def _messages(req: ChatRequest) -> list[dict]:
    out = []
    for i, m in enumerate(req.messages):
        where = f"messages[{i}]"
        role = "system" if m.role == "developer" else m.role
        if role not in ("system", "user", "assistant"):
            raise ApiError(400, f"{where}.role {m.role!r} is not supported (system, user, assistant; no tools)",
                           f"{where}.role")
        if getattr(m, "tool_calls", None):
            raise ApiError(400, f"{where}.tool_calls: tool calling is not supported", f"{where}.tool_calls")
        if isinstance(m.content, list):
            texts = []
            for j, part in enumerate(m.content):
                if part.type != "text" or part.text is None:
                    raise ApiError(400, f"{where}.content[{j}]: {part.type} content is not supported (text only; "
                                        "no images or audio)", f"{where}.content[{j}]")
                texts.append(part.text)
            content = "\n".join(texts)
        elif m.content is None:  # (as OpenAI: an assistant message may lack content only beside tool calls)
            raise ApiError(400, f"{where}.content is missing or null: every {m.role} message needs its text "
                                "(a string, or a list of text parts)", f"{where}.content")
        else:
            content = m.content
        out.append({"role": role, "content": content})
    return _end_with_user(out)


def _end_with_user(out: list[dict]) -> list[dict]:
    """A conversation of system messages only gets an empty user turn (the engine answers a user message, and
    the template's generation prompt follows it).  One ending with an assistant message after a user message is
    kept: that message is continued (prefill, ``RequestPlan.prefill``)."""
    last = out[-1]["role"]
    if all(m["role"] == "system" for m in out):
        return out + [{"role": "user", "content": ""}]
    if last == "assistant" and len(out) >= 2 and out[-2]["role"] == "user":
        return out
    if last != "user":
        raise ApiError(400, "the conversation must end with a user message, or with an assistant message after one "
                            "(continued: prefill)", f"messages[{len(out) - 1}].role")
    return out


def _sampling(req: ChatRequest, sda: SdaOptions | None, base: SamplingParams,
              max_tokens_limit: int | None = None) -> SamplingParams:
    """The server's defaults, overridden by the request's standard fields and its ``sda`` sampling fields;
    ``max_tokens`` capped to ``max_tokens_limit`` (as llama.cpp's ``-n``: a longer request is answered, shorter)."""
    values: dict = {}
    if req.temperature is not None:
        _check(TEMPERATURE_OPTION, "temperature", req.temperature)
        values["t0"] = max(float(req.temperature), MIN_T0)
    if req.top_p is not None:
        values["top_p"] = req.top_p
    if req.seed is not None:
        values["seed"] = engine_seed(req.seed)
    max_name = "max_completion_tokens" if req.max_completion_tokens is not None else "max_tokens"
    if getattr(req, max_name) is not None:
        values["max_tokens"] = getattr(req, max_name)
    for name in SDA_SAMPLING:
        if sda is not None and getattr(sda, name) is not None:
            values[name] = getattr(sda, name)
    params = replace(base, **values)
    if max_tokens_limit is not None and params.max_tokens > max_tokens_limit:
        params = replace(params, max_tokens=max_tokens_limit)
    for f in fields(SamplingParams):  # each value against its Option, named as the client wrote it
        param = f"sda.{f.name}" if f.name in SDA_SAMPLING else {"t0": "temperature", "max_tokens": max_name}.get(
            f.name, f.name)
        _check(f.metadata["option"], param, getattr(params, f.name))
    try:
        return params.check()
    except ValueError as exc:
        raise ApiError(400, str(exc)) from None


SEED_MOD = 2 ** 64


def engine_seed(seed: int) -> int:
    """The engine's seed (≥ 0) for a request's ``seed``: OpenAI takes any 64-bit integer, so a negative one is
    used as its unsigned 64-bit form (``seed mod 2**64``: -1 → 2**64 - 1), one seed for each; others as they are."""
    return seed % SEED_MOD if seed < 0 else seed


def _stops(stop) -> list[str]:
    stops = [stop] if isinstance(stop, str) else list(stop or [])
    if len(stops) > MAX_STOPS:
        raise ApiError(400, f"stop: at most {MAX_STOPS} sequences, got {len(stops)}", "stop")
    return [s for s in stops if s]


# ``MODEL+system``: steer toward the request's own system message (for clients that can only pick a model)
SYSTEM_ALIAS = "system"


def split_model(name: str, served: set[str]) -> tuple[str, Preset | str | None]:
    """``MODEL``, ``MODEL+PRESET`` or ``MODEL+system`` → (model, the preset, ``SYSTEM_ALIAS`` or None); an unknown
    model is a 404 listing the served one."""
    base, plus, preset = name.rpartition("+") if "+" in name else (name, "", "")
    if base not in served:
        raise ApiError(404, f"model {name!r} is not served here; use {sorted(served)[0]!r} or "
                            f"{sorted(served)[0]}+PRESET (GET /v1/models lists them)", "model", code="model_not_found")
    if not plus:
        return base, None
    if preset == SYSTEM_ALIAS:
        return base, SYSTEM_ALIAS
    try:
        return base, get_preset(preset)
    except SdaError as exc:
        raise ApiError(404, str(exc), "model", code="model_not_found") from None


def _judge(sda: SdaOptions, default: JudgeSpec) -> JudgeSpec:
    """The server's evaluator spec with what the request says about λ (a λ, a score, or an evaluator kind), each
    value checked against its ``JudgeSpec`` ``Option`` (a 400 naming ``sda.FIELD``)."""
    def check(name: str) -> None:
        wire = SDA_JUDGE[name]
        if getattr(sda, wire) is not None:
            _check(judge_option(name), f"sda.{wire}", getattr(sda, wire))

    if sda.lam is not None and sda.score is not None:
        raise ApiError(400, "sda: give lam or score, not both", "sda.lam")
    check("kind")
    if (sda.lam is not None or sda.score is not None) and sda.evaluator not in (None, "fixed"):
        raise ApiError(400, f"sda: a given lam or score is the fixed evaluator, not {sda.evaluator!r}",
                       "sda.evaluator")
    check("lam")
    check("score")
    if sda.lam is not None:
        return replace(default, kind="fixed", lam=float(sda.lam), score=None)
    if sda.score is not None:
        return replace(default, kind="fixed", lam=None, score=float(sda.score))
    if sda.evaluator == "fixed":
        return replace(default, kind="fixed", lam=None, score=50.0)
    if sda.evaluator is not None:
        return replace(default, kind=sda.evaluator, lam=None, score=None,
                       openai_model=sda.openai_model or default.openai_model)
    return default


def _preset(sda: SdaOptions | None, from_model: Preset | None) -> Preset:
    try:
        if sda is not None and sda.preset is not None and sda.instruction is not None:
            raise ApiError(400, "sda: give preset or instruction, not both", "sda.preset")
        if sda is not None and sda.instruction is not None:
            return custom_preset(sda.instruction)
        if sda is not None and sda.preset is not None:
            return get_preset(sda.preset)
    except SdaError as exc:
        raise ApiError(400, str(exc), "sda.instruction" if sda.instruction is not None else "sda.preset") from None
    return from_model or get_preset(DEFAULT_PRESET)


def _control(sda: SdaOptions, cv_dir: Path | None) -> tuple[tuple[str, float], ...]:
    """Control-vector files named in the request, resolved inside ``cv_dir`` (never anywhere else)."""
    if sda.cv_streams not in CV_STREAMS:
        raise ApiError(400, f"sda.cv_streams must be one of {', '.join(CV_STREAMS)}; got {sda.cv_streams!r}",
                       "sda.cv_streams")
    if not sda.control_vectors:
        return ()
    if cv_dir is None:
        raise ApiError(400, "sda.control_vectors: this server was started without --cv-dir, so it offers no "
                            "control vectors", "sda.control_vectors")
    root = cv_dir.resolve()
    out = []
    for i, spec in enumerate(sda.control_vectors):
        name, scale = (spec, 1.0) if isinstance(spec, str) else (spec.file, float(spec.scale))
        path = root if "\0" in name else (root / name).resolve()  # (a NUL byte: no file can be named so)
        if os.path.isabs(name) or not path.is_relative_to(root) or not path.is_file():
            raise ApiError(400, f"sda.control_vectors[{i}]: {name!r} is not a file in the server's control-vector "
                                "directory (give a name relative to it)", f"sda.control_vectors[{i}]")
        out.append((str(path), scale))
    return tuple(out)


def _sda_plan(sda: SdaOptions | None, from_model: Preset | str | None, cfg: ServerConfig) -> SdaPlan | None:
    if sda is None and from_model is None:
        return None
    opts = sda or SdaOptions()
    steer = SYSTEM_ALIAS if from_model == SYSTEM_ALIAS else (opts.steer_toward or "preset")
    if steer not in STEER_TARGETS:
        raise ApiError(400, f"sda.steer_toward must be one of {', '.join(STEER_TARGETS)}; got {steer!r}",
                       "sda.steer_toward")
    if from_model == SYSTEM_ALIAS:
        from_model = None
    d: TurnSettings = cfg.defaults
    own = {"mapping": opts.mapping or d.mapping, "placement": opts.placement or d.placement,
           "fallback_lam": d.fallback_lam if opts.fallback_lam is None else float(opts.fallback_lam)}
    for name, _, _, opt in _turn_fields():
        _check(opt, f"sda.{name}", own[name])
    preset = _preset(sda, from_model)
    settings = TurnSettings(preset=preset, mapping=own["mapping"], fallback_lam=own["fallback_lam"],
                            placement=resolve_placement(own["placement"], preset), steer_toward=steer)
    return SdaPlan(settings, _judge(opts, cfg.evaluator or JudgeSpec()), _control(opts, cfg.cv_dir),
                   float(opts.cv_scale), opts.cv_layers, opts.cv_streams, opts.return_base)


def _turn_fields():
    return [t for t in turn_options() if t[0] in ("mapping", "placement", "fallback_lam")]


def build_plan(req: ChatRequest, cfg: ServerConfig, served: set[str]) -> RequestPlan:
    _refuse_unsupported(req)
    messages = _messages(req)
    prefill = messages.pop()["content"] if messages[-1]["role"] == "assistant" else None
    k, streams = _logprobs(req)
    plan = _plan(req, cfg, served, messages=messages, logprobs=k, stream_logprobs=streams,
                 grammar=_grammar(req.response_format), prefill=prefill)
    if prefill is not None:
        _no_judge(plan, "continuing an assistant message (prefill)")
        _no_system_steer(plan, "continuing an assistant message (prefill) is steered toward a preset only")
    return plan


def _plan(req, cfg: ServerConfig, served: set[str], **kw) -> RequestPlan:
    """What a chat or a text completion request share: the model (and preset), SDA, sampling, stops, streaming."""
    _, preset = split_model(req.model, served)
    sda = _sda_plan(req.sda, preset, cfg)
    params = _sampling(req, req.sda, cfg.sampling, cfg.max_tokens_limit)
    include_usage = bool(req.stream_options and req.stream_options.include_usage)
    kw.setdefault("messages", [])
    return RequestPlan(req.model, params=params, stops=_stops(req.stop), stream=bool(req.stream),
                       include_usage=include_usage, sda=sda, **kw)


NO_JUDGE = ("preset", "fixed")  # λ sources that need no answer to rate


def build_text_plan(req: CompletionRequest, cfg: ServerConfig, served: set[str]) -> RequestPlan:
    """A ``/v1/completions`` request's plan (``runtime.text_prompts`` builds its prompts)."""
    for name, ok, why in (("n", req.n in (None, 1), "one choice per request (n = 1)"),
                          ("best_of", req.best_of in (None, 1), "one candidate per request (best_of = 1)"),
                          ("echo", not req.echo, "the prompt is not echoed"),
                          ("suffix", req.suffix is None, "no insertion (suffix)"),
                          ("logprobs", req.logprobs in (None, 0), "no legacy logprobs here; /v1/chat/completions "
                                                                  "has logprobs")):
        if not ok:
            raise ApiError(400, f"{name} is not supported by sda-local's /v1/completions: {why}", name)
    _check_ignored_numbers(req)
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise ApiError(400, f"prompt: give one string (or a list of one), got a list of {len(prompt)}",
                           "prompt")
        prompt = prompt[0]
    if not prompt:
        raise ApiError(400, "prompt is empty: give at least one character of text to continue", "prompt")
    plan = _plan(req, cfg, served, prompt=prompt)
    _no_judge(plan, "a text completion")
    _no_system_steer(plan, "a text completion has no system message")
    return plan


def _no_system_steer(plan: RequestPlan, why: str) -> None:
    if plan.sda is not None and plan.sda.steer_toward == SYSTEM_ALIAS:
        raise ApiError(400, f"steering toward the system prompt needs a chat request with one: {why}",
                       "sda.steer_toward")


def _no_judge(plan: RequestPlan, what: str) -> None:
    """A 400 unless the plan's λ needs no judge (a judge rates a whole chat answer that it writes first)."""
    if plan.sda is not None and plan.sda.judge.effective_kind not in NO_JUDGE:
        raise ApiError(400, f"sda.evaluator {plan.sda.judge.effective_kind!r} rates a whole chat answer; {what} "
                            "takes sda.lam, sda.score or the preset's own λ (sda.evaluator \"preset\")",
                       "sda.evaluator")
