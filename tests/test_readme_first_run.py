"""The README's first command, run as a newcomer runs it: in this environment (CI builds it fresh from the README's
install command), without the suite's pin of the default model (tests/conftest.py sets $SDA_LOCAL_DEFAULT_MODEL
to SmolLM2 for every other test).  The default must be the capable model, Qwen2.5-Coder-1.5B, its 22 parts
installed by the plain install, and the command must print the two answers the README shows it printing.

The texts themselves are not compared: llama.cpp's numbers depend on the CPU's instruction set, so the README's
output is this machine's (it says so), not every machine's.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from sda_local.runtime.models import load_registry

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text("utf-8")


def _newcomer_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SDA_LOCAL_DEFAULT_MODEL"}
    env["PYTHONIOENCODING"] = "utf-8"
    return env


def _first_command() -> list[str]:
    line = re.search(r"^(sda-local generate [^\n]+)$", README, re.M).group(1)
    return shlex.split(line)


def test_the_plain_install_brings_every_part_of_the_default_model():
    entry = load_registry()["qwen2.5-coder-1.5b"]
    assert len(entry.parts) == 22
    missing = []
    for part in entry.parts:
        try:
            metadata.distribution(part.package)
        except metadata.PackageNotFoundError:
            missing.append(part.package)
    assert not missing, f"pip install -e . should bring the default model's parts; missing: {missing}"


def test_without_the_suites_pin_the_default_model_is_qwen():
    code = ("import json; from sda_local.runtime.models import resolve_model; c = resolve_model(None); "
            "print(json.dumps({'id': c.entry.id, 'file': c.path.name, 'size': c.path.stat().st_size}))")
    out = subprocess.run([sys.executable, "-c", code], env=_newcomer_env(), capture_output=True, text=True,
                         timeout=600, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["id"] == "qwen2.5-coder-1.5b"
    assert got["size"] > 900_000_000  # the joined 1.1 GB file, not a stub


def test_the_readmes_first_command_answers_on_the_default_model():
    argv = _first_command()
    assert argv[:2] == ["sda-local", "generate"] and "--base" in argv
    exe = Path(sys.executable).with_name("sda-local")
    proc = subprocess.run([str(exe), *argv[1:]], env=_newcomer_env(), capture_output=True, text=True, timeout=600,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    shown = README[README.index(" ".join(argv[:2])):]
    for header in ("── base answer (no instruction, no steering) ──", "── SDA answer (λ = 0.250, fixed) ──"):
        assert header in shown and header in proc.stderr  # the README shows what the command prints
    assert "decoded together" in proc.stderr
    answers = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(answers) >= 2 and all(len(a.split()) >= 3 for a in answers[:2])
