"""Structured outputs from Pydantic models (issue 29), and the server's request checks that came with it.

The converter's part is checked on the grammar itself: each grammar is parsed by llama.cpp and run over texts
(byte tokens of the tiny model's vocabulary), so "enforced" means llama.cpp accepts the valid JSON and refuses
the invalid.  The server's part goes through the official client's ``chat.completions.parse`` / ``stream`` on
the tiny random-weight model (its end-of-turn token pushed far down): the grammar alone makes its answer valid
JSON, and it can only stop once the JSON is complete.
"""
from __future__ import annotations

import ctypes
import enum
import json
import re
from typing import Literal, Optional, Union

import llama_cpp
import numpy as np
import openai
import pytest
from pydantic import BaseModel, Field
from server_fixtures import openai_client, server  # noqa: F401  (fixtures)
from test_server import MODEL, files, post  # noqa: F401  (fixtures)

from sda_local.runtime.schema_grammar import (
    MAX_NODES,
    SchemaError,
    normalize,
    schema_gbnf,
)

MSGS = [{"role": "user", "content": "Describe a pet."}]


class Colour(enum.Enum):
    RED = "red"
    GREEN = "green"


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Owner(BaseModel):
    name: str = Field(max_length=4, description="first name")
    age: Optional[int] = None


class Pet(BaseModel):
    """Literal, single Literal (const), Enum, IntEnum, nested model ($ref with a description beside it), a list of
    models, Optional of a model and of a Literal."""

    kind: Literal["cat", "dog"]
    legs: Literal[4]
    colour: Colour
    size: Size = Field(description="how big")
    owner: Owner = Field(description="who feeds it")
    friends: list[Owner] = Field(max_length=2)
    vet: Optional[Owner] = None
    mood: Optional[Literal["calm", "wild"]] = None


PET = Pet(kind="cat", legs=4, colour=Colour.RED, size=Size.LARGE, owner=Owner(name="Al", age=3),
          friends=[Owner(name="Bo")], vet=None, mood="wild")


def _schemas(model) -> dict:
    from openai.lib._pydantic import to_strict_json_schema

    return {"pydantic": model.model_json_schema(), "openai-strict": to_strict_json_schema(model)}


# -- the grammar, run by llama.cpp ------------------------------------------------------------------------------
_TOKEN = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)


@pytest.fixture(scope="module")
def accepts(tiny_gguf):
    """``accepts(gbnf, text)``: does llama.cpp's grammar sampler take ``text`` token by token, and then allow the
    end of generation (the JSON complete)?"""
    from sda_local.runtime.backend import LoadedModel
    from sda_local.runtime.grammar import check_grammar

    model = LoadedModel(str(tiny_gguf))
    eog = [t for t in range(model.n_vocab) if llama_cpp.llama_vocab_is_eog(model.vocab, t)]

    def allowed(smpl, ids) -> set[int]:
        data = np.zeros(len(ids), _TOKEN)
        data["id"] = ids
        arr = llama_cpp.llama_token_data_array(data.ctypes.data_as(llama_cpp.llama_token_data_p), data.size, -1,
                                               False)
        llama_cpp.llama_sampler_apply(smpl, ctypes.byref(arr))
        out = np.ctypeslib.as_array(arr.data, shape=(arr.size,))
        return set(out["id"][np.isfinite(out["logit"])].tolist())

    def run(gbnf: str, text: str) -> bool:
        check_grammar(model, gbnf)
        smpl = llama_cpp.llama_sampler_init_grammar(model.vocab, gbnf.encode(), b"root")
        try:
            for tok in model.tokenize(text, special=False):
                if tok not in allowed(smpl, [tok]):
                    return False
                llama_cpp.llama_sampler_accept(smpl, tok)
            return bool(allowed(smpl, eog))
        finally:
            llama_cpp.llama_sampler_free(smpl)

    yield run
    model.close()


def _with(obj: dict, **changes) -> str:
    out = dict(obj)
    for k, v in changes.items():
        if v is ...:
            out.pop(k)
        else:
            out[k] = v
    return json.dumps(out)


@pytest.mark.parametrize("source", ["pydantic", "openai-strict"])
def test_pydantic_schemas_become_grammars_that_enforce_them(accepts, source):
    schema = _schemas(Pet)[source]
    gbnf = schema_gbnf(schema)
    good = json.loads(PET.model_dump_json())
    assert accepts(gbnf, PET.model_dump_json()) and accepts(gbnf, json.dumps(good))  # compact and spaced
    assert accepts(gbnf, _with(good, vet={"name": "Cy", "age": None}, mood=None))
    for bad in (_with(good, kind="cow"),                               # Literal: one of its values only
                _with(good, legs=3), _with(good, colour="blue"), _with(good, size=3),  # const, Enum, IntEnum
                _with(good, kind=...), _with(good, owner=...),          # a required property is present
                _with(good, owner={"age": 3}),                           # ... in a nested model too
                _with(good, owner={"name": "Alexander", "age": 3}),       # maxLength of a referenced model
                _with(good, friends=[{"name": "a"}] * 3),                # maxItems
                _with(good, mood="sleepy"), _with(good, extra=1)):       # Optional[Literal]; no other property
        assert not accepts(gbnf, bad), bad
    if source == "openai-strict":  # (every property required there)
        assert not accepts(gbnf, _with(good, vet=...))


def test_type_beside_enum_or_const_is_checked_not_refused(accepts):
    assert normalize({"type": "string", "enum": ["cat", "dog"], "title": "Kind"}) == {"enum": ["cat", "dog"]}
    assert normalize({"type": ["integer", "null"], "enum": [1, 2.0, None]}) == {"enum": [1, 2.0, None]}
    assert normalize({"type": "integer", "const": 4}) == {"const": 4}
    for bad, value in (({"type": "string", "enum": ["cat", 3]}, "3"), ({"type": "integer", "const": 1.5}, "1.5"),
                       ({"type": "number", "enum": [True]}, "True"), ({"type": "string", "enum": []}, None)):
        with pytest.raises(SchemaError) as e:
            normalize(bad)
        assert (value is None and "non-empty" in str(e.value)) or f"value {value}" in str(e.value)


def test_references_are_written_out_and_cycles_refused(accepts):
    schema = {"$defs": {"A": {"enum": ["a"]}, "Pair": {"type": "object", "additionalProperties": False,
                                                        "properties": {"x": {"$ref": "#/$defs/A"},
                                                                       "y": {"$ref": "#/$defs/A", "title": "Y"}},
                                                        "required": ["x", "y"]}},
              "$ref": "#/$defs/Pair", "title": "Root"}
    gbnf = schema_gbnf(schema)
    assert accepts(gbnf, '{"x": "a", "y": "a"}') and not accepts(gbnf, '{"x": "a", "y": "b"}')
    # a $def named like a property (or a built-in rule) is no longer confused with it
    clash = {"type": "object", "properties": {"Item": {"type": "integer"}, "x": {"$ref": "#/$defs/Item"},
                                              "string": {"$ref": "#/$defs/string"}},
             "required": ["Item", "x", "string"], "$defs": {"Item": {"enum": ["i"]}, "string": {"const": 5}}}
    gbnf = schema_gbnf(clash)
    assert accepts(gbnf, '{"Item": 1, "x": "i", "string": 5}') and not accepts(gbnf, '{"Item": 1, "x": 1, "string": 5}')

    class Node(BaseModel):
        value: int
        children: list["Node"]

    with pytest.raises(SchemaError) as e:
        normalize(Node.model_json_schema(), "s")
    assert e.value.where == "s.$defs.Node.properties.children.items" and "leads back to itself" in str(e.value)
    for bad, words in (({"$ref": "#/$defs/Nope"}, "points to nothing"), ({"$ref": "#anchor"}, "JSON-pointer"),
                       ({"$ref": "#/$defs/A", "type": "string", "$defs": {"A": {}}}, "beside $ref")):
        with pytest.raises(SchemaError, match=re.escape(words)):
            normalize(bad)
    defs = {f"D{i}": {"type": "array", "items": {"anyOf": [{"$ref": f"#/$defs/D{i - 1}"}] * 2}} for i in range(1, 20)}
    with pytest.raises(SchemaError, match=f"more than {MAX_NODES} sub-schemas"):  # 2**19 written out: refused
        normalize({"$ref": "#/$defs/D19", "$defs": {"D0": {"type": "integer"}, **defs}})


def test_unions_all_of_and_required(accepts):
    class Cat(BaseModel):
        kind: Literal["cat"]
        lives: int

    class Dog(BaseModel):
        kind: Literal["dog"]
        good: bool

    class Box(BaseModel):
        pet: Union[Cat, Dog] = Field(discriminator="kind")   # oneOf (+ discriminator): alternatives exclusive

    gbnf = schema_gbnf(Box.model_json_schema())
    assert accepts(gbnf, '{"pet": {"kind": "dog", "good": true}}')
    assert not accepts(gbnf, '{"pet": {"kind": "cat", "good": true}}')
    with pytest.raises(SchemaError, match="oneOf as anyOf"):  # "a" matches both: oneOf would refuse it
        normalize({"oneOf": [{"type": "string"}, {"enum": ["a", 1]}]})
    # Pydantic's older wrapper: allOf of one reference is that schema (an enum, not an object)
    old = {"type": "object", "properties": {"c": {"allOf": [{"$ref": "#/$defs/C"}], "description": "colour"}},
           "required": ["c"], "$defs": {"C": {"enum": ["red"], "type": "string"}}}
    gbnf = schema_gbnf(old)
    assert accepts(gbnf, '{"c": "red"}') and not accepts(gbnf, '{"c": {}}')
    with pytest.raises(SchemaError, match="required names 'b'"):
        normalize({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a", "b"]})
    with pytest.raises(SchemaError, match="defined in two parts"):
        normalize({"allOf": [{"properties": {"a": {"type": "string"}}},
                             {"properties": {"a": {"type": "string", "maxLength": 2}}}]})


def test_literals_with_backslashes_and_rule_names_of_built_ins(accepts):
    key = 'q"\\k'
    gbnf = schema_gbnf({"type": "object", "properties": {key: {"enum": ["a\\b", 'say "hi"']}}, "required": [key]})
    assert accepts(gbnf, json.dumps({key: "a\\b"})) and accepts(gbnf, json.dumps({key: 'say "hi"'}))
    assert not accepts(gbnf, '{"q\\"\\\\k": "a\\b"}')  # "\b" is a backspace, not a backslash and a b
    # a property "date_time" made first used to stand for the built-in rule of date-time strings
    gbnf = schema_gbnf({"type": "object", "properties": {"date_time": {"enum": ["x"]},
                                                         "at": {"type": "string", "format": "date-time"}},
                        "required": ["date_time", "at"]})
    assert accepts(gbnf, '{"date_time": "x", "at": "2024-05-06T07:08:09Z"}')
    assert not accepts(gbnf, '{"date_time": "x", "at": "x"}')


# -- through the server and the official client ------------------------------------------------------------------
class Reply(BaseModel):
    """Bounded in size, so the tiny model can only stop once the JSON is complete."""

    kind: Literal["cat", "dog"]
    colour: Colour
    owner: Owner = Field(description="who feeds it")
    friends: list[Owner] = Field(max_length=1)
    mood: Optional[Literal["calm", "wild"]]


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:  # noqa: F811
    return openai_client(server, timeout=120)


@pytest.mark.slow
@pytest.mark.parametrize("sda", [None, {"lam": 0.5}], ids=["plain", "sda"])
def test_parse_with_a_pydantic_model_plain_and_streamed(client, sda):
    extra = {"extra_body": {"sda": sda}} if sda else {}
    kw = dict(model=MODEL, messages=MSGS, max_tokens=300, seed=3, response_format=Reply, **extra)
    r = client.chat.completions.parse(**kw)
    assert r.choices[0].finish_reason == "stop"
    parsed = r.choices[0].message.parsed
    assert isinstance(parsed, Reply) and Reply.model_validate_json(r.choices[0].message.content) == parsed
    with client.chat.completions.stream(**kw) as s:
        deltas = [ev.delta for ev in s if ev.type == "content.delta"]
        final = s.get_final_completion()
    assert final.choices[0].message.parsed == parsed and "".join(deltas) == r.choices[0].message.content


@pytest.mark.slow
def test_pydantic_own_schema_with_refs_beside_descriptions(client):
    """``model_json_schema()`` as it is (not made strict): ``$ref`` beside a description, optional fields."""
    fmt = {"type": "json_schema", "json_schema": {"name": "reply", "schema": Reply.model_json_schema()}}
    for seed in (1, 2):
        r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=300, seed=seed,
                                           response_format=fmt)
        assert r.choices[0].finish_reason == "stop"
        Reply.model_validate_json(r.choices[0].message.content)


@pytest.mark.slow
def test_what_the_grammar_cannot_enforce_is_still_a_clear_400(server):  # noqa: F811
    class Bounded(BaseModel):
        n: int = Field(ge=0)

    class Node(BaseModel):
        children: list["Node"]

    for model, param, words in ((Bounded, ".properties.n", "'minimum' is not enforced"),
                                (Node, ".$defs.Node.properties.children.items", "leads back to itself")):
        fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": model.model_json_schema()}}
        r = post(server, {"model": MODEL, "messages": MSGS, "max_tokens": 2, "response_format": fmt})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["code"] == "unsupported_schema" and err["param"] == "response_format.json_schema.schema" + param
        assert words in err["message"], err


# -- request checks -----------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_an_empty_prompt_is_a_400_in_the_requests_terms(client):
    for prompt in ("", [""]):
        with pytest.raises(openai.BadRequestError) as e:
            client.completions.create(model=MODEL, prompt=prompt, max_tokens=4)
        err = e.value.body
        assert err["param"] == "prompt" and err["message"].startswith("prompt is empty"), err
        assert "logits" not in err["message"]


@pytest.mark.slow
@pytest.mark.parametrize("role", ["user", "system", "assistant"])
def test_a_message_without_content_is_a_400_naming_it(server, role):  # noqa: F811
    msgs = [{"role": "user", "content": "Hi"}, {"role": role, "content": None}, {"role": "user", "content": "Go"}]
    for m in (msgs, [msgs[0], {"role": role}, msgs[2]]):  # null, and missing
        r = post(server, {"model": MODEL, "messages": m, "max_tokens": 2})
        assert r.status_code == 400, r.text
        err = r.json()["error"]
        assert err["param"] == "messages[1].content" and "missing or null" in err["message"], err


@pytest.mark.slow
def test_a_negative_seed_is_accepted_and_reproducible(client):
    kw = {"model": MODEL, "messages": MSGS, "max_tokens": 8, "temperature": 1.0}
    a, b = (client.chat.completions.create(seed=-7, **kw).choices[0].message.content for _ in range(2))
    assert a == b != ""
    # -s is used as 2**64 - s (documented): every 64-bit seed stays its own seed
    assert client.chat.completions.create(seed=2**64 - 7, **kw).choices[0].message.content == a
    lowest = client.chat.completions.create(seed=-2**63, **kw).choices[0].message.content
    assert lowest == client.chat.completions.create(seed=-2**63, **kw).choices[0].message.content


@pytest.mark.slow
def test_steered_diagnostics_report_the_contrast(client):
    from sda_local.core.params import CONTRASTS

    def sda(**opts) -> dict:
        r = client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3, seed=0,
                                           extra_body={"sda": {"lam": 0.5, **opts}})
        return r.model_extra["sda"]

    assert sda(contrast="neutral")["contrast"] == "neutral"
    own = sda()["contrast"]
    assert own in CONTRASTS and own != "auto"  # "auto" reported as the preset's own choice
    chunks = list(client.chat.completions.create(model=MODEL, messages=MSGS, max_tokens=3, seed=0, stream=True,
                                                 extra_body={"sda": {"lam": 0.5, "contrast": "ignore"}}))
    assert chunks[-1].model_extra["sda"]["contrast"] == "ignore"
