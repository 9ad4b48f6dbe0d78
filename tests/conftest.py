"""Shared fixtures: a tiny random-weight GGUF (mechanics) and the embedded SmolLM2 engine (behaviour)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from tiny_gguf import write_tiny_llama  # noqa: E402

# The suite relies on the embedded SmolLM2 wherever no model is named; where the [qwen] extra is installed, the
# default would otherwise be the 1.1 GB Qwen model (models/registry.toml, default_rank).  Set in os.environ, so
# the CLI and chat processes the tests start inherit it too.
os.environ["SDA_LOCAL_DEFAULT_MODEL"] = "smollm2-135m"

ARTIFACTS = Path(os.environ.get("SDA_TEST_ARTIFACTS", Path(__file__).resolve().parent.parent / "test-artifacts"))


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny") / "tiny.gguf", seed=0)


@pytest.fixture(scope="session")
def tiny_eog_gguf(tmp_path_factory) -> Path:
    return write_tiny_llama(tmp_path_factory.mktemp("tiny_eog") / "tiny-eog.gguf", seed=1, eog_bias=3.0)


@pytest.fixture(scope="session")
def tiny_engine(tiny_gguf):
    from sda_local.runtime.engine import Engine

    eng = Engine(str(tiny_gguf), n_ctx=256)
    yield eng
    eng.close()


@pytest.fixture(scope="module")
def host(tiny_gguf):
    """The chat's model host on the tiny GGUF (mechanics; one per module).  Modules whose chat needs the
    embedded SmolLM2 define their own ``host``."""
    from sda_local.ui.host import ModelHost

    h = ModelHost(str(tiny_gguf), n_ctx=1024, n_threads=1)
    yield h
    h.close()


@pytest.fixture(scope="session")
def smol_engine():
    from sda_local.runtime.engine import Engine

    eng = Engine(None, n_ctx=1024)
    yield eng
    eng.close()


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path, monkeypatch):
    """Never read or write the developer's real ~/.config/sda-local."""
    monkeypatch.setenv("SDA_LOCAL_CONFIG", str(tmp_path / "config"))
