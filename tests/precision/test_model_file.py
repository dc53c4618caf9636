"""The temporary copy onnxruntime reads for a model made in memory: a full disk is one line."""

from __future__ import annotations

import errno
from pathlib import Path

import onnx
import pytest

import mmexport.precision.accuracy
from mmexport.core.errors import ArtifactError
from mmexport.precision.accuracy import model_file


@pytest.mark.parametrize(
    ("code", "why"),
    [(errno.ENOSPC, "no space left on device"), (errno.EFBIG, "no space left under the file-size limit")],
)
def test_a_full_disk_names_the_temporary_copy_and_tmpdir(
    monkeypatch: pytest.MonkeyPatch, code: int, why: str
) -> None:
    def full(*args: object, **kwargs: object) -> Path:
        raise OSError(code, "full")

    monkeypatch.setattr(mmexport.precision.accuracy, "save_with_external_data", full)
    with pytest.raises(ArtifactError) as caught, model_file(onnx.ModelProto()):
        pass
    assert str(caught.value).endswith(
        f"model.onnx: the temporary copy onnxruntime reads cannot be written: {why}; nothing was left "
        "half-written (free some space in the temporary folder, or set TMPDIR to one with room)"
    )
