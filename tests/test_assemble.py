"""Joining a model split across packages (sda_local.runtime.assemble), with small fake parts that are real installed
distributions: a ``*.dist-info`` folder and a data file on a temporary sys.path entry, found by
importlib.metadata exactly as the real part packages are.  A missing part, a corrupt part and an interrupted
assembly leave no file behind; a finished one is reused without copying."""
from __future__ import annotations

import hashlib
import os
import sys
import time

import pytest

from sda_local.errors import ModelFileError
from sda_local.runtime import assemble as asm
from sda_local.runtime.assemble import AssemblyError, Part, SplitFile

INSTALL = 'pip install "sda-local[fake]"'


def _install_part(site, n: int, data: bytes, version: str = "1.0") -> Part:
    """A distribution ``fake-sda-part<n>`` holding ``fake_sda_part<n>/data/part<nn>.bin``."""
    pkg, mod = f"fake-sda-part{n}", f"fake_sda_part{n}"
    info = site / f"{mod}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {pkg}\nVersion: {version}\n")
    member = f"{mod}/data/part{n:02d}.bin"
    (site / member).parent.mkdir(parents=True)
    (site / member).write_bytes(data)
    return Part(pkg, version, member, len(data), hashlib.sha256(data).hexdigest())


@pytest.fixture
def parts(tmp_path, monkeypatch):
    """Three installed fake parts (the last one shorter), their joined bytes, and an empty cache."""
    site = tmp_path / "site"
    chunks = [bytes([n]) * 3000 + os.urandom(500) for n in (1, 2)] + [b"tail" * 100]
    made = [_install_part(site, n, c) for n, c in enumerate(chunks, 1)]
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("SDA_LOCAL_CACHE", str(tmp_path / "cache"))
    whole = b"".join(chunks)
    split = SplitFile("fake.gguf", tuple(made), len(whole), hashlib.sha256(whole).hexdigest(), INSTALL)
    return split, whole, site


def _folder_files(split: SplitFile) -> list[str]:
    d = asm.default_target(split).parent
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_assembles_once_into_the_cache_and_reuses_the_file(parts, monkeypatch, tmp_path):
    split, whole, site = parts
    told = []
    path = asm.assemble(split, notice=lambda s, t: told.append(t))
    assert path == tmp_path / "cache" / "models" / "fake.gguf" and told == [path]
    assert path.read_bytes() == whole and _folder_files(split) == ["fake.gguf"]  # no temporary file left
    stamp = (path.stat().st_ino, path.stat().st_mtime_ns)
    for p in split.parts:  # the parts may even be gone: the assembled file is used as it is
        (site / p.member).unlink()
    again = asm.assemble(split, notice=lambda s, t: told.append(t))
    assert again == path and told == [path] and (again.stat().st_ino, again.stat().st_mtime_ns) == stamp
    assert asm.is_assembled(split)


def test_the_notice_is_one_line_on_stderr(parts, capsys):
    split, _, _ = parts
    asm.assemble(split)
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "assembling fake.gguf" in err and "3 installed packages" in err


def test_a_missing_part_names_the_package_and_the_fix_and_writes_nothing(parts):
    split, _, site = parts
    (site / "fake_sda_part2-1.0.dist-info" / "METADATA").unlink()
    (site / "fake_sda_part2-1.0.dist-info").rmdir()
    assert asm.missing_parts(split) == [split.parts[1]]
    with pytest.raises(AssemblyError) as e:
        asm.assemble(split)
    msg = str(e.value)
    assert "fake-sda-part2==1.0" in msg and INSTALL in msg and "part1" not in msg
    assert isinstance(e.value, ModelFileError) and _folder_files(split) == []


def test_a_corrupt_part_names_the_package_and_leaves_no_half_file(parts):
    split, _, site = parts
    f = site / split.parts[1].member
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF  # same size, other bytes
    f.write_bytes(bytes(data))
    with pytest.raises(AssemblyError, match=r"package fake-sda-part2==1\.0 is corrupt") as e:
        asm.assemble(split)
    assert "--force-reinstall" in str(e.value)
    assert _folder_files(split) == []
    f.write_bytes(bytes(data[:-1]))  # truncated
    with pytest.raises(AssemblyError, match=r"fake-sda-part2==1\.0 is corrupt.*has 3,499 bytes"):
        asm.assemble(split)
    assert _folder_files(split) == []


def test_a_pinned_hash_that_does_not_match_the_whole_file_is_refused(parts):
    split, whole, _ = parts
    wrong = SplitFile(split.name, split.parts, split.size, "0" * 64, INSTALL)
    with pytest.raises(AssemblyError, match="not the pinned"):
        asm.assemble(wrong)
    assert _folder_files(split) == []


def test_an_assembly_interrupted_mid_copy_leaves_no_half_file(parts):
    split, whole, site = parts

    def lose_part3(s, t):  # the parts were found; part 3 vanishes while parts 1 and 2 are being copied
        (site / split.parts[2].member).unlink()

    with pytest.raises(FileNotFoundError):
        asm.assemble(split, notice=lose_part3)
    assert _folder_files(split) == []


def test_ctrl_c_before_the_rename_leaves_no_half_file(parts, monkeypatch):
    split, _, _ = parts

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(asm.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        asm.assemble(split)
    assert _folder_files(split) == []


def test_a_temporary_file_left_by_a_killed_assembly_is_removed(parts):
    split, whole, _ = parts
    folder = asm.default_target(split).parent
    folder.mkdir(parents=True)
    dead, live = folder / ".fake.gguf.dead.tmp", folder / ".fake.gguf.live.tmp"
    dead.write_bytes(b"half")
    live.write_bytes(b"another process is writing this one")
    old = time.time() - asm.STALE_TEMP_S - 60
    os.utime(dead, (old, old))
    asm.assemble(split, notice=None)
    assert _folder_files(split) == [".fake.gguf.live.tmp", "fake.gguf"]


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SDA_LOCAL_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert asm.cache_dir() == tmp_path / "xdg" / "sda-local"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says to ignore it
    assert asm.cache_dir() == asm.Path.home() / ".cache" / "sda-local"
    monkeypatch.setenv("SDA_LOCAL_CACHE", str(tmp_path / "mine"))
    assert asm.cache_dir() == tmp_path / "mine"


def test_split_file_checks_its_declared_size():
    p = Part("x", "1", "x/p.bin", 10, "0" * 64)
    with pytest.raises(ValueError, match="add up to 20"):
        SplitFile("f.gguf", (p, p), 30, "0" * 64, INSTALL)
    with pytest.raises(ValueError, match="at least one part"):
        SplitFile("f.gguf", (), 0, "0" * 64, INSTALL)


def test_an_unwritable_cache_is_a_clear_error(parts, monkeypatch, tmp_path):
    split, _, _ = parts
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    monkeypatch.setenv("SDA_LOCAL_CACHE", str(blocker))
    with pytest.raises(AssemblyError, match="SDA_LOCAL_CACHE"):
        asm.assemble(split)


def test_parts_are_found_without_importing_their_packages(parts):
    split, _, _ = parts
    assert asm.part_path(split.parts[0]) == asm.package_file("fake-sda-part1", split.parts[0].member) is not None
    assert not any(m.startswith("fake_sda_part") for m in sys.modules)
