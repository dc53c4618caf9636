"""SplitSession: absent modalities (declared and not), the encoder cache, concurrency, the Session shape."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mmexport.core.errors import InputError
from mmexport.core.spec import ModelSpec
from mmexport.export.parity import torch_outputs
from mmexport.models import get_builtin
from mmexport.split import SplitSession

from .conftest import narrow_spec
from .split_models import PAIR_SPEC, pair


def _feed(name: str, seed: int = 0) -> dict[str, np.ndarray]:
    spec = narrow_spec(name)
    return spec.sample_feed(spec.point("opt"), seed=seed)


def test_absent_audio_is_masked_as_declared(fusion_split):
    feed = _feed("fusion")
    del feed["audio"]
    model = get_builtin("fusion").build()
    with torch.inference_mode():
        image = model.encode_image(torch.from_numpy(feed["image"]))
        summary = model.encode_text(torch.from_numpy(feed["tokens"]))
        batch = image.shape[0]
        # the masked tokens' values and count do not matter: any stand-in gives the same logits
        stand_in = torch.randn(batch, 7, 64)
        expected = model.fuse(
            image,
            summary,
            stand_in,
            torch.ones(batch, dtype=torch.bool),
            torch.zeros(batch, dtype=torch.bool),
        ).numpy()
    with SplitSession(fusion_split.folder) as pipe:
        (actual,) = pipe.run(feed).values()
        full = pipe.run(_feed("fusion"))["logits"]
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=1e-3)
    assert not np.allclose(actual, full, atol=1e-3), "dropping the audio changes the answer's scores"


def test_absent_image_uses_the_null_embedding(seed_split):
    feed = _feed("seed")
    del feed["image"]
    model = get_builtin("seed").build()
    with torch.inference_mode():
        null = model.encode_image(torch.zeros(1, 3, 128, 128))
        text = model.encode_text(torch.from_numpy(feed["tokens"]))
        expected = model.head(null.expand(text.shape[0], -1), text).softmax(-1).numpy()
    with SplitSession(seed_split.folder) as pipe:
        np.testing.assert_allclose(pipe.run(feed)["probs"], expected, atol=1e-5, rtol=1e-4)


def test_undeclared_absence_names_the_modality_and_what_is_declared(fusion_split):
    feed = _feed("fusion")
    del feed["tokens"]
    with SplitSession(fusion_split.folder) as pipe, pytest.raises(InputError) as caught:
        pipe.run(feed)
    message = str(caught.value)
    assert caught.value.input == "tokens"
    assert "part 'text' (text) declares no behaviour when absent" in message
    assert "declared: image (mask), audio (mask)" in message


def test_unknown_input_and_bad_shapes_are_input_errors(fusion_split):
    with SplitSession(fusion_split.folder) as pipe:
        with pytest.raises(InputError, match="'camera': is not an input"):
            pipe.run({**_feed("fusion"), "camera": np.zeros(1)})
        bad = _feed("fusion")
        bad["audio"] = bad["audio"][:1]  # batch 1 against 2 elsewhere
        with pytest.raises(InputError, match="dim 'batch'"):
            pipe.run(bad)
        with pytest.raises(InputError, match="no inputs given"):
            pipe.run({})


def test_cache_hits_return_the_same_outputs_and_changed_inputs_miss(fusion_split):
    feed = _feed("fusion")
    with SplitSession(fusion_split.folder) as plain, SplitSession(fusion_split.folder, cache=True) as cached:
        first = cached.run(feed)["logits"]
        again = cached.run(feed)["logits"]
        assert cached.cache_info() == {p: {"hits": 1, "misses": 1} for p in ("image", "text", "audio")}
        np.testing.assert_array_equal(first, again)
        np.testing.assert_array_equal(first, plain.run(feed)["logits"])
        moved = {**feed, "image": feed["image"] + 0.5}  # a new frame, same question and sound
        result = cached.run(moved)["logits"]
        np.testing.assert_array_equal(result, plain.run(moved)["logits"])
        info = cached.cache_info()
        assert info["image"] == {"hits": 1, "misses": 2} and info["text"] == {"hits": 2, "misses": 1}
        cached.clear_cache()
        assert cached.cache_info()["text"] == {"hits": 0, "misses": 0}


def test_explicit_cache_keys(fusion_split):
    feed = _feed("fusion")
    other = {**feed, "tokens": _feed("fusion", seed=5)["tokens"]}
    with SplitSession(fusion_split.folder, cache=True) as pipe, SplitSession(fusion_split.folder) as plain:
        pipe.run(feed, cache_keys={"text": "cmd-1"})
        # the key is the caller's word: same key, text not recomputed (even though tokens differ)
        stale = pipe.run(other, cache_keys={"text": "cmd-1"})["logits"]
        np.testing.assert_allclose(stale, plain.run({**other, "tokens": feed["tokens"]})["logits"], atol=1e-6)
        fresh = pipe.run(other, cache_keys={"text": "cmd-2"})["logits"]
        np.testing.assert_allclose(fresh, plain.run(other)["logits"], atol=1e-6)
        assert pipe.cache_info()["text"] == {"hits": 1, "misses": 2}
        with pytest.raises(InputError, match="cached parts: image, text, audio"):
            pipe.run(feed, cache_keys={"fuse": 1})
    with SplitSession(fusion_split.folder) as plain, pytest.raises(InputError, match="without cache=True"):
        plain.run(feed, cache_keys={"text": "x"})


def test_parallel_and_serial_agree_and_threads_share_a_pipeline(fusion_split):
    from concurrent.futures import ThreadPoolExecutor

    feeds = [_feed("fusion", seed=s) for s in range(6)]
    with SplitSession(fusion_split.folder, parallel=False) as serial:
        expected = [serial.run(f)["logits"] for f in feeds]
    with SplitSession(fusion_split.folder, cache=True) as pipe:
        assert pipe.describe()["parallel"] is True
        with ThreadPoolExecutor(3) as pool:
            results = list(pool.map(lambda f: pipe.run(f)["logits"], feeds * 2))
    for got, want in zip(results, expected * 2, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_session_like_surface(fusion_split):
    with SplitSession(fusion_split.folder) as pipe:
        assert pipe.input_names == ["image", "tokens", "audio"] and pipe.output_names == ["logits"]
        checked = pipe.validate({**_feed("fusion"), "tokens": _feed("fusion")["tokens"].astype(np.int32)})
        assert checked["tokens"].dtype == np.int64  # cast losslessly, as Session does
        outputs = pipe.part_outputs(_feed("fusion"))
        assert set(outputs) == {"image", "text", "audio", "fuse"}
        info = pipe.describe()
        assert info["parts"]["fuse"] == {"file": "fuse.onnx", "precision": "fp32"}


def test_cache_only_the_named_parts(fusion_split):
    feed = _feed("fusion")
    with SplitSession(fusion_split.folder, cache={"text"}) as pipe:
        pipe.run(feed)
        pipe.run({**feed, "image": feed["image"] * 2})
        assert pipe.cache_info() == {"text": {"hits": 1, "misses": 1}}
    with pytest.raises(InputError, match="cache names part 'fuse'; cacheable parts: image, text, audio"):
        SplitSession(fusion_split.folder, cache={"fuse"})


def test_part_runner_times_one_part_on_what_the_pipeline_gives_it(fusion_split):
    from mmexport.split.parts import PartRunner

    feed = _feed("fusion")
    with SplitSession(fusion_split.folder) as pipe:
        runner = PartRunner(pipe, "fuse")
        assert runner.spec is pipe.spec and runner.describe()["part"] == "fuse"
        np.testing.assert_array_equal(runner.run(feed)["logits"], pipe.run(feed)["logits"])
        other = _feed("fusion", seed=7)
        np.testing.assert_array_equal(runner.run(other)["logits"], pipe.run(other)["logits"])


def test_split_session_and_part_runner_keep_the_runner_contract(fusion_split):
    from mmexport.runtime import Runner
    from mmexport.split.parts import PartRunner

    feed = _feed("fusion")
    pipe = SplitSession(fusion_split.folder)
    runner = PartRunner(pipe, "fuse")
    assert isinstance(pipe, Runner) and isinstance(runner, Runner)
    assert pipe.capabilities == frozenset() == runner.capabilities and pipe.timings() is None
    assert pipe.backend_name == runner.backend_name == "onnxrt"
    fuse = pipe.parts["fuse"]
    calls = []
    fuse._backend.run = lambda f: calls.append(f)  # type: ignore[method-assign]
    with pytest.raises(InputError, match="'image'"):
        runner.run({**feed, "image": feed["image"].astype(np.int32)})
    with pytest.raises(InputError, match="'image'"):
        pipe.run({**feed, "image": feed["image"].astype(np.int32)})
    assert calls == []  # refused before any part ran
    pipe.close()
    assert fuse._backend._session is None  # closing the pipeline closed its parts
    with pytest.raises(RuntimeError, match=r"^SplitSession\(.*\) is closed$"):
        pipe.run(feed)


def test_caller_mutating_returned_arrays_does_not_corrupt_the_cache(fusion_split):
    feed = _feed("fusion")
    with SplitSession(fusion_split.folder, cache=True) as pipe, SplitSession(fusion_split.folder) as plain:
        expected = plain.part_outputs(feed)
        first = pipe.part_outputs(feed)
        first["image"]["image_tokens"][:] = 0  # the caller owns what it is given
        pipe.part_inputs(feed)["fuse"]["summary"][:] = 0
        again = pipe.part_outputs(feed)
        assert pipe.cache_info()["image"]["hits"] == 2
        np.testing.assert_array_equal(again["image"]["image_tokens"], expected["image"]["image_tokens"])
        np.testing.assert_array_equal(again["text"]["summary"], expected["text"]["summary"])
        np.testing.assert_array_equal(pipe.run(feed)["logits"], plain.run(feed)["logits"])


def test_a_cache_key_never_returns_outputs_of_other_shapes(fusion_split):
    """The caller's key stands for the content, not for the shapes: another batch misses."""
    feed = _feed("fusion")
    single = {n: v[:1] for n, v in feed.items()}
    with SplitSession(fusion_split.folder, cache=True) as pipe, SplitSession(fusion_split.folder) as plain:
        pipe.run(feed, cache_keys={"text": "cmd-1"})
        got = pipe.run(single, cache_keys={"text": "cmd-1"})["logits"]
        np.testing.assert_allclose(got, plain.run(single)["logits"], atol=1e-6)
        assert pipe.cache_info()["text"] == {"hits": 0, "misses": 2}
        longer = {**feed, "tokens": np.concatenate([feed["tokens"], feed["tokens"]], axis=1)}
        pipe.run(longer, cache_keys={"text": "cmd-1"})
        assert pipe.cache_info()["text"] == {"hits": 0, "misses": 3}
        with pytest.raises(InputError, match=r"cache_keys\['text'\] must be hashable"):
            pipe.run(feed, cache_keys={"text": np.arange(3)})


def test_content_hash_tells_dtype_and_shape_apart():
    from mmexport.split.session import content_hash

    zeros = np.zeros(8, dtype=np.int32)
    variants = [zeros, zeros.view(np.float32), zeros.reshape(2, 4), zeros.astype(np.int64)[:4]]
    assert len({content_hash({"x": v}) for v in variants}) == len(variants)
    assert content_hash({"x": zeros[::2]}) == content_hash({"x": np.zeros(4, np.int32)})


def test_cache_accepts_one_part_name_as_a_string(fusion_split):
    with SplitSession(fusion_split.folder, cache="text") as pipe:
        assert pipe.cache_info() == {"text": {"hits": 0, "misses": 0}}


def test_a_failing_part_is_raised_after_the_concurrent_parts_finish(fusion_split, monkeypatch):
    """No part is left running in the pool behind the caller's back when another one fails."""
    import threading
    import time

    feed = _feed("fusion")
    with SplitSession(fusion_split.folder) as pipe:
        finished = threading.Event()
        slow_run = pipe.parts["audio"].run

        def slow(feeds):
            time.sleep(0.2)
            outputs = slow_run(feeds)
            finished.set()
            return outputs

        def failing(feeds):
            raise RuntimeError("image part failed")

        monkeypatch.setattr(pipe.parts["audio"], "run", slow)
        monkeypatch.setattr(pipe.parts["image"], "run", failing)
        with pytest.raises(RuntimeError, match="image part failed"):
            pipe.run(feed)
        assert finished.is_set()
        monkeypatch.undo()
        monkeypatch.setattr(pipe.parts["text"], "run", failing)  # a part run on the pool
        with pytest.raises(RuntimeError, match="image part failed"):
            pipe.run(feed)


@pytest.mark.parametrize("parallel", [True, False])
def test_run_after_close_is_a_clear_error(fusion_split, parallel):
    pipe = SplitSession(fusion_split.folder, parallel=parallel)
    pipe.close()
    pipe.close()  # closing twice is harmless
    with pytest.raises(RuntimeError, match=r"SplitSession\(.*\) is closed"):
        pipe.run(_feed("fusion"))


def test_threads_with_different_inputs_never_get_each_others_cached_outputs(fusion_split):
    """Several threads, one cached SplitSession, inputs changing under each other: every answer is the
    uncached answer for its own inputs (by content hash and by key)."""
    from concurrent.futures import ThreadPoolExecutor

    feeds = [_feed("fusion", seed=s) for s in range(3)]
    with SplitSession(fusion_split.folder, parallel=False) as plain:
        expected = [plain.run(f)["logits"] for f in feeds]
    calls = [(k % 3, k % 2 == 0) for k in range(48)]
    with SplitSession(fusion_split.folder, cache=True) as pipe:

        def call(job: tuple[int, bool]) -> np.ndarray:
            index, keyed = job
            keys = {"text": f"cmd-{index}", "audio": index} if keyed else None
            return pipe.run(feeds[index], cache_keys=keys)["logits"]

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(call, calls))
        info = pipe.cache_info()
    for (index, _), got in zip(calls, results, strict=True):
        np.testing.assert_allclose(got, expected[index], atol=1e-6)
    assert all(v["hits"] + v["misses"] == len(calls) for v in info.values())


def test_a_part_with_two_inputs_and_two_outputs_is_wired_by_name(pair_split):
    spec = ModelSpec.from_dict(PAIR_SPEC)
    model = pair()
    assert pair_split.parity.passed
    with SplitSession(pair_split.folder) as pipe:
        assert pipe.output_names == ["logits", "energy"]
        for which in ("min", "max"):
            feed = spec.sample_feed(spec.point(which), seed=4)
            outputs = pipe.run(feed)
            for name, expected in zip(["logits", "energy"], torch_outputs(model, feed), strict=True):
                np.testing.assert_allclose(outputs[name], expected, atol=1e-5, err_msg=f"{name} at {which}")
        parts = pipe.part_outputs(feed)
        assert set(parts["imu"]) == {"imu_feature", "imu_energy"}


def test_one_of_a_parts_two_inputs_is_an_error_naming_both(pair_split):
    spec = ModelSpec.from_dict(PAIR_SPEC)
    feed = spec.sample_feed(spec.point("opt"), seed=0)
    with SplitSession(pair_split.folder) as pipe:
        for given, missing in (("imu", "imu_scale"), ("imu_scale", "imu")):
            partial = {n: v for n, v in feed.items() if n != missing}
            with pytest.raises(InputError) as caught:
                pipe.run(partial)
            error = caught.value
            assert (
                error.input == missing and error.expected == ["imu", "imu_scale"] and error.actual == [given]
            )
            assert f"is missing while {given!r} is given; part 'imu' takes imu, imu_scale" in str(error)


def test_absent_part_with_two_constant_outputs_at_batch_3(pair_split):
    spec = ModelSpec.from_dict(PAIR_SPEC)
    feed = spec.sample_feed({**spec.point("opt"), "batch": 3}, seed=2)
    model = pair()
    with torch.inference_mode():
        image = model.encode_image(torch.from_numpy(feed["image"]))
        logits, energy = model.fuse(image, torch.zeros(3, 8), torch.ones(3, 1))
    with SplitSession(pair_split.folder, cache=True) as pipe:
        for _ in range(2):  # the second call: image from the cache, the IMU still absent
            outputs = pipe.run({"image": feed["image"]})
            np.testing.assert_allclose(outputs["logits"], logits.numpy(), atol=1e-5)
            np.testing.assert_array_equal(outputs["energy"], energy.numpy())


def test_close_waits_for_runs_in_flight(fusion_split, monkeypatch):
    """close() from another thread lets the runs already started finish on open sessions."""
    import threading
    import time

    feed = _feed("fusion")
    pipe = SplitSession(fusion_split.folder)
    expected = pipe.run(feed)["logits"]
    fuse = pipe.parts["fuse"]
    started, events = threading.Event(), []
    real_run, real_close = fuse.run, fuse.close

    def slow_run(feeds):
        started.set()
        time.sleep(0.3)
        events.append("fuse ran")
        return real_run(feeds)

    def close():
        events.append("fuse closed")
        real_close()

    monkeypatch.setattr(fuse, "run", slow_run)
    monkeypatch.setattr(fuse, "close", close)
    result: list[np.ndarray] = []
    worker = threading.Thread(target=lambda: result.append(pipe.run(feed)["logits"]))
    worker.start()
    assert started.wait(5)
    pipe.close()
    worker.join()
    assert events == ["fuse ran", "fuse closed"]
    np.testing.assert_array_equal(result[0], expected)
