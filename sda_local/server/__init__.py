"""``sda-local serve``: an OpenAI-compatible HTTP server with per-request SDA.

- ``config``    what the server was started with (``ServerConfig``)
- ``errors``    ``ApiError`` and the OpenAI error body
- ``schemas``   the request body (pydantic) and the response / chunk shapes
- ``request``   one request's body → a ``RequestPlan`` (messages or a prompt, ``SamplingParams``, SDA settings,
                stops, log-probs, the ``response_format`` grammar)
- ``logprobs``  per-token log-probs in OpenAI's shape, in step with the text sent
- ``lambdas``   where a request's λ comes from (judges cached per kind); never raises
- ``slot``      one generation at a time, a bounded queue of waiting requests
- ``stops``     ``stop`` sequences over streamed text
- ``worker``    runs a plan on the engine in a thread, token events onto an asyncio queue, cancellable
- ``shapes``    the chunks and bodies of a chat and a text completion
- ``sse``       the streaming (server-sent events) and non-streaming responses
- ``app``       the FastAPI app: routes, auth, body limit
- ``bench``     ``sda-local bench-serve``: tok/s over HTTP vs in-process, time to first token under concurrency
"""
from .app import create_app
from .config import ServerConfig

__all__ = ["create_app", "ServerConfig"]
