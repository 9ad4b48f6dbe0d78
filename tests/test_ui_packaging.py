"""Packaging.  The chat ships in the wheel: ``ui/`` becomes ``sda_local.ui``, every module and data file (presets,
refusal phrases, model registry) is inside, and a non-editable install runs ``python -m sda_local.chat --help``.
The wheel is built offline from a copy of the sources (no build/ in the checkout) with the build backend that
the README's install command put into the environment, and installed without dependencies into a fresh virtual
environment (no llama.cpp build).  CI (.ci/run) runs exactly the README's install and test commands in a fresh
virtual environment; a test here keeps the two in step."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "README.md", "sda_local", "models", "ui")


def test_wheel_ships_the_chat_and_help_runs_from_a_plain_install(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        p = REPO / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.gguf", "*.pyc"))
        else:
            shutil.copy(p, src / name)
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                        str(dist), str(src)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(dist.glob("sda_local-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    ui_files = {f"sda_local/ui/{p.name}" for p in (REPO / "ui").glob("*.py")}
    assert ui_files and ui_files <= names, sorted(ui_files - names)
    modules = {p.relative_to(REPO).as_posix() for p in (REPO / "sda_local").rglob("*.py")}
    assert "sda_local/chat.py" in modules and modules <= names, sorted(modules - names)  # every subpackage listed
    data_files = {f"sda_local/data/{p.name}" for p in (REPO / "sda_local" / "data").iterdir() if p.is_file()}
    data_files |= {"sda_local/_models/registry.toml"}
    assert data_files <= names, sorted(data_files - names)  # presets, refusal phrases, model registry
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: gradio" in meta

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / ("Scripts/python.exe" if sys.platform == "win32" else "bin/python")
    r = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps",
                        "--no-index", str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    r = subprocess.run([str(py), "-m", "sda_local.chat", "--help"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "--share" in r.stdout and "127.0.0.1" in r.stdout
    r = subprocess.run([str(py), "-c", "import importlib.util as u, sda_local.ui as m; "
                        "print(m.__file__); print(u.find_spec('sda_local.ui.app') is not None)"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split()[-1] == "True", r.stderr[-2000:]
    assert str(venv) in r.stdout.splitlines()[0]  # the installed copy, not the checkout
    r = subprocess.run([str(py), "-c", "from sda_local.presets import builtin_presets as b; "
                        "from importlib.resources import files; "
                        "from sda_local.runtime.models import load_registry as r; "
                        "p = files('sda_local.data').joinpath('refusal_phrases.txt').read_text('utf-8'); "
                        "print(sorted(b()), len(p.splitlines()) > 10, 'smollm2-135m' in r())"],
                       capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "'honesty'" in r.stdout and r.stdout.split()[-1] == "True", r.stdout


def _readme_commands() -> tuple[str, str]:
    """The README's install command (the first ``pip install`` of its quick start) and its test command."""
    readme = (REPO / "README.md").read_text("utf-8")
    install = re.search(r"^(pip install [^#\n]*?)\s*(#.*)?$", readme, re.M).group(1)
    test = re.search(r"^(python -m pytest[^#\n]*?)\s*(#.*)?$", readme, re.M).group(1)
    return install, test


def test_ci_runs_exactly_the_readme_commands_in_a_fresh_venv():
    install, test = _readme_commands()
    assert install == 'pip install -e ".[dev]"' and test == "python -m pytest -q -rs"
    lines = [ln.strip() for ln in (REPO / ".ci" / "run").read_text("utf-8").splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    venv = lines.index('"$PY" -m venv .venv')
    assert "rm -rf .venv" in lines[:venv] and ". .venv/bin/activate" in lines[venv:]
    assert install in lines[venv:] and test in lines[lines.index(install):]
    installs = [ln for ln in lines if re.search(r"\bpip\b.*\binstall\b", ln)]
    assert installs == [install], "CI must install nothing the README does not"


def test_the_readme_install_command_brings_the_build_backend():
    """The wheel test builds without build isolation (offline): [dev] must install [build-system]'s backend."""
    meta = tomllib.loads((REPO / "pyproject.toml").read_text("utf-8"))
    backend = meta["build-system"]["requires"]
    assert set(backend) <= set(meta["project"]["optional-dependencies"]["dev"]), backend
    assert not any(r.startswith("wheel") for r in backend)  # setuptools ≥ 70.1 builds wheels on its own


def test_chat_help_is_quick_and_does_not_import_gradio():
    """Nor numpy or llama.cpp: the --layout choices and the default model come from light modules."""
    r = subprocess.run([sys.executable, "-c", "import sys; from sda_local.chat import main\n"
                        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
                        "print([m in sys.modules for m in ('gradio', 'numpy', 'llama_cpp')])"],
                       capture_output=True, text=True, timeout=60, cwd=REPO, env={**os.environ, "COLUMNS": "400"})
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "[False, False, False]", r.stderr[-1000:]
    from sda_local.runtime.layouts import LAYOUTS

    text = " ".join(r.stdout.split())
    assert f"--layout {{{','.join(LAYOUTS)}}}" in text and "--variant" not in text  # (the old name: hidden)
    assert 'default: qwen2.5-coder-1.5b when installed (pip install "sda-local[qwen]"), else smollm2-135m' in text


@pytest.mark.parametrize("argv, message", [(["--model", "no-such-model"], "no model called"),
                                           (["--port", "0"], "--port")])
def test_chat_refuses_bad_arguments_with_one_line(argv, message):
    r = subprocess.run([sys.executable, "-m", "sda_local.chat", *argv], capture_output=True, text=True, timeout=120,
                       cwd=REPO)
    assert r.returncode == 2 and message in r.stderr
    assert "Traceback" not in r.stderr
