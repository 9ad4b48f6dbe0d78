"""GPT-4.1 or any OpenAI-compatible chat endpoint as the judge.

``base_url`` / ``api_key`` come from arguments or ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY``.  Timeouts and
retries with exponential back-off are the ``openai`` client's own (``timeout``, ``max_retries``).  The reply is
requested as a JSON object (structured output with a JSON schema where the server supports it; servers that
reject ``response_format`` are asked again without it) and parsed tolerantly.  The API key never appears in
an error message, a warning or ``repr``.
"""
from __future__ import annotations

import os

from .base import Evaluator, EvaluatorError, Fields, Reply, parse_fields

DEFAULT_MODEL = "gpt-4.1"


def _schema(fields: Fields) -> dict:
    return {
        "type": "json_schema",
        "json_schema": {
            "name": "rating",
            "strict": True,
            "schema": {
                "type": "object",
                "properties": {k: {"type": "integer", "minimum": lo, "maximum": hi} for k, (lo, hi) in fields.items()},
                "required": list(fields),
                "additionalProperties": False,
            },
        },
    }


class OpenAIEvaluator(Evaluator):
    def __init__(self, model: str | None = None, *, base_url: str | None = None, api_key: str | None = None,
                 timeout: float = 30.0, max_retries: int = 2, structured: bool = True):
        import openai

        self.model_name = model or os.environ.get("SDA_LOCAL_OPENAI_MODEL") or DEFAULT_MODEL
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY") or ""
        if not key:
            if self.base_url is None:
                raise EvaluatorError("no OpenAI API key: set OPENAI_API_KEY (or pass one), or point "
                                     "--openai-base-url at an OpenAI-compatible server that needs none")
            key = "no-key-required"  # local servers (llama.cpp, vLLM, Ollama) usually ignore it
        self._secrets = [s for s in {key, api_key, os.environ.get("OPENAI_API_KEY")} if s and len(s) >= 4]
        self._client = openai.OpenAI(api_key=key, base_url=self.base_url, timeout=timeout, max_retries=max_retries)
        self._openai = openai
        self._structured = structured
        self._format_level = 0
        where = self.base_url or "api.openai.com"
        self.name = f"openai:{self.model_name}@{where}"

    def __repr__(self) -> str:
        return f"OpenAIEvaluator(model={self.model_name!r}, base_url={self.base_url!r}, api_key=***)"

    def _scrub(self, text: str) -> str:
        for s in self._secrets:
            text = text.replace(s, "***")
        return text

    def _fail(self, what: str) -> EvaluatorError:
        return EvaluatorError(self._scrub(f"{self.name}: {what}"))

    def _formats(self, fields: Fields) -> list[dict | None]:
        """Ways to ask for JSON, best first: a JSON schema (OpenAI, vLLM), a JSON object with a schema
        (llama.cpp's server), then a plain request relying on the prompt and tolerant parsing."""
        schema = _schema(fields)
        ladder = [schema, {"type": "json_object", "schema": schema["json_schema"]["schema"]}, None]
        return ladder[self._format_level:]

    def _request(self, messages, fields):
        kwargs = dict(model=self.model_name, messages=messages, temperature=0, max_tokens=60)
        formats = self._formats(fields) if self._structured else [None]
        for i, fmt in enumerate(formats):
            try:
                if fmt is None:
                    return self._client.chat.completions.create(**kwargs)
                return self._client.chat.completions.create(response_format=fmt, **kwargs)
            except self._openai.APIStatusError as exc:
                rejected = exc.status_code in (400, 422) or (
                    exc.status_code == 500 and "response_format" in str(getattr(exc, "body", "") or exc))
                if not rejected or i == len(formats) - 1:
                    raise
                self._format_level += 1  # remember: this server does not take that format

    def ask(self, messages: list[dict], fields: Fields) -> Reply:
        o = self._openai
        try:
            resp = self._request(messages, fields)
        except o.AuthenticationError:
            raise self._fail("the server refused the API key (HTTP 401); check OPENAI_API_KEY") from None
        except o.PermissionDeniedError:
            raise self._fail("the server denied access (HTTP 403) to this model") from None
        except o.NotFoundError:
            raise self._fail(f"model {self.model_name!r} or the endpoint was not found (HTTP 404)") from None
        except o.RateLimitError:
            raise self._fail("rate-limited (HTTP 429) even after retries") from None
        except o.APITimeoutError:
            raise self._fail("no answer before the timeout (after retries)") from None
        except o.APIConnectionError:
            raise self._fail("cannot connect to the server; is it running and is the URL right?") from None
        except o.APIStatusError as exc:
            raise self._fail(f"the server answered HTTP {exc.status_code}") from None
        except o.APIResponseValidationError:
            raise self._fail("the server's answer is not a valid chat completion") from None
        except o.OpenAIError as exc:
            raise self._fail(f"{type(exc).__name__}: {exc}") from None
        try:
            raw = resp.choices[0].message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise self._fail(f"the server's answer is not a chat completion: {str(resp)[:120]!r}") from None
        try:
            return Reply(parse_fields(raw, fields), raw)
        except EvaluatorError as exc:
            raise self._fail(str(exc)) from None
