"""The fixtures the server feature tests (completions, JSON output, log-probs) share: one server with a queue of
four for each module, and the official openai client on it."""
from __future__ import annotations

import openai
import pytest
from test_server import KEY, files, serve  # noqa: F401  (fixtures)


def openai_client(server: dict, timeout: float = 60) -> openai.OpenAI:
    """The official client on ``server``'s /v1, no retries (a failure shows at once)."""
    return openai.OpenAI(base_url=server["url"] + "/v1", api_key=KEY, max_retries=0, timeout=timeout)


@pytest.fixture(scope="module")
def server(files):  # noqa: F811
    with serve(files, "--max-queue", "4") as s:
        yield s


@pytest.fixture(scope="module")
def client(server) -> openai.OpenAI:
    return openai_client(server)
