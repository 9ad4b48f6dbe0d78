"""JSON output as a GBNF grammar: any JSON object (``json_object``), or a JSON schema (``json_schema``).

The schema is converted by llama-cpp-python's ``json_schema_to_gbnf``.  That converter silently ignores some
keywords (number bounds, ``multipleOf``, ``uniqueItems``, ``patternProperties``, unknown string formats, …)
and misreads others (``allOf`` of non-object schemas), so a grammar from such a schema would not enforce what
the schema says.  ``schema_gbnf`` therefore walks the schema first and refuses every keyword the converter
does not enforce where it stands (``SchemaError`` naming the keyword and its place); annotations (``title``,
``description``, ``default``, …) are allowed anywhere.
"""
from __future__ import annotations

import json

from llama_cpp.llama_grammar import json_schema_to_gbnf

from ..errors import SdaError

ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
               "readOnly", "writeOnly", "$defs", "definitions"}
FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
# the largest minLength / maxLength / minItems / maxItems enforced: the converter writes out one repetition per
# unit (10**12 is a MemoryError), and llama.cpp's parser recurses once per optional one (20000 crashes the process)
MAX_REPEAT = 1000
REPEATS = ("minLength", "maxLength", "minItems", "maxItems")


class SchemaError(SdaError):
    """A JSON schema the grammar converter cannot enforce; ``where`` is the path inside the schema."""

    def __init__(self, message: str, where: str = ""):
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


_LOOSE_CHAR = 'char ::= [^"\\\\] |'            # the converter's string character: control characters too
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'   # JSON's: no raw control characters (RFC 8259)


def _json_strings(gbnf: str) -> str:
    """``gbnf`` with JSON's own string characters (a raw control character makes the text invalid JSON)."""
    return gbnf.replace(_LOOSE_CHAR, _JSON_CHAR)


def json_object_gbnf() -> str:
    """Any JSON object."""
    return _json_strings(json_schema_to_gbnf(json.dumps({"type": "object"})))


def _branch(s: dict) -> tuple[str, set[str]]:
    """Which of the converter's cases ``s`` falls into (its checks, in its order), and the keywords it enforces."""
    t = s.get("type")
    if "$ref" in s:
        return "ref", {"$ref"}
    if "oneOf" in s or "anyOf" in s:
        return "union", {"oneOf" if "oneOf" in s else "anyOf"}
    if isinstance(t, list):
        return "types", {"type"}
    if "const" in s:
        return "const", {"const"}
    if "enum" in s:
        return "enum", {"enum"}
    if t in (None, "object") and ("properties" in s or s.get("additionalProperties", True) is not True):
        return "object", {"type", "properties", "required", "additionalProperties"}
    if t in (None, "object") and "allOf" in s:
        return "allOf", {"type", "allOf"}
    if t in (None, "array") and ("items" in s or "prefixItems" in s):
        return "array", {"type", "items", "prefixItems", "minItems", "maxItems"}
    if t in (None, "string") and "pattern" in s:
        return "pattern", {"type", "pattern"}
    if t in (None, "string") and "format" in s:
        return "format", {"type", "format"}
    if t == "string":
        return "string", {"type", "minLength", "maxLength"}
    return "primitive", {"type"}


def _children(s: dict, branch: str, where: str):
    """The sub-schemas the converter visits in this branch, with their paths."""
    if branch == "union":
        key = "oneOf" if "oneOf" in s else "anyOf"
        yield from ((x, f"{where}.{key}[{i}]") for i, x in enumerate(s[key]))
    elif branch == "object":
        for name, sub in (s.get("properties") or {}).items():
            yield sub, f"{where}.properties.{name}"
        if isinstance(s.get("additionalProperties"), dict):
            yield s["additionalProperties"], f"{where}.additionalProperties"
    elif branch == "allOf":
        yield from ((x, f"{where}.allOf[{i}]") for i, x in enumerate(s["allOf"]))
    elif branch == "array":
        items = s.get("items") or s.get("prefixItems")
        if isinstance(items, list):
            yield from ((x, f"{where}.items[{i}]") for i, x in enumerate(items))
        else:
            yield items, f"{where}.items"
    for key in ("$defs", "definitions"):
        for name, sub in (s.get(key) or {}).items():
            yield sub, f"{where}.{key}.{name}"


def _check_node(s: dict, branch: str, where: str) -> None:
    t = s.get("type")
    for key in REPEATS:
        n = s.get(key)
        if isinstance(n, (int, float)) and not isinstance(n, bool) and n > MAX_REPEAT:
            raise SchemaError(f"{key} {n!r:.40} is more than the grammar enforces (at most {MAX_REPEAT})", where)
    if branch == "ref" and not str(s["$ref"]).startswith("#"):
        raise SchemaError(f"only local references (#/…) can be used, not {s['$ref']!r:.80}", where)
    if branch == "types" and not set(t) <= TYPES:
        raise SchemaError(f"unknown type in {t!r:.80}", where)
    if branch == "primitive" and t is not None and t not in TYPES:
        raise SchemaError(f"unknown type {t!r:.40}", where)
    if branch == "pattern" and not (str(s["pattern"]).startswith("^") and str(s["pattern"]).endswith("$")):
        raise SchemaError("a pattern must start with ^ and end with $ to be enforced", where)
    if branch == "format" and s["format"] not in FORMATS:
        raise SchemaError(f"string format {s['format']!r:.40} is not enforced (supported: "
                          f"{', '.join(sorted(FORMATS))})", where)
    if branch == "allOf":
        for i, part in enumerate(s["allOf"]):
            if not isinstance(part, dict) or not ("properties" in part or "$ref" in part or "anyOf" in part):
                raise SchemaError("allOf is enforced only as a merge of object schemas with properties",
                                  f"{where}.allOf[{i}]")


def _walk(s, where: str) -> None:
    if isinstance(s, bool):
        raise SchemaError("a boolean schema is not supported; give an object", where)
    if not isinstance(s, dict):
        raise SchemaError(f"a schema must be a JSON object, got {type(s).__name__}", where)
    branch, enforced = _branch(s)
    extra = sorted(set(s) - enforced - ANNOTATIONS)
    if extra:
        raise SchemaError(f"{', '.join(map(repr, extra))} {'is' if len(extra) == 1 else 'are'} not enforced by the grammar "
                          f"converter here (it applies {', '.join(sorted(enforced))}); remove "
                          f"{'it' if len(extra) == 1 else 'them'}", where)
    _check_node(s, branch, where)
    for sub, path in _children(s, branch, where):
        _walk(sub, path)


def schema_gbnf(schema, where: str = "schema") -> str:
    """The GBNF grammar of ``schema``; ``SchemaError`` for what the converter cannot enforce (module docstring)."""
    _walk(schema, where)
    try:
        return _json_strings(json_schema_to_gbnf(json.dumps(schema)))
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SchemaError(f"the grammar converter cannot handle this schema: {exc}", where) from None
