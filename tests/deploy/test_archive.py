"""Bundle archives: malicious members are refused before anything is written, limits hold, the
writer leaves nothing on failure, and tarfile's data filter stands behind the checks."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
import time
import uuid
from pathlib import Path, PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mmexport.core.errors import ArtifactError
from mmexport.deploy import archive
from mmexport.deploy.archive import ArchiveLimits, ArchiveWriter, Entry, UnsafeArchiveError, check_member_name
from mmexport.deploy.bundle import unbundle


def member(name: str, data: bytes = b"", *, kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def write_tar(path: Path, members: list[tuple]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return path


def assert_nothing_written(folder: Path, archive_path: Path) -> None:
    """The archive's folder holds the archive and nothing else (no output, no staging folder)."""
    assert sorted(p.name for p in folder.iterdir()) == [archive_path.name]


BENIGN = member("README.txt", b"a bundle\n")
OUTSIDE = f"/tmp/mmexport-test-{uuid.uuid4().hex}"

MALICIOUS = {
    "traversal": ([member("../x", b"evil")], "../x", "leaves the target folder"),
    "nested traversal": ([member("models/../../x", b"evil")], "models/../../x", "leaves the target folder"),
    "absolute": ([member(OUTSIDE, b"evil")], OUTSIDE, "absolute path"),
    "backslash": ([member("..\\x", b"evil")], "..\\x", "backslash"),
    "symlink outside": (
        [member("link", kind=tarfile.SYMTYPE, link="/etc/passwd")],
        "link",
        "symbolic link (to '/etc/passwd')",
    ),
    "symlink inside": (
        [member("link", kind=tarfile.SYMTYPE, link="README.txt")],
        "link",
        "bundles hold no links",
    ),
    "hardlink": ([member("hard", kind=tarfile.LNKTYPE, link="README.txt")], "hard", "hard link"),
    "fifo": ([member("pipe", kind=tarfile.FIFOTYPE)], "pipe", "device or fifo"),
    "char device": ([member("null", kind=tarfile.CHRTYPE)], "null", "device or fifo"),
    "block device": ([member("disk", kind=tarfile.BLKTYPE)], "disk", "device or fifo"),
    "newline": ([member("models/a\nb", b"x")], "models/a\nb", "control character"),
    "deep": (
        [member("a/" * 500 + "f", b"x")],
        "a/" * 500 + "f",
        "more than 32 levels deep",
    ),  # 1500 levels: RecursionError in os.makedirs
    "long": ([member("m" * 1025, b"x")], "m" * 1025, "longer than 1024 characters"),
    "long part": ([member("models/" + "m" * 256, b"x")], "models/" + "m" * 256, "longer than 255 bytes"),
    "duplicate": ([member("README.txt", b"second")], "README.txt", "appears twice"),
    "duplicate after normalizing": ([member("./README.txt", b"second")], "./README.txt", "appears twice"),
}


@pytest.mark.parametrize("case", list(MALICIOUS))
def test_malicious_member_is_refused_and_nothing_is_written(tmp_path: Path, case: str) -> None:
    members, name, problem = MALICIOUS[case]
    bad = write_tar(tmp_path / "bad.tar.gz", [BENIGN, *members])
    out = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError) as caught:
        unbundle(bad, out)
    message = str(caught.value)
    assert caught.value.member == name
    assert (
        f"member {archive.shown(name)}" in message
        and problem in message
        and "nothing was extracted" in message
    )
    assert len(message) < 300
    assert str(bad) in message
    assert not out.exists()
    assert_nothing_written(tmp_path, bad)
    assert not Path(OUTSIDE).exists()
    assert not (tmp_path.parent / "x").exists()


def test_output_folder_is_untouched_when_it_exists_and_is_empty(tmp_path: Path) -> None:
    bad = write_tar(tmp_path / "bad.tar.gz", [BENIGN, member("../x", b"evil")])
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(UnsafeArchiveError):
        unbundle(bad, out)
    assert out.is_dir() and list(out.iterdir()) == []


@pytest.mark.parametrize(
    ("limits", "members", "message"),
    [
        (ArchiveLimits(max_member_bytes=10), [member("big", b"x" * 11)], "over the limit of 10"),
        (
            ArchiveLimits(max_total_bytes=15),
            [member("a", b"x" * 8), member("b", b"x" * 8)],
            "more than 15 bytes",
        ),
        (ArchiveLimits(max_members=2), [member(f"f{i}", b"x") for i in range(3)], "more than 2 members"),
    ],
)
def test_limits_refuse_before_writing(
    tmp_path: Path, limits: ArchiveLimits, members: list, message: str
) -> None:
    bad = write_tar(tmp_path / "big.tar.gz", members)
    with pytest.raises(ArtifactError, match=message):
        unbundle(bad, tmp_path / "out", limits=limits)
    assert_nothing_written(tmp_path, bad)


def write_raw_tar(path: Path, blocks: list[bytes]) -> Path:
    """A gzip of hand-laid tar blocks (headers tarfile would not write), then the end-of-archive marker."""
    with gzip.open(path, "wb", compresslevel=1) as f:
        for block in blocks:
            f.write(block)
        f.write(b"\0" * 1024)
    return path


def header(name: str, kind: bytes, size: int) -> bytes:
    info = tarfile.TarInfo(name)
    info.type, info.size = kind, size
    return info.tobuf(format=tarfile.GNU_FORMAT)


@pytest.mark.parametrize(
    ("kind", "filler"),
    [(tarfile.GNUTYPE_LONGNAME, b"a"), (tarfile.XHDTYPE, b"7")],  # 7...: Python's quadratic pax regex
    ids=["gnu long name", "pax header of digits"],
)
def test_huge_header_record_is_refused_unread(tmp_path: Path, kind: bytes, filler: bytes) -> None:
    """tarfile reads such a record whole: 8 MiB here (12 kB gzipped), gigabytes in a small file."""
    size = 8 << 20
    bomb = write_raw_tar(
        tmp_path / "bomb.tar.gz", [*member_blocks(BENIGN), header("x", kind, size), filler * size]
    )
    started = time.perf_counter()
    with pytest.raises(ArtifactError, match=rf"has a tar header record of {size} bytes"):
        unbundle(bomb, tmp_path / "out")
    assert time.perf_counter() - started < 5
    assert_nothing_written(tmp_path, bomb)


def test_chain_of_extended_headers_is_one_error(tmp_path: Path) -> None:
    """tarfile reads each pax header by recursion: a long chain raised RecursionError."""
    record = b"20 comment=xxxxxxxx\n"
    chain = [header("././@PaxHeader", tarfile.XHDTYPE, len(record)) + record.ljust(512, b"\0")] * 3000
    bad = write_raw_tar(tmp_path / "chain.tar.gz", [*member_blocks(BENIGN), *chain, *member_blocks(BENIGN)])
    with pytest.raises(ArtifactError, match="headers chained too deep to read"):
        unbundle(bad, tmp_path / "out")
    assert_nothing_written(tmp_path, bad)


def member_blocks(entry: tuple) -> list[bytes]:
    info, data = entry
    return [info.tobuf(format=tarfile.GNU_FORMAT), data + b"\0" * (-len(data) % 512)]


def test_default_limits_are_stated() -> None:
    assert archive.DEFAULT_LIMITS.describe() == "10000 members, 32 GiB per file, 64 GiB in all"


def test_not_a_tar_and_truncated_archives(tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar at all" * 10)
    with pytest.raises(ArtifactError, match="not a readable tar archive"):
        unbundle(junk, tmp_path / "out")
    good = write_tar(tmp_path / "good.tar.gz", [BENIGN, member("models/m.onnx", b"x" * 5000)])
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ArtifactError, match=r"damaged or truncated|cannot be extracted|not a readable"):
        unbundle(cut, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.tar.gz", "good.tar.gz", "junk.tar.gz"]


def test_safe_archive_that_is_not_a_bundle_leaves_nothing(tmp_path: Path) -> None:
    plain = write_tar(tmp_path / "plain.tar.gz", [BENIGN, member("models/a.txt", b"x")])
    with pytest.raises(ArtifactError, match=r"has no bundle\.json"):
        unbundle(plain, tmp_path / "deeper" / "out")
    assert_nothing_written(tmp_path, plain)  # the parent folder made for the output is gone too


def test_file_not_listed_in_bundle_json_is_refused(tmp_path: Path) -> None:
    listing = {
        "format": "mmexport.bundle",
        "format_version": 1,
        "target": {},
        "created": "",
        "mmexport_version": "0",
        "artifacts": [{"onnx": "README.txt", "precision": "fp32", "engine": "e", "calibration_cache": None}],
        "files": [],
    }
    extra = write_tar(
        tmp_path / "extra.tar.gz", [BENIGN, member("bundle.json", json.dumps(listing).encode())]
    )
    with pytest.raises(ArtifactError, match=r"holds README\.txt, which bundle\.json does not list"):
        unbundle(extra, tmp_path / "out")
    assert_nothing_written(tmp_path, extra)


def test_data_filter_is_a_second_line_of_defence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With the member checks switched off, tarfile's data filter still refuses a path outside."""
    monkeypatch.setattr(archive, "checked_members", lambda _a, tar, _limits: tar.getmembers())
    bad = write_tar(tmp_path / "bad.tar.gz", [BENIGN, member("../x", b"evil")])
    with pytest.raises(ArtifactError, match="cannot be extracted"):
        unbundle(bad, tmp_path / "out")
    assert not (tmp_path.parent / "x").exists()
    assert_nothing_written(tmp_path, bad)


def test_writer_leaves_nothing_when_the_body_fails(tmp_path: Path) -> None:
    out = tmp_path / "b.tar.gz"
    with pytest.raises(RuntimeError), ArchiveWriter(out, mtime=0) as writer:
        writer.add(Entry("a.txt", data=b"hello"))
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


def test_writer_stages_in_a_folder_the_next_run_removes_if_it_was_killed(tmp_path: Path) -> None:
    """The temporary archive had no process id: after a SIGKILL it stayed beside the output forever."""
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = tmp_path / f".b.tar.gz.{int(dead.stdout)}.x1y2.staging"  # what a killed run leaves
    left.mkdir()
    (left / "b.tar.gz").write_bytes(b"half an archive")
    out = tmp_path / "b.tar.gz"
    with ArchiveWriter(out, mtime=0) as writer:
        writer.add(Entry("a.txt", data=b"hello"))
        (stage,) = [p for p in tmp_path.iterdir() if p.name not in ("b.tar.gz", "b.tar.gz.lock")]
        assert stage.name.startswith(f".b.tar.gz.{os.getpid()}.") and stage.name.endswith(".staging")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz"]


def test_writer_records_what_it_archived(tmp_path: Path) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(bytes(range(256)) * 4)
    out = tmp_path / "b.tar.gz"
    with ArchiveWriter(out, mtime=1_700_000_000) as writer:
        writer.add(Entry("models/src.bin", source=source))
        writer.add(Entry("run.sh", data=b"#!/bin/sh\n", executable=True))
        with pytest.raises(ArtifactError, match="stored twice"):
            writer.add(Entry("run.sh", data=b""))
    import hashlib

    with tarfile.open(out) as tar:
        infos = {m.name: m for m in tar.getmembers()}
        assert infos["run.sh"].mode == 0o755 and infos["models/src.bin"].mode == 0o644
        assert {m.uid for m in infos.values()} == {0} and {m.mtime for m in infos.values()} == {1_700_000_000}
        for name, info in infos.items():
            data = tar.extractfile(info).read()  # type: ignore[union-attr]
            assert writer.hashes[name] == hashlib.sha256(data).hexdigest()
            assert writer.sizes[name] == len(data)


@given(st.lists(st.sampled_from(["a", "b", "..", ".", "", "/", "\\", "c:", "~"]), min_size=1, max_size=6))
def test_accepted_names_stay_inside_the_folder(parts: list[str]) -> None:
    name = "/".join(parts)
    if check_member_name(name) is None:
        root = PurePosixPath("/root/bundle")
        resolved = PurePosixPath(*(root / name).parts)
        stack: list[str] = []
        for part in resolved.parts[1:]:
            if part == "..":
                stack.pop()
            elif part != ".":
                stack.append(part)
        assert stack[:2] == ["root", "bundle"]
