"""``read_json_limited``: the one reader of JSON from elsewhere (manifests, composition.json,
bundle.json); every refusal is one ArtifactError naming the file and what it should have been."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mmexport.core.errors import ArtifactError
from mmexport.core.json_limits import MAX_DEPTH, check_format, read_json_limited

WHAT = "an mmexport test file"


def read(path: Path, max_bytes: int = 1 << 20, **kwargs: str) -> object:
    return read_json_limited(path, what=WHAT, max_bytes=max_bytes, **kwargs)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('{"a": 1, "a": 2}', r"is not valid JSON \(key 'a' appears twice in one object"),
        ('{"a": NaN}', r"is not valid JSON \(NaN is not JSON"),
        ('{"a": -Infinity}', r"is not valid JSON \(-Infinity is not JSON"),
        ('{"a": 1' + "0" * 5000 + "}", r"is not valid JSON \(.*digits"),
        ('{"a": 1' + "0" * 30 + "}", r"holds an integer out of range \(1000000000000000000"),
        ('["' + "x" * ((1 << 20) + 1) + '"]', "holds a string longer than 1048576 characters"),
        ("[" * 100_000 + "]" * 100_000, f"is nested deeper than {MAX_DEPTH} levels; not {WHAT}"),
        (
            "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
            f"is nested deeper than {MAX_DEPTH} levels; not {WHAT}",
        ),
        ("{", r"is not valid JSON \(Expecting property name"),
    ],
    ids=["duplicate", "nan", "infinity", "digits", "int64", "string", "recursion", "depth", "truncated"],
)
def test_each_refusal_names_the_file_and_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(text)
    with pytest.raises(ArtifactError, match=f"^{re.escape(str(path))}: {problem}"):
        read(path, max_bytes=4 << 20)


def test_what_it_accepts_comes_back_whole(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    nested: object = 1
    for _ in range(MAX_DEPTH - 1):
        nested = [nested]
    path.write_text(f'{{"a": [1, 2.5, null, true, "\u00e9"], "n": {2**63 - 1}, "deep": {nested}}}')
    assert read(path) == {"a": [1, 2.5, None, True, "\u00e9"], "n": 2**63 - 1, "deep": nested}


def test_the_size_limit_is_read_not_trusted_from_stat(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("[" + "1," * 60 + "1]")
    with pytest.raises(ArtifactError, match=f"x.json: is larger than 100 bytes; not {WHAT}$"):
        read(path, max_bytes=100)
    path.write_text(" " * ((2 << 20) + 1))
    with pytest.raises(ArtifactError, match=f"is larger than 2 MiB; not {WHAT}$"):
        read(path, max_bytes=2 << 20)


def test_not_a_file_and_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(
        ArtifactError, match=f"^{re.escape(str(tmp_path))}: is not a file; {WHAT} is a JSON file"
    ):
        read(tmp_path)
    path = tmp_path / "x.json"
    path.write_bytes(b'{"a": "\xff"}')
    with pytest.raises(ArtifactError, match=r"x\.json: is not valid JSON \('utf-8' codec"):
        read(path)


def test_where_names_the_file_for_the_caller(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_text('{"a": NaN}')
    with pytest.raises(ArtifactError, match=r"^a\.tar\.gz: bundle\.json: is not valid JSON"):
        read(path, where="a.tar.gz: bundle.json")


@pytest.mark.parametrize(
    ("data", "message", "upgrade"),
    [
        ([], rf"is not {WHAT} \('format' is not 'mmexport\.test'\)", False),
        ({"format": "mmexport.other", "format_version": 1}, "is not an mmexport test file", False),
        (
            {"format": "mmexport.test", "format_version": 3},
            "has test format version 3; this mmexport reads up to 2",
            True,
        ),
        ({"format": "mmexport.test", "format_version": 0}, "has test format version 0", False),
        ({"format": "mmexport.test", "format_version": True}, "has test format version True", False),
        ({"format": "mmexport.test", "format_version": "1"}, "has test format version '1'", False),
        ({"format": "mmexport.test"}, "has test format version None", False),
    ],
)
def test_check_format(data: object, message: str, upgrade: bool) -> None:
    with pytest.raises(ArtifactError, match=f"^f.json: {message}") as info:
        check_format(data, "f.json", name="mmexport.test", newest=2, what=WHAT)
    assert (info.value.hint == "upgrade mmexport") is upgrade


def test_check_format_passes_what_it_reads() -> None:
    for version in (1, 2):
        data = {"format": "mmexport.test", "format_version": version, "x": 1}
        assert check_format(data, "f.json", name="mmexport.test", newest=2, what=WHAT) is data


def test_non_finite_figures_are_written_as_null_and_read_back(tmp_path: Path) -> None:
    from mmexport.core.json_limits import dumps_finite

    path = tmp_path / "m.json"
    path.write_text(dumps_finite({"cosine": float("nan"), "rows": [1.5, float("inf")], "n": 3}))
    assert read_json_limited(path, what="a test file", max_bytes=1 << 20) == {
        "cosine": None,
        "rows": [1.5, None],
        "n": 3,
    }


def test_loads_limited_fails_only_with_value_errors_in_words() -> None:
    from mmexport.core.json_limits import loads_limited, tree_problem

    for text, words in [
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32"),
        ("9" * 5000, "5000 digits"),
        ('{"a": 1, "a": 2}', "appears twice"),
        ("NaN", "not JSON"),
    ]:
        with pytest.raises(ValueError, match=words):
            loads_limited(text)
    assert loads_limited('{"a": [1, -12345678901234567890]}') == {"a": [1, -12345678901234567890]}
    assert tree_problem(loads_limited("[" * 40 + "]" * 40)) == "is nested deeper than 32 levels"
    assert tree_problem([2**64]) is not None and tree_problem({"a": [1, "x"]}) is None
