"""Every data source behind open_source: folders, index.jsonl, .npz, synthetic, Python, make_feeds."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from datafiles import (
    HUGE,
    random_pixels,
    spec_with,
    tone,
    write_lying_npz,
    write_png,
    write_sample,
    write_wav,
)

from mmexport.core.errors import DataError
from mmexport.core.spec import ModelSpec
from mmexport.data.sources import (
    CALIBRATION_SEED,
    Batch,
    FeedSource,
    ShapeCoverage,
    open_source,
    shape_coverage,
)
from mmexport.data.synthetic import HELDOUT_SEED, LABELS, TRAIN_SEED, encode
from mmexport.data.task_spec import SEED_SPEC

FUSION = spec_with()
SEED = ModelSpec.from_dict(SEED_SPEC)


def _all(source: FeedSource) -> list[Batch]:
    return list(source.batches())


def _error(source_or_call: Any) -> DataError:
    """The DataError raised by opening (a callable) or reading (a source) the data."""
    with pytest.raises(DataError) as info:
        if callable(source_or_call):
            source_or_call()
        else:
            _all(source_or_call)
    assert "\n" not in str(info.value)
    return info.value


def _feed(n: int = 2, size: int = 40, seq: int = 5, frames: int = 20) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(n + size + seq)
    return {
        "image": rng.standard_normal((n, 3, size, size)).astype(np.float32),
        "tokens": rng.integers(1, 30, (n, seq)),
        "audio": rng.standard_normal((n, 64, frames)).astype(np.float32),
    }


def test_modules_do_not_import_torch() -> None:
    code = "import sys, mmexport.data.sources, mmexport.data.preprocess; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- folders of sample folders ------------------------------------------------------------------


def test_sample_folders_are_batched_with_tokens_padded_and_labels(tmp_path: Path) -> None:
    root = tmp_path / "calib"
    texts = ["what colour is the object", "which shape", "pitch of the tone", "hue", "what note"]
    for i, text in enumerate(texts):
        write_sample(root / f"{i:04d}", text=text, label=["red", "3", "low", "blue", "8"][i], seed=i)

    source = open_source(root, FUSION, batch_size=4)
    batches = _all(source)

    assert source.description == f"folder {str(root)!r} (5 samples)"
    assert [b.size for b in batches] == [4, 1]
    first = batches[0]
    assert list(first.feed) == ["image", "tokens", "audio"]
    assert first.feed["image"].shape == (4, 3, 40, 48) and first.feed["audio"].shape == (4, 64, 21)
    np.testing.assert_array_equal(first.feed["tokens"][1], [*encode("which shape"), 0, 0, 0])
    assert first.labels is not None and first.labels.tolist() == [0, 3, LABELS.index("low"), 2]
    assert first.names == ("calib/0000", "calib/0001", "calib/0002", "calib/0003")
    assert batches[1].feed["tokens"].shape == (1, 2)
    assert _all(source)[0].names == first.names  # a second pass starts again


def test_a_sample_of_another_size_ends_the_batch(tmp_path: Path) -> None:
    for i, size in enumerate([(40, 48), (40, 48), (64, 64), (40, 48)]):
        write_sample(tmp_path / f"{i}", size=size)
    batches = _all(open_source(tmp_path, FUSION, batch_size=8))
    assert [b.size for b in batches] == [2, 1, 1]
    assert batches[1].feed["image"].shape[2:] == (64, 64)


def test_modality_names_and_npy_files(tmp_path: Path) -> None:
    sample = tmp_path / "s0"
    sample.mkdir()
    np.save(sample / "image.npy", np.zeros((3, 40, 40), dtype=np.float32))
    (sample / "text.txt").write_text("what hue")
    write_wav(sample / "audio.wav", tone(0.2))
    batch = _all(open_source(tmp_path, FUSION))[0]
    assert batch.labels is None
    np.testing.assert_array_equal(batch.feed["tokens"], [encode("what hue")])


def test_missing_file_names_sample_and_input(tmp_path: Path) -> None:
    write_sample(tmp_path / "calib" / "0007")
    (tmp_path / "calib" / "0007" / "audio.wav").unlink()
    error = _error(lambda: open_source(tmp_path / "calib", FUSION))
    assert (error.sample, error.field) == ("calib/0007", "audio")
    assert str(error).startswith("sample 'calib/0007' input 'audio': no file audio.*")


def test_file_for_an_input_the_spec_does_not_have(tmp_path: Path) -> None:
    write_sample(tmp_path / "calib" / "0001")
    write_png(tmp_path / "calib" / "0001" / "depth.png", random_pixels(40, 40))
    error = _error(lambda: open_source(tmp_path / "calib", FUSION))
    assert (error.sample, error.field) == ("calib/0001", "depth")
    assert "'depth.png' names no input of the spec" in str(error)


def test_bad_file_content_names_the_sample(tmp_path: Path) -> None:
    write_sample(tmp_path / "calib" / "0000")
    write_sample(tmp_path / "calib" / "0001", text="what flavour")
    error = _error(open_source(tmp_path / "calib", FUSION))
    assert (error.sample, error.field) == ("calib/0001", "tokens")
    assert "word 'flavour' is not in the vocab" in str(error)


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ("purple", r"label: 'purple' is neither a label name nor an integer id \(labels: red, green"),
        ("9", r"label: class id 9 is out of range, expected \[0, 8\]"),
        ("-1", r"label: class id -1 is out of range"),
    ],
)
def test_bad_label_names_the_sample(tmp_path: Path, label: str, message: str) -> None:
    write_sample(tmp_path / "calib" / "0003", label=label)
    error = _error(lambda: open_source(tmp_path / "calib", FUSION))
    assert (error.sample, error.field) == ("calib/0003", "label")
    assert str(error).startswith("sample 'calib/0003' label: ")
    with pytest.raises(DataError, match=message):
        open_source(tmp_path / "calib", FUSION)


def test_labels_on_some_samples_only(tmp_path: Path) -> None:
    write_sample(tmp_path / "a", label="red")
    write_sample(tmp_path / "b")
    error = _error(lambda: open_source(tmp_path, FUSION))
    assert (error.sample, error.field) == (f"{tmp_path.name}/b", "label")


def test_empty_folder_is_an_error(tmp_path: Path) -> None:
    assert "no sample sub-folders" in str(_error(lambda: open_source(tmp_path, FUSION)))


def test_samples_caps_the_folder(tmp_path: Path) -> None:
    for i in range(5):
        write_sample(tmp_path / f"{i}")
    source = open_source(tmp_path, FUSION, samples=3, batch_size=2)
    assert [b.size for b in _all(source)] == [2, 1]


def test_fingerprint_changes_when_a_file_changes(tmp_path: Path) -> None:
    write_sample(tmp_path / "a")
    write_sample(tmp_path / "b", seed=1)
    before = open_source(tmp_path, FUSION).fingerprint()
    assert open_source(tmp_path, FUSION).fingerprint() == before
    (tmp_path / "b" / "tokens.txt").write_text("what shape")
    assert open_source(tmp_path, FUSION).fingerprint() != before


# -- index.jsonl --------------------------------------------------------------------------------


def test_index_maps_inputs_or_modalities_to_files(tmp_path: Path) -> None:
    write_png(tmp_path / "img" / "a.png", random_pixels(40, 40))
    write_wav(tmp_path / "wav" / "a.wav", tone(0.2))
    (tmp_path / "q.txt").write_text("what colour")
    lines = [
        {"image": "img/a.png", "text": "q.txt", "audio": "wav/a.wav", "label": "green", "name": "first"},
        {"image": "img/a.png", "tokens": "q.txt", "audio": "wav/a.wav", "label": 4},
    ]
    (tmp_path / "index.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n\n")
    batch = _all(open_source(tmp_path, FUSION))[0]
    assert batch.names == ("first", f"{tmp_path.name}/index.jsonl:2")
    assert batch.labels is not None and batch.labels.tolist() == [1, 4]


def test_index_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "index.jsonl").write_text('{"image": "a.png"}\n{not json}\n')
    error = _error(lambda: open_source(tmp_path, FUSION))
    assert error.sample == f"{tmp_path.name}/index.jsonl:1" and error.field == "tokens"
    (tmp_path / "index.jsonl").write_text(
        '{"image": "a.png", "tokens": "q.txt", "audio": "a.wav", "depth": "d"}\n'
    )
    error = _error(lambda: open_source(tmp_path, FUSION))
    assert error.field == "depth"


# -- .npz -----------------------------------------------------------------------------------------


def test_npz_file_and_folder(tmp_path: Path) -> None:
    np.savez(tmp_path / "b0.npz", **_feed(3), labels=np.array([0, 1, 2]))
    np.savez(tmp_path / "b1.npz", **_feed(2, size=64, seq=9, frames=30), labels=np.array([3, 4]))
    single = _all(open_source(tmp_path / "b0.npz", FUSION))
    assert [b.size for b in single] == [3] and single[0].names == ("b0.npz[0]", "b0.npz[1]", "b0.npz[2]")
    folder = open_source(tmp_path, FUSION, samples=4)
    batches = _all(folder)
    assert [b.size for b in batches] == [3, 1]
    assert batches[1].feed["image"].shape == (1, 3, 64, 64) and batches[1].labels.tolist() == [3]
    assert batches[0].feed["tokens"].dtype == np.int64
    before = folder.fingerprint()
    np.savez(tmp_path / "b1.npz", **_feed(2, size=48))
    assert folder.fingerprint() != before


def test_npz_with_an_extra_array_or_wrong_dtype(tmp_path: Path) -> None:
    np.savez(tmp_path / "b.npz", **_feed(2), depth=np.zeros(2))
    error = _error(open_source(tmp_path / "b.npz", FUSION))
    assert (error.sample, error.field) == ("b.npz", "depth")
    assert "is not an input of the spec" in str(error)
    feed = _feed(2)
    np.savez(tmp_path / "b.npz", **{**feed, "tokens": feed["tokens"].astype(np.float32)})
    error = _error(open_source(tmp_path / "b.npz", FUSION))
    assert (error.sample, error.field) == ("b.npz", "tokens")
    assert "expected integer values (int64), got float32" in str(error)


def test_npz_member_header_claiming_more_than_the_archive_holds(tmp_path: Path) -> None:
    path = write_lying_npz(tmp_path / "b.npz", "image")
    error = _error(open_source(path, FUSION))
    assert str(path) in str(error) and "member 'image'" in str(error)
    assert f"header says shape {list(HUGE)} of float32" in str(error)
    assert "but the archive holds 16 bytes" in str(error)
    path.write_bytes(b"not an archive")
    assert "cannot read 'b.npz' as .npz: " in str(_error(open_source(path, FUSION)))


# -- Python iterables and make_feeds --------------------------------------------------------------


def test_list_of_feeds_and_of_feed_label_pairs() -> None:
    batches = _all(open_source([_feed(2), (_feed(3, seq=7), [1, 2, 3])], FUSION))
    assert [b.size for b in batches] == [2, 3]
    assert batches[0].labels is None and batches[1].labels.tolist() == [1, 2, 3]
    assert batches[1].names[0] == "list of feeds[1][0]"


def test_generator_is_refused_but_a_function_is_read_every_time() -> None:
    error = _error(lambda: open_source((f for f in [_feed()]), FUSION))
    assert "one-shot iterator" in str(error)

    def make_feeds(spec: ModelSpec) -> Iterator[dict[str, np.ndarray]]:
        yield _feed(2)
        yield _feed(4)

    source = open_source(make_feeds, FUSION, samples=5)
    assert [b.size for b in _all(source)] == [2, 3]
    assert [b.size for b in _all(source)] == [2, 3]
    assert source.fingerprint() == source.fingerprint()


def test_make_feeds_reference_to_a_file(tmp_path: Path) -> None:
    code = (
        "import numpy as np\n"
        "def make_feeds(spec):\n"
        "    return [spec.sample_feed({'batch': 2, 'height': 40, 'width': 40, 'seq': 4, 'frames': 20})]\n"
    )
    (tmp_path / "feeds.py").write_text(code)
    source = open_source(f"{tmp_path / 'feeds.py'}:make_feeds", FUSION)
    assert [b.size for b in _all(source)] == [2]
    assert "make_feeds" in source.description
    error = _error(lambda: open_source(f"{tmp_path / 'feeds.py'}:nothing", FUSION))
    assert "has no attribute 'nothing'" in str(error)


@pytest.mark.parametrize(
    ("body", "code"),
    [("    sys.exit(0)\n", "0"), ("    yield from []\n    sys.exit('no data')\n", "'no data'")],
    ids=["when-called", "while-iterated"],
)
def test_make_feeds_that_calls_sys_exit_is_a_data_error(tmp_path: Path, body: str, code: str) -> None:
    (tmp_path / "feeds.py").write_text(f"import sys\ndef make_feeds(spec):\n{body}")
    reference = f"{tmp_path / 'feeds.py'}:make_feeds"
    error = _error(open_source(reference, FUSION))
    assert str(error).startswith(f"data: make_feeds {reference!r} called sys.exit({code}) (")
    assert error.hint is not None and "raise an exception" in error.hint

    def make_feeds(spec: ModelSpec) -> list[dict[str, np.ndarray]]:
        sys.exit()

    assert "make_feeds(spec) called sys.exit()" in str(_error(open_source(make_feeds, FUSION)))


@pytest.mark.parametrize(
    ("feed", "field", "message"),
    [
        ({k: v for k, v in _feed().items() if k != "audio"}, "audio", "is missing"),
        ({**_feed(), "depth": np.zeros((2, 4))}, "depth", "is not an input of the spec"),
        ({**_feed(), "image": np.zeros((2, 3, 40), np.float32)}, "image", "expected rank 4"),
        ({**_feed(), "image": np.zeros((2, 3, 8, 40), np.float32)}, "image", r"axis 2 \(dim 'height'\) is 8"),
        (_feed(33), "image", r"axis 0 \(dim 'batch'\) is 33, expected in \[1, 32\]"),
        (
            {**_feed(), "audio": np.zeros((2, 32, 20), np.float32)},
            "audio",
            r"axis 1 \(size\) is 32, expected 64",
        ),
        (
            {**_feed(), "tokens": np.ones((3, 5), np.int64)},
            "tokens",
            "dim 'batch' is 3 here but 2 in input 'image'",
        ),
    ],
)
def test_bad_feeds_name_the_batch_and_input(feed: dict[str, np.ndarray], field: str, message: str) -> None:
    with pytest.raises(DataError, match=message) as info:
        _all(open_source([feed], FUSION))
    assert (info.value.sample, info.value.field) == ("list of feeds[0]", field)


def test_bad_labels_and_items() -> None:
    error = _error(open_source([(_feed(2), [0, 9])], FUSION))
    assert (error.sample, error.field) == ("list of feeds[0][1]", "label")
    error = _error(open_source([(_feed(2), [0.5, 1.0])], FUSION))
    assert error.field == "label" and "integer class ids" in str(error)
    assert "expected a feed dict" in str(_error(open_source([_feed(), 3], FUSION)))


def test_empty_sources_are_errors() -> None:
    assert "gives no samples" in str(_error(open_source([], FUSION)))
    assert "gives no samples" in str(_error(open_source(lambda spec: [], FUSION)))
    assert "does not exist" in str(_error(lambda: open_source("no/such/folder", FUSION)))


# -- synthetic ---------------------------------------------------------------------------------------


def test_synthetic_splits_differ_and_repeat() -> None:
    assert len({CALIBRATION_SEED, HELDOUT_SEED, TRAIN_SEED}) == 3
    calib = open_source("synthetic", FUSION, builtin="fusion", samples=24, batch_size=8)
    evaluation = open_source(
        "synthetic", FUSION, builtin="fusion", split="evaluation", samples=24, batch_size=8
    )
    assert calib.description == "synthetic (fusion, calibration split, 24 samples)"
    first, again = _all(calib), _all(calib)
    for a, b in zip(first, again, strict=True):
        for name in a.feed:
            np.testing.assert_array_equal(a.feed[name], b.feed[name])
        np.testing.assert_array_equal(a.labels, b.labels)
    other = _all(evaluation)
    assert not np.array_equal(first[0].feed["image"], other[0].feed["image"])
    assert calib.fingerprint() == calib.fingerprint() != evaluation.fingerprint()


def test_synthetic_sizes_cover_the_range() -> None:
    source = open_source("synthetic", FUSION, builtin="fusion", samples=40, batch_size=4)
    coverage = ShapeCoverage(FUSION)
    sizes = set()
    for batch in source.batches():
        coverage.add(batch.feed)
        sizes.add(batch.feed["image"].shape[2:] + batch.feed["audio"].shape[2:])
    seen = coverage.as_dict()
    assert seen["height"] == {"min": 48, "max": 128} and seen["width"] == {"min": 48, "max": 128}
    assert seen["frames"] == {"min": 16, "max": 200}
    assert seen["seq"]["max"] > seen["seq"]["min"]
    assert len(sizes) >= 8
    assert shape_coverage(source, FUSION) == seen


def test_synthetic_for_seed_and_defaults() -> None:
    source = open_source("synthetic", SEED, builtin="seed", split="evaluation")
    assert source.description == "synthetic (seed, evaluation split, 1000 samples)"
    batch = next(source.batches())
    assert list(batch.feed) == ["image", "tokens"] and batch.labels.max() < 6


def test_synthetic_needs_a_builtin() -> None:
    error = _error(lambda: open_source("synthetic", FUSION))
    assert "only for the built-in models (fusion, seed)" in str(error)
    error = _error(lambda: open_source("synthetic", FUSION, builtin="mine"))
    assert "not for 'mine'" in str(error)
    error = _error(lambda: open_source("synthetic", FUSION, builtin="seed"))
    assert "gives inputs image, tokens" in str(error)
