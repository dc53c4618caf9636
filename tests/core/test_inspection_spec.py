"""``mmexport inspect`` shows each input's preprocessing and the outputs' labels, from the manifest."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.inspection import describe_preprocess, inspect_artifact
from mmexport.data.synthetic import LABELS, VOCAB


@pytest.mark.slow  # the session's fusion export: 2 minutes when no other test made it
def test_inspect_shows_preprocessing_and_labels_of_the_fusion_export(fusion_export):
    table = CliRunner().invoke(cli, ["inspect", str(fusion_export.path)])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    after = {lines[i].split()[0]: lines[i + 1].strip() for i in range(len(lines) - 1) if lines[i].strip()}
    assert after["image"] == "image: mean [0.47, 0.47, 0.47], std [0.18, 0.18, 0.18]"
    assert after["tokens"] == f"tokens: vocab {len(VOCAB)} words ({', '.join(VOCAB[:6])}, …), pad id 0"
    assert after["audio"] == "log-mel: 16000 Hz, n_fft 400, hop 160, 64 mels"
    assert after["logits"] == f"labels {len(LABELS)}: {', '.join(LABELS[:6])}, …"

    data = json.loads(CliRunner().invoke(cli, ["inspect", str(fusion_export.path), "--json"]).stdout)
    by_name = {i["name"]: i for i in data["inputs"]}
    assert by_name["tokens"]["preprocess"]["vocab"] == VOCAB
    assert by_name["audio"]["preprocess"]["hop_length"] == 160
    assert data["outputs"][0]["labels"] == LABELS


def test_inspect_names_a_mask_and_short_label_lists_in_full(tmp_path):
    import torch

    from mmexport.export import ExportConfig, ParityConfig, to_onnx

    class Masked(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Embedding(10, 4)

        def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
            weights = mask[..., None].float()
            return (self.embed(ids) * weights).sum(1) / weights.sum(1)

    spec = {
        "inputs": [
            {
                "name": "ids",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "range": [1, 10],
            },
            {
                "name": "mask",
                "modality": "text",
                "dtype": "int64",
                "shape": ["batch", "seq"],
                "mask_of": "ids",
            },
        ],
        "outputs": [{"name": "y", "labels": ["a", "b", "c", "d"]}],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 4}, "seq": {"min": 1, "opt": 5, "max": 8}},
    }
    torch.manual_seed(0)
    fast = {"parity": ParityConfig(random_points=1), "export": ExportConfig(exporter="torchscript")}
    out = to_onnx(Masked().eval(), tmp_path / "m.onnx", spec=spec, **fast).path
    info = inspect_artifact(out)
    assert info["inputs"][1]["mask_of"] == "ids" and info["outputs"][0]["labels"] == ["a", "b", "c", "d"]
    table = CliRunner().invoke(cli, ["inspect", str(out)]).output
    assert "mask of ids (1 on tokens, 0 on padding)" in table
    assert "labels 4: a, b, c, d\n" in table


def test_describe_preprocess_options():
    text = describe_preprocess({"kind": "tokens", "vocab": ["<unk>", "a"], "unk": "<unk>", "lowercase": True})
    assert text == "tokens: vocab 2 words (<unk>, a), unknown words -> <unk>, lowercased"
    assert describe_preprocess({"kind": "tokens"}) == "tokens: ids given as they are"
    image = {"kind": "image", "mean": [0.5], "std": [0.2], "scale": 0.5, "channel_order": "bgr"}
    assert describe_preprocess(image) == "image: mean [0.5], std [0.2], pixels x 0.5, bgr"
    mel = {
        "kind": "log_mel",
        "sample_rate": 8000,
        "n_fft": 256,
        "hop_length": 80,
        "n_mels": 40,
        "duration_s": 2,
    }
    assert describe_preprocess(mel) == "log-mel: 8000 Hz, n_fft 256, hop 80, 40 mels, 2 s"
