"""The request body (pydantic: wrong types become 422 naming the field) and the OpenAI response shapes.

``logprobs`` / ``top_logprobs`` and ``response_format`` are honoured (``request``).  Standard fields that
sda-local does not use (``frequency_penalty``, ``user``, …) are accepted and ignored, as
OpenAI-compatible servers do (the penalties only when OpenAI itself would take them); fields
it cannot honour (``n`` > 1, tools that may be called, images) are refused in ``request``.
"""
from __future__ import annotations

import time
import uuid
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StrictInt,
    StrictStr,
    WithJsonSchema,
    create_model,
)
from pydantic_core import PydanticCustomError

from ..core import Option, sampling_options
from ..core.control import DEFAULT_CV_STREAMS
from ..core.params import base_type
from ..judges.spec import judge_options


def _number(value):
    """A JSON number, int or float as sent (not a bool, not a numeric string): one message, "a number"."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("number_type", "Input should be a number")
    return value


Number = Annotated[int | float, PlainValidator(_number), WithJsonSchema({"type": "number"})]


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: StrictStr
    text: StrictStr | None = None


def _content_required(schema: dict) -> None:
    """The published schema says what is valid: ``content`` present and not null.  The model itself takes a null
    or missing ``content`` so that ``request`` answers it with a 400 naming ``messages[i].content``, as OpenAI."""
    content = schema["properties"]["content"]
    content["anyOf"] = [t for t in content["anyOf"] if t != {"type": "null"}]
    content.pop("default", None)
    schema["required"] = [*schema.get("required", []), "content"]


class ChatMessage(BaseModel):
    # extra: name, tool_calls, … (tool_calls are refused in ``request``)
    model_config = ConfigDict(extra="allow", json_schema_extra=_content_required)
    role: StrictStr
    content: StrictStr | list[TextPart] | None = None


class JsonSchemaFormat(BaseModel):
    model_config = ConfigDict(extra="allow")  # description, …
    name: StrictStr | None = None
    schema_: dict | None = Field(None, alias="schema")
    strict: StrictBool | None = None


class ResponseFormat(BaseModel):
    """``{"type": "text" | "json_object" | "json_schema", "json_schema": {...}}``; checked in ``request``."""

    model_config = ConfigDict(extra="forbid")
    type: StrictStr
    json_schema: JsonSchemaFormat | None = None


class ControlVectorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    file: StrictStr
    scale: Number = 1.0


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")
    include_usage: StrictBool = False


# SamplingParams fields a request sets in ``sda`` (temperature, top_p, seed and max_tokens are OpenAI's own)
SDA_SAMPLING = ("k", "temperature_mode", "plausibility", "echo_block", "contrast", "guidance_clip",
                "adaptive_guidance")
_PY = {float: Number, int: StrictInt, str: StrictStr}


def range_schema(opt: Option) -> dict:
    """An ``Option``'s choices and bounds as JSON-schema keywords (what ``/openapi.json`` shows a client)."""
    extra: dict = {}
    if opt.choices is not None:
        extra["enum"] = list(opt.choices)
    if opt.lo is not None:
        extra["exclusiveMinimum" if opt.lo_open else "minimum"] = opt.lo
    if opt.hi is not None:
        extra["exclusiveMaximum" if opt.hi_open else "maximum"] = opt.hi
    return extra


def _option_field(annotation, opt: Option):
    """A request field from an ``Option``: the type from the annotation (None: not given), the help and range
    into the schema."""
    return (_PY[base_type(annotation)] | None,
            Field(None, description=opt.help, json_schema_extra=range_schema(opt) or None))


def _sampling_fields() -> dict:
    """``SDA_SAMPLING``'s pydantic fields, generated from ``SamplingParams``' ``Option``s (one range table): the
    type from the annotation, the help and range into the schema.  Values are checked against the ``Option``
    in ``request`` (a 400 that names ``sda.FIELD`` and its range)."""
    return {name: _option_field(annotation, opt) for name, annotation, _default, opt in sampling_options()
            if name in SDA_SAMPLING}


# ``JudgeSpec`` fields a request sets in ``sda``, by their name there (the kind is ``sda.evaluator``); the
# endpoint's URL and key, the timeout and the retries are the server's own
SDA_JUDGE = {"lam": "lam", "score": "score", "kind": "evaluator", "openai_model": "openai_model"}


def _judge_fields() -> dict:
    """``SDA_JUDGE``'s pydantic fields, generated from ``JudgeSpec``'s ``Option``s: ``sda.evaluator``'s schema
    lists the kinds, ``sda.lam`` and ``sda.score`` their ranges.  Values are checked against the ``Option`` in
    ``request`` (a 400 naming ``sda.FIELD``)."""
    return {SDA_JUDGE[name]: _option_field(annotation, opt) for name, annotation, _default, opt in judge_options()
            if name in SDA_JUDGE}


class _SdaFields(BaseModel):
    """The non-standard ``sda`` field (clients send it with ``extra_body``).  Unknown keys are refused (422), so a
    misspelt option never goes unnoticed."""

    model_config = ConfigDict(extra="forbid")
    preset: StrictStr | None = None
    instruction: StrictStr | None = None
    placement: StrictStr | None = None
    mapping: StrictStr | None = None
    fallback_lam: Number | None = None
    control_vectors: list[StrictStr | ControlVectorSpec] | None = None
    cv_scale: Number = 1.0
    cv_layers: StrictStr | None = None
    cv_streams: StrictStr = DEFAULT_CV_STREAMS
    return_base: StrictBool = False
    steer_toward: StrictStr | None = Field(None, description="preset (the default) or system: steer toward the "
                                           "request's own system message (the model MODEL+system does the same)",
                                           json_schema_extra={"enum": ["preset", "system"]})
    stream_logprobs: StrictBool = Field(False, description="with logprobs: true, each token's entry also carries "
                                        "sda.top_logprobs_with / sda.top_logprobs_without (the two unsteered streams)")


SdaOptions = create_model("SdaOptions", __base__=_SdaFields, __doc__=_SdaFields.__doc__, **_judge_fields(),
                          **_sampling_fields())


_PENALTY = {"type": "number", "minimum": -2.0, "maximum": 2.0}


class _GenerationRequest(BaseModel):
    """The fields ``/v1/chat/completions`` and ``/v1/completions`` share."""

    model_config = ConfigDict(extra="allow")
    model: StrictStr
    max_tokens: StrictInt | None = None
    max_completion_tokens: StrictInt | None = None
    temperature: Number | None = None
    top_p: Number | None = None
    seed: StrictInt | None = None
    stop: StrictStr | list[StrictStr] | None = None
    stream: StrictBool | None = False
    stream_options: StreamOptions | None = None
    n: StrictInt | None = None
    # checked in ``request`` (a 400 naming the field, as OpenAI refuses them); the penalties are then ignored
    frequency_penalty: Any = Field(None, json_schema_extra=_PENALTY)
    presence_penalty: Any = Field(None, json_schema_extra=_PENALTY)
    sda: SdaOptions | None = None


class ChatRequest(_GenerationRequest):
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[Any] | None = None
    tool_choice: Any = None
    functions: list[Any] | None = None
    function_call: Any = None
    logprobs: StrictBool | None = None
    top_logprobs: Any = Field(None, json_schema_extra={"type": "integer", "minimum": 0, "maximum": 20})
    response_format: ResponseFormat | None = None


class CompletionRequest(_GenerationRequest):
    """``POST /v1/completions``: the legacy text completion (``prompt``, one string or a list of one)."""

    prompt: StrictStr | list[StrictStr]
    best_of: StrictInt | None = None
    echo: StrictBool | None = None
    suffix: StrictStr | None = None
    logprobs: Any = None


# -- responses ------------------------------------------------------------------------------------------------
def completion_id(prefix: str = "chatcmpl-") -> str:
    return prefix + uuid.uuid4().hex[:24]


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def logprobs_body(entries: list | None) -> dict | None:
    """A choice's ``logprobs``: None when they were not asked for."""
    return None if entries is None else {"content": entries, "refusal": None}


def completion_body(cid: str, model: str, text: str, finish_reason: str, usage_: dict, sda: dict | None,
                    logprobs: list | None = None) -> dict:
    body = {"id": cid, "object": "chat.completion", "created": int(time.time()), "model": model,
            "system_fingerprint": "sda-local",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "logprobs": logprobs_body(logprobs), "finish_reason": finish_reason}],
            "usage": usage_}
    if sda is not None:
        body["sda"] = sda
    return body


def chunk_body(cid: str, model: str, created: int, delta: dict, finish_reason: str | None = None,
               extra: dict | None = None, choices: bool = True, logprobs: list | None = None) -> dict:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
            "system_fingerprint": "sda-local",
            "choices": [{"index": 0, "delta": delta, "logprobs": logprobs_body(logprobs),
                         "finish_reason": finish_reason}]
            if choices else []}
    if extra:
        body.update(extra)
    return body



def text_completion_body(cid: str, model: str, text: str, finish_reason: str | None, usage_: dict | None,
                         sda: dict | None, created: int | None = None, choices: bool = True) -> dict:
    """A legacy completion (``object: text_completion``), whole or one streamed chunk (``usage_`` None)."""
    body = {"id": cid, "object": "text_completion", "created": created or int(time.time()), "model": model,
            "system_fingerprint": "sda-local",
            "choices": [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish_reason}]
            if choices else []}
    if usage_ is not None:
        body["usage"] = usage_
    if sda is not None:
        body["sda"] = sda
    return body
