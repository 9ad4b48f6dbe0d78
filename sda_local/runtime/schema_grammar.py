"""JSON output as a GBNF grammar: any JSON object (``json_object``), or a JSON schema (``json_schema``).

The schema is converted by llama-cpp-python's ``SchemaConverter`` (what its ``json_schema_to_gbnf`` runs).  That
converter silently ignores some keywords (number bounds, ``multipleOf``, ``uniqueItems``, ``patternProperties``,
unknown string formats, …) and misreads others (``allOf`` of non-object schemas, keywords beside ``enum``), so a
grammar from such a schema would not enforce what the schema says.  ``schema_gbnf`` therefore first walks the
schema and rewrites it into the part of JSON schema the converter enforces exactly (``_Normalizer``), refusing
every keyword it would not enforce where it stands (``SchemaError`` naming the keyword and its place):

* annotations (``title``, ``description``, ``default``, …) are allowed anywhere and dropped;
* ``type`` beside ``enum`` / ``const`` (what Pydantic writes for ``Literal`` and ``Enum``) is checked against
  the values (every value must be of that type) and dropped: the values alone are the grammar;
* a local ``$ref`` (``#/$defs/Name``, any ``#/…`` JSON pointer) is replaced by what it points to, annotations
  beside it allowed; a reference that leads back to itself is refused (a recursive schema), as is a schema more
  than ``MAX_DEPTH`` levels deep or of more than ``MAX_NODES`` sub-schemas once its references are expanded;
* ``allOf`` of one schema is that schema; of several object schemas, one object with all their properties;
* ``oneOf`` only where no value can match two alternatives (different types, different constants, or objects
  told apart by a required property's constants): the grammar enforces "at least one", not "exactly one";
* ``required`` must name properties the schema defines (the grammar can only write those).

The converter is also made safe where it would write a wrong grammar: literals (constants, property names) with
a backslash or a quote are escaped properly, and a property whose rule name would replace one of the built-in
rules (``date_time`` → ``date-time``) gets another name.
"""
from __future__ import annotations

import json
from urllib.parse import unquote

from llama_cpp.llama_grammar import (
    INVALID_RULE_CHARS_RE,
    PRIMITIVE_RULES,
    STRING_FORMAT_RULES,
    SchemaConverter,
    json_schema_to_gbnf,
)

from ..errors import SdaError

ANNOTATIONS = {"title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated",
               "readOnly", "writeOnly", "$defs", "definitions"}
FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
TYPES = {"object", "array", "string", "number", "integer", "boolean", "null"}
# the largest minLength / maxLength / minItems / maxItems enforced: the converter writes out one repetition per
# unit (10**12 is a MemoryError), and llama.cpp's parser recurses once per optional one (20000 crashes the process)
MAX_REPEAT = 1000
REPEATS = ("minLength", "maxLength", "minItems", "maxItems")
MAX_DEPTH = 64     # nesting levels, references expanded
MAX_NODES = 2000   # sub-schemas, references expanded (a reference used twice is written out twice)
ANY = {"anyOf": [{"type": t} for t in ("object", "array", "string", "number", "boolean", "null")]}


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


_BUILTIN = {name: rule.content for name, rule in {**PRIMITIVE_RULES, **STRING_FORMAT_RULES}.items()}


class _Converter(SchemaConverter):
    """llama-cpp-python's converter with two fixes (module docstring)."""

    def __init__(self):
        super().__init__(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)

    def _format_literal(self, literal: str) -> str:
        # the original leaves a backslash as it is, so the JSON text "a\\b" became "a\b" (a backspace), and "\""
        # ended the literal early
        for a, b in (("\\", "\\\\"), ('"', '\\"'), ("\r", "\\r"), ("\n", "\\n")):
            literal = literal.replace(a, b)
        return f'"{literal}"'

    def _add_rule(self, name: str, rule: str) -> str:
        # a property "date_time" is the rule "date-time": made first, it would stand for the built-in rule that
        # date-time strings use (the original checks only the unescaped name against the built-in names)
        esc = INVALID_RULE_CHARS_RE.sub("-", name)
        if esc in _BUILTIN and rule != _BUILTIN[esc]:
            name = esc + "-"
        return super()._add_rule(name, rule)


def _branch(s: dict) -> tuple[str, set[str]]:
    """Which of the converter's cases ``s`` (no ``$ref``) falls into, and the keywords it enforces there."""
    t = s.get("type")
    if "oneOf" in s or "anyOf" in s:
        return "union", {"oneOf" if "oneOf" in s else "anyOf", "discriminator"}
    if "const" in s:
        return "const", {"const", "type"}
    if "enum" in s:
        return "enum", {"enum", "type"}
    if isinstance(t, list):
        return "types", {"type"}
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


def _fits(value, t: str) -> bool:
    """Is ``value`` (JSON) of JSON-schema type ``t``?"""
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return {"string": isinstance(value, str), "boolean": isinstance(value, bool), "null": value is None,
            "object": isinstance(value, dict), "array": isinstance(value, list), "number": number,
            "integer": number and float(value).is_integer()}[t]


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), "null")


def _key(value) -> str:
    """Equal JSON values, equal keys (1 and 1.0 are one number; True is no number)."""
    if _kind(value) == "number":
        return f"n:{float(value)!r}"
    return json.dumps(value, sort_keys=True)


def _values(s: dict) -> set[str] | None:
    """The keys of the only values a normalized schema allows (None: not a constant or an enum)."""
    if "const" in s:
        return {_key(s["const"])}
    if "enum" in s:
        return {_key(v) for v in s["enum"]}
    return None


def _kinds(s: dict) -> set[str]:
    """The JSON kinds (integer counted as number) a normalized schema may produce."""
    if "const" in s or "enum" in s:
        return {_kind(v) for v in (s["enum"] if "enum" in s else [s["const"]])}
    if "anyOf" in s or "oneOf" in s:
        return set().union(*(_kinds(x) for x in s.get("anyOf") or s["oneOf"]))
    t = s.get("type")
    if t is not None:
        return {"number" if x == "integer" else x for x in (t if isinstance(t, list) else [t])}
    return {"object"}  # (a normalized schema without a type is an object: properties, additionalProperties)


def _disjoint(a: dict, b: dict) -> bool:
    """Can no value match both normalized schemas?  (False when it cannot tell.)"""
    if not _kinds(a) & _kinds(b):
        return True
    va, vb = _values(a), _values(b)
    if va is not None and vb is not None:
        return not va & vb
    if "properties" in a and "properties" in b:  # objects told apart by a required property's constants
        both = set(a.get("required", [])) & set(b.get("required", []))
        for name in both:
            ta, tb = _values(a["properties"][name]), _values(b["properties"][name])
            if ta is not None and tb is not None and not ta & tb:
                return True
    return False


def _count(n, key: str, where: str) -> int:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise SchemaError(f"{key} must be a whole number ≥ 0, got {n!r:.40}", where)
    if n > MAX_REPEAT:
        raise SchemaError(f"{key} {n!r:.40} is more than the grammar enforces (at most {MAX_REPEAT})", where)
    return n


class _Normalizer:
    """The schema rewritten into what the converter enforces exactly (module docstring); ``SchemaError`` else."""

    def __init__(self, root, where: str):
        self.root, self.where, self.nodes = root, where, 0

    def __call__(self, s, where: str, refs: tuple = (), depth: int = 0) -> dict:
        if isinstance(s, bool):
            raise SchemaError("a boolean schema is not supported; give an object", where)
        if not isinstance(s, dict):
            raise SchemaError(f"a schema must be a JSON object, got {type(s).__name__}", where)
        if depth > MAX_DEPTH:
            raise SchemaError(f"the schema is nested more than {MAX_DEPTH} levels deep (references expanded)", where)
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise SchemaError(f"the schema has more than {MAX_NODES} sub-schemas once its references are expanded "
                              "(each use of a reference is written out)", self.where)
        if "$ref" in s:
            return self._ref(s, where, refs, depth)
        branch, enforced = _branch(s)
        extra = sorted(set(s) - enforced - ANNOTATIONS)
        if extra:
            raise SchemaError(f"{', '.join(map(repr, extra))} {'is' if len(extra) == 1 else 'are'} not enforced by the "
                              f"grammar converter here (it applies {', '.join(sorted(enforced - {'discriminator'}))});"
                              f" remove {'it' if len(extra) == 1 else 'them'}", where)
        return getattr(self, "_" + branch.lower())(s, where, refs, depth)

    # -- references -------------------------------------------------------------------------------------------
    def _ref(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        ref = s["$ref"]
        extra = sorted(set(s) - {"$ref"} - ANNOTATIONS)
        if extra:
            raise SchemaError(f"{', '.join(map(repr, extra))} beside $ref {'is' if len(extra) == 1 else 'are'} not "
                              "enforced (only annotations such as title and description may stand beside it)", where)
        if not isinstance(ref, str) or not ref.startswith("#"):
            raise SchemaError(f"only local references (#/…) can be used, not {ref!r:.80}", where)
        if ref in refs:
            loop = " → ".join(refs[refs.index(ref):] + (ref,))
            raise SchemaError(f"the reference {ref!r:.80} leads back to itself ({loop:.300}): a recursive schema "
                              "cannot be enforced (the grammar is made by writing each reference out in place)", where)
        target, at = self._resolve(ref, where)
        return self(target, at, refs + (ref,), depth + 1)

    def _resolve(self, ref: str, where: str):
        if ref != "#" and not ref.startswith("#/"):
            raise SchemaError(f"only JSON-pointer references (#/$defs/Name, #/…) can be used, not {ref!r:.80}", where)
        node, at = self.root, self.where
        for part in ref[2:].split("/") if ref != "#" else []:
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node, at = node[part], f"{at}.{part}"
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node, at = node[int(part)], f"{at}[{part}]"
            else:
                raise SchemaError(f"the reference {ref!r:.80} points to nothing in the schema", where)
        return node, at

    # -- branches ---------------------------------------------------------------------------------------------
    def _union(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        key = "oneOf" if "oneOf" in s else "anyOf"
        if not isinstance(s[key], list) or not s[key]:
            raise SchemaError(f"{key} must be a non-empty list of schemas", where)
        alts = [self(x, f"{where}.{key}[{i}]", refs, depth + 1) for i, x in enumerate(s[key])]
        if key == "oneOf":
            for i in range(len(alts)):
                for j in range(i):
                    if not _disjoint(alts[j], alts[i]):
                        raise SchemaError(f"oneOf[{j}] and oneOf[{i}] may both match one value, and the grammar "
                                          "enforces oneOf as anyOf (at least one alternative, not exactly one): "
                                          "use anyOf, or make the alternatives exclusive (different types, or a "
                                          "required property with a different const in each)", where)
        return {key: alts}

    def _values_of(self, s: dict, values: list, where: str) -> None:
        """``type`` beside ``enum`` / ``const``: every value must be of that type (then the type says nothing more)."""
        if "type" not in s:
            return
        t = s["type"]
        types = t if isinstance(t, list) else [t]
        if not types or not all(isinstance(x, str) and x in TYPES for x in types):
            raise SchemaError(f"unknown type in {t!r:.80}", where)
        for v in values:
            if not any(_fits(v, x) for x in types):
                raise SchemaError(f"the value {v!r:.60} is not of type {t!r:.60}: no answer could match both; fix "
                                  "the type or the values", where)

    def _const(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        self._values_of(s, [s["const"]], where)
        return {"const": s["const"]}

    def _enum(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        if not isinstance(s["enum"], list) or not s["enum"]:
            raise SchemaError("enum must be a non-empty list of values", where)
        self._values_of(s, s["enum"], where)
        return {"enum": s["enum"]}

    def _types(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        if not s["type"] or not all(isinstance(x, str) and x in TYPES for x in s["type"]):
            raise SchemaError(f"unknown type in {s['type']!r:.80}", where)
        return {"type": s["type"]}

    def _object(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        props = s.get("properties", {})
        if not isinstance(props, dict):
            raise SchemaError("properties must be an object of schemas", where)
        out = {"type": "object", "properties": {name: self(sub, f"{where}.properties.{name}", refs, depth + 1)
                                                for name, sub in props.items()}}
        required = s.get("required", [])
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            raise SchemaError("required must be a list of property names", where)
        missing = [r for r in required if r not in props]
        if missing:
            raise SchemaError(f"required names {', '.join(map(repr, missing))[:200]}, which "
                              f"{'is' if len(missing) == 1 else 'are'} not in properties: the grammar can only "
                              "write the properties the schema defines", where)
        if required:
            out["required"] = required
        extra = s.get("additionalProperties", None)  # (absent: the converter writes no other property)
        if extra is True or isinstance(extra, dict):
            if "*" in props:
                raise SchemaError("a property named '*' beside additionalProperties is not enforced", where)
            out["additionalProperties"] = dict(ANY) if extra is True else self(extra, f"{where}.additionalProperties",
                                                                          refs, depth + 1)
        elif extra not in (None, False):
            raise SchemaError("additionalProperties must be true, false or a schema", where)
        return out

    def _allof(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        parts = s["allOf"]
        if not isinstance(parts, list) or not parts:
            raise SchemaError("allOf must be a non-empty list of schemas", where)
        if len(parts) == 1 and "type" not in s:  # (Pydantic's old way to describe a reference)
            return self(parts[0], f"{where}.allOf[0]", refs, depth + 1)
        props, required = {}, []
        for i, part in enumerate(parts):
            at = f"{where}.allOf[{i}]"
            n = self(part, at, refs, depth + 1)
            if n.get("type") != "object" or "properties" not in n or not n["properties"]:
                raise SchemaError("allOf is enforced only as a merge of object schemas with properties", at)
            same = sorted(set(props) & set(n["properties"]))
            if same:
                raise SchemaError(f"property {same[0]!r:.60} is defined in two parts of allOf; the grammar cannot "
                                  "merge two schemas of one property", at)
            props.update(n["properties"])
            required += [r for r in n.get("required", []) if r not in required]
        return {"type": "object", "properties": props, "required": required}

    def _array(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        if "items" in s and "prefixItems" in s:
            raise SchemaError("items beside prefixItems is not enforced (give one of them)", where)
        key = "items" if "items" in s else "prefixItems"
        lo = _count(s.get("minItems", 0), "minItems", where)
        hi = _count(s["maxItems"], "maxItems", where) if "maxItems" in s else None
        if hi is not None and lo > hi:
            raise SchemaError(f"minItems {lo} is more than maxItems {hi}: no array matches", where)
        items = s[key]
        out: dict = {"type": "array"}
        if isinstance(items, list):
            if not lo <= len(items) <= (len(items) if hi is None else hi):
                raise SchemaError(f"the tuple of {len(items)} items is written whole, which minItems / maxItems "
                                  "exclude", where)
            out[key] = [self(x, f"{where}.{key}[{i}]", refs, depth + 1) for i, x in enumerate(items)]
            return out
        if key == "prefixItems":
            raise SchemaError("prefixItems must be a list of schemas", where)
        out["items"] = self(items, f"{where}.items", refs, depth + 1)
        if lo:
            out["minItems"] = lo
        if hi is not None:
            out["maxItems"] = hi
        return out

    def _pattern(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        p = s["pattern"]
        if not (isinstance(p, str) and p.startswith("^") and p.endswith("$")):
            raise SchemaError("a pattern must start with ^ and end with $ to be enforced", where)
        return {"type": "string", "pattern": p}

    def _format(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        if not isinstance(s["format"], str) or s["format"] not in FORMATS:
            raise SchemaError(f"string format {s['format']!r:.40} is not enforced (supported: "
                              f"{', '.join(sorted(FORMATS))})", where)
        return {"type": "string", "format": s["format"]}

    def _string(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        out = {"type": "string"}
        for key in ("minLength", "maxLength"):
            if key in s:
                out[key] = _count(s[key], key, where)
        if out.get("minLength", 0) > out.get("maxLength", MAX_REPEAT):
            raise SchemaError(f"minLength {out['minLength']} is more than maxLength {out['maxLength']}: no string "
                              "matches", where)
        return out

    def _primitive(self, s: dict, where: str, refs: tuple, depth: int) -> dict:
        t = s.get("type")
        if t is None:
            return dict(ANY)  # no constraint: any JSON value (the converter would write an object)
        if not isinstance(t, str) or t not in TYPES:
            raise SchemaError(f"unknown type {t!r:.40}", where)
        return {"type": t}


def normalize(schema, where: str = "schema") -> dict:
    """``schema`` as the converter enforces it exactly: references expanded, annotations and redundant types left
    out; ``SchemaError`` for what it cannot enforce (module docstring)."""
    return _Normalizer(schema, where)(schema, where)


def schema_gbnf(schema, where: str = "schema") -> str:
    """The GBNF grammar of ``schema``; ``SchemaError`` for what the converter cannot enforce (module docstring)."""
    plain = normalize(schema, where)
    try:
        conv = _Converter()
        conv.visit(plain, "")
        return _json_strings(conv.format_grammar())
    except (AssertionError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise SchemaError(f"the grammar converter cannot handle this schema: {exc}", where) from None
