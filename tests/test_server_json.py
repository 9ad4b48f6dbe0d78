"""``response_format`` (issue 18): JSON output enforced through a llama.cpp grammar, for plain and SDA decoding.

The tiny random-weight model (its end-of-turn token pushed far down) would ramble forever; under a schema of
bounded size it must write the JSON and then stop, since once the grammar is complete only the end of
generation is allowed.  ``json_object`` runs on the embedded SmolLM2, a real model asked for an object.
"""
from __future__ import annotations

import json

import openai
import pytest
from server_fixtures import openai_client, server  # noqa: F401  (fixtures)
from test_server import KEY, MODEL, files, post, serve  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

SCHEMA = {"type": "object", "additionalProperties": False, "required": ["ok", "size", "name", "tags"],
          "properties": {"ok": {"type": "boolean"}, "size": {"enum": ["small", "large", 3]},
                         "name": {"type": "string", "maxLength": 6},
                         "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 2},
                         "note": {"anyOf": [{"type": "string", "maxLength": 4}, {"type": "null"}]},
                         "mood": {"type": ["boolean", "null"]}}}
FORMAT = {"type": "json_schema", "json_schema": {"name": "answer", "schema": SCHEMA, "strict": True}}
MSGS = [{"role": "user", "content": "Describe the basil plant."}]


def valid(text: str) -> dict:
    """``text`` parsed, and checked against ``SCHEMA`` keyword by keyword."""
    obj = json.loads(text)
    assert isinstance(obj, dict) and set(obj) <= set(SCHEMA["properties"]) and set(SCHEMA["required"]) <= set(obj)
    assert isinstance(obj["ok"], bool) and obj["size"] in ("small", "large", 3)
    assert isinstance(obj["name"], str) and len(obj["name"]) <= 6
    assert isinstance(obj["tags"], list) and len(obj["tags"]) <= 2
    assert all(isinstance(t, int) and not isinstance(t, bool) for t in obj["tags"])
    assert obj.get("note") is None or (isinstance(obj["note"], str) and len(obj["note"]) <= 4)
    assert obj.get("mood") in (None, True, False)
    return obj


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:  # noqa: F811
    return openai_client(server, timeout=120)  # JSON answers from the real model take longer


@pytest.mark.parametrize("sda", [None, {"lam": 0.5}, {"lam": 0.9, "plausibility": 0.9}],
                         ids=["plain", "sda", "sda-strict-plausibility"])
def test_json_schema_answers_validate_plain_and_sda(client, sda):
    extra = {"extra_body": {"sda": sda}} if sda else {}
    texts = []
    for seed in (1, 2, 3):
        r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=400, seed=seed,
                                           response_format=FORMAT, **extra)
        assert r.choices[0].finish_reason == "stop"  # complete: then only the end of generation was allowed
        valid(r.choices[0].message.content)
        texts.append(r.choices[0].message.content)
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=400, seed=1,
                                                 response_format=FORMAT, stream=True, **extra))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == texts[0]
    unconstrained = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=40, seed=1, **extra)
    with pytest.raises(ValueError):
        json.loads(unconstrained.choices[0].message.content)  # the tiny model alone writes no JSON


def test_the_reported_distribution_is_the_grammars(client):
    """With logprobs, the drawn-from distribution is the masked one: the first token can only open the object."""
    r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=400, seed=1, response_format=FORMAT,
                                       logprobs=True, top_logprobs=5, extra_body={"sda": {"lam": 0.5}})
    first = r.choices[0].logprobs.content[0]
    assert first.token == "{" and first.logprob == pytest.approx(0.0, abs=1e-6)
    assert [t.token for t in first.top_logprobs] == ["{"]  # every other token has probability 0
    valid(r.choices[0].message.content)


@pytest.mark.parametrize("fmt, param, words", [
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": ["string", "null"], "maxLength": 4}}},
     "response_format.json_schema.schema", "'maxLength' is not enforced"),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "integer", "minimum": 1}}},
     "response_format.json_schema.schema", "'minimum' is not enforced"),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "object", "properties": {
        "when": {"type": "string", "format": "email"}}}}},
     "response_format.json_schema.schema.properties.when", "format 'email'"),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "string", "pattern": "[a-z]+"}}},
     "response_format.json_schema.schema", "must start with ^"),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"$ref": "https://example.com/s.json"}}},
     "response_format.json_schema.schema", "local references"),
    ({"type": "json_schema", "json_schema": {"name": "n", "schema": {"type": "decimal"}}},
     "response_format.json_schema.schema", "unknown type"),
    ({"type": "json_schema", "json_schema": {"name": "n"}}, "response_format.json_schema.schema", "needs"),
    ({"type": "xml"}, "response_format.type", "json_object"),
])
def test_a_schema_the_grammar_cannot_enforce_is_a_400_that_says_so(server, fmt, param, words):
    r = post(server, {"model": MODEL, "messages": MSGS, "max_tokens": 2, "response_format": fmt})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert err["param"] == param and words in err["message"], err


def test_response_format_of_the_wrong_type_is_a_422(server):
    r = post(server, {"model": MODEL, "messages": MSGS, "response_format": "json"})
    assert r.status_code == 422 and r.json()["error"]["param"] == "response_format"


def test_json_object_from_a_real_model_plain_and_sda(files):  # noqa: F811
    with serve(files, "--model", "smollm2-135m", "--n-ctx", "1024") as s:
        c = openai_client(s, timeout=300)
        msgs = [{"role": "user", "content": "Give the name and the colour of a fruit as a JSON object."}]
        for extra in ({}, {"extra_body": {"sda": {"preset": "helpfulness", "lam": 0.5}}}):
            r = c.chat.completions.create(model="smollm2-135m", messages=msgs, max_tokens=120, seed=0,
                                          response_format={"type": "json_object"}, **extra)
            assert r.choices[0].finish_reason == "stop", r.choices[0].message.content
            assert isinstance(json.loads(r.choices[0].message.content), dict)
