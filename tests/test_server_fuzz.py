"""Schemathesis against the real server: requests generated from its own ``/openapi.json`` (valid bodies and
broken ones, within and outside the ranges the schema publishes) on every operation; none may get a 5xx, and
the server still answers afterwards.  ``--max-tokens-limit 2`` keeps each generation to two tokens.  Beside them,
bodies found by probing past the generated cases (each once a 500, or a crash), which must be a 400."""
from __future__ import annotations

import json
from collections import Counter

import httpx
import pytest

schemathesis = pytest.importorskip(
    "schemathesis", reason="schemathesis is not installed (it is in the [dev] extra: pip install -e '.[dev]')")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from test_server import KEY, MODEL, files, serve  # noqa: F401  (fixtures)

AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = 40  # generated requests per operation and mode (Hypothesis max_examples)


@pytest.fixture(scope="module")
def server(files):  # noqa: F811
    with serve(files, "--max-tokens-limit", "2", "--max-queue", "4") as s:
        yield s


@pytest.fixture(scope="module")
def api_schema(server):
    return schemathesis.openapi.from_url(server["url"] + "/openapi.json")


def test_schema_publishes_the_ranges(server):
    """The sampling fields' ranges, checked in ``request``, are in the schema Schemathesis generates from."""
    schemas = httpx.get(server["url"] + "/openapi.json").json()["components"]["schemas"]
    for name in ("ChatRequest", "CompletionRequest"):
        props = schemas[name]["properties"]
        assert (props["temperature"]["minimum"], props["temperature"]["maximum"]) == (0.0, 2.0)
        assert (props["top_p"]["exclusiveMinimum"], props["top_p"]["maximum"]) == (0.0, 1.0)
        assert props["max_tokens"]["minimum"] == props["max_completion_tokens"]["minimum"] == 1
        assert "minimum" not in props["seed"]  # any integer, as OpenAI's (a negative one mapped: engine_seed)
        assert (props["presence_penalty"]["minimum"], props["presence_penalty"]["maximum"]) == (-2.0, 2.0)
    assert schemas["ChatRequest"]["properties"]["top_logprobs"]["maximum"] == 20
    message = schemas["ChatMessage"]
    assert "content" in message["required"] and {"type": "null"} not in message["properties"]["content"]["anyOf"]
    assert schemas["SdaOptions"]["properties"]["plausibility"]["exclusiveMaximum"] == 1.0


OPERATIONS = {"POST /v1/chat/completions", "POST /v1/completions", "GET /v1/models", "GET /v1/models/{model_id}",
              "GET /health"}
GENERATING = {"POST /v1/chat/completions", "POST /v1/completions"}
# nothing a negative request could break: no input, or only a string path segment (any segment is a string)
UNBREAKABLE = {"GET /v1/models", "GET /health", "GET /v1/models/{model_id}"}
ROLES = ["system", "developer", "user", "assistant"]


@st.composite
def _served(draw, cases):
    """A valid case whose body names the served model (alone or with a preset) and whose messages have roles the
    server takes, ending with a user message: past the 404 and the role check, so some reach the model."""
    case = draw(cases)
    if isinstance(case.body, dict):
        case.body["model"] = draw(st.sampled_from([MODEL, f"{MODEL}+harmlessness", f"{MODEL}+concise"]))
        messages = [m for m in case.body.get("messages") or [] if isinstance(m, dict)]
        for i, m in enumerate(messages):
            m["role"] = "user" if i == len(messages) - 1 else draw(st.sampled_from(ROLES))
    return case


def _fuzz(operation, mode: str, statuses: dict[str, list[int]]) -> None:
    cases = operation.as_strategy(generation_mode=GenerationMode.NEGATIVE if mode == "negative"
                                  else GenerationMode.POSITIVE)

    @given(case=_served(cases) if mode == "served" else cases)
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def fuzz(case):
        response = case.call_and_validate(headers=AUTH, checks=[not_a_server_error], timeout=60)
        statuses.setdefault(operation.label, []).append(response.status_code)

    fuzz()


@pytest.mark.parametrize("mode", ["positive", "negative", "served"])
def test_no_server_error(api_schema, mode):
    """``EXAMPLES`` requests per operation: bodies and paths the schema allows (positive), bodies it does not
    (negative: wrong types, out-of-range numbers, missing fields), and allowed bodies for the served model
    (served: past the model and role checks, some generate); no answer may be a 5xx.  Derandomized, so every
    run sends the same requests.  (``schemathesis.pytest.from_fixture`` would run the operations itself, but
    fails under pytest 9: it reads ``request.node._nodeid``.)"""
    statuses: dict[str, list[int]] = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        if mode == "served" and operation.label not in GENERATING:
            continue
        try:
            _fuzz(operation, mode, statuses)
        except Unsatisfiable:
            assert mode == "negative" and operation.label in UNBREAKABLE, operation.label
    expected = {"positive": OPERATIONS, "negative": OPERATIONS - UNBREAKABLE, "served": GENERATING}[mode]
    assert set(statuses) == expected
    counts = {label: dict(Counter(codes)) for label, codes in statuses.items()}
    print(f"\n{mode}: {sum(map(len, statuses.values()))} requests, status codes per operation: {counts}")
    if mode == "served":
        assert all(200 in codes for codes in statuses.values()), counts  # the fuzzing reached the model


def _chat(**fields) -> str:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2, **fields})


def _schema(schema: dict) -> dict:
    return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}


# bodies that got a 500 (or took the server down) when probed past what the generated cases reach; each is a 400
EDGES = {
    "lone surrogate": _chat()[:-1] + ', "user": "\\ud800"}',
    "5000-digit integer": _chat()[:-1] + ', "seed": 1' + "0" * 5000 + "}",
    "nested 9000 deep": _chat()[:-1] + ', "user": ' + "[" * 9000 + "]" * 9000 + "}",
    "NUL in a control-vector name": _chat(sda={"lam": 0.5, "control_vectors": ["calm.gguf\0"]}),
    "minLength 10**12": _chat(response_format=_schema({"type": "string", "minLength": 10**12})),
    "maxLength 100000": _chat(response_format=_schema({"type": "string", "maxLength": 100_000})),  # crashed it
    "maxItems 100000": _chat(response_format=_schema({"type": "array", "items": {}, "maxItems": 100_000})),
}


@pytest.mark.parametrize("body", EDGES.values(), ids=EDGES.keys())
def test_edge_bodies_are_refused(server, body):
    r = httpx.post(server["url"] + "/v1/chat/completions", content=body.encode(), timeout=60,
                   headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["message"]


def test_server_survives(server):
    assert server["proc"].poll() is None
    assert httpx.get(server["url"] + "/health", timeout=10).status_code == 200
    r = httpx.post(server["url"] + "/v1/chat/completions", headers=AUTH, timeout=60,
                   json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]})
    assert r.status_code == 200, r.text
    assert "Traceback" not in server["log"].read_text()
