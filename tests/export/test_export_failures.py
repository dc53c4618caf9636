"""A failed torch.onnx export: one short error naming the model's line and the other exporter,
torch's dumps kept off the terminal and in a log file that the error names."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import ExportError, ParityError
from mmexport.core.spec import ModelSpec
from mmexport.export import ExportConfig, to_onnx

SPEC = ModelSpec.from_dict(
    {
        "inputs": [{"name": "x", "modality": "tensor", "dtype": "float32", "shape": ["batch", 8]}],
        "outputs": ["y"],
        "dims": {"batch": {"min": 1, "opt": 2, "max": 8}},
    }
)


class Branchy(torch.nn.Module):
    """Branches on a tensor's value: dynamo cannot export it."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.proj(x)
        if h.sum() > 0:  # the line the error names
            h = h * 2
        return h


class Sampler(torch.nn.Module):
    """Draws a data-dependent number of samples: TorchScript cannot export it (and dumps its IR)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        count = (x > 0).sum() + 1  # the line named
        return torch.multinomial(x.abs() + 0.1, count, replacement=True).float()


class SignSwitch(torch.nn.Module):
    """Doubles inputs whose sum is positive: a TorchScript trace keeps the example's branch."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # the traced branch
            return x * 2
        return x


class AlwaysTrue(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.abs().sum() >= 0:  # always taken
            return x * 2
        return x


def _line(cls: type, marker: str) -> int:
    lines, start = inspect.getsourcelines(cls)
    return start + next(i for i, text in enumerate(lines) if marker in text)


def _log_file(message: str) -> Path:
    found = re.search(r"torch's full output: (\S+\.log)", message)
    assert found, message
    return Path(found.group(1))


def test_dynamo_failure_names_the_model_line_and_suggests_torchscript(tmp_path, capfd):
    with pytest.raises(ExportError) as e:
        to_onnx(Branchy().eval(), tmp_path / "m.onnx", spec=SPEC)
    message = str(e.value)
    assert f"{__file__}:{_line(Branchy, 'the line the error names')} in forward: if h.sum() > 0:" in message
    assert "GuardOnDataDependentSymNode" in message and "try --exporter torchscript" in message
    log = _log_file(message)
    assert "Traceback" in log.read_text() and "h.sum() > 0" in log.read_text()
    log.unlink()
    out, err = capfd.readouterr()
    assert len((out + err).splitlines()) < 5, out + err
    assert not list(tmp_path.iterdir())  # nothing written beside the output


def test_torchscript_ir_dump_goes_to_the_log_not_the_terminal(tmp_path, capfd):
    with pytest.raises(ExportError) as e:
        to_onnx(Sampler().eval(), tmp_path / "m.onnx", spec=SPEC, export=ExportConfig(exporter="torchscript"))
    message = str(e.value)
    out, err = capfd.readouterr()
    assert "graph(" not in out + err and "Torch IR" not in out + err
    assert len((out + err).splitlines()) < 5, (out + err)[:2000]
    assert "try --exporter dynamo" in message and "[Caused by" not in message
    assert f"the value comes from {__file__}:{_line(Sampler, 'the line named')}" in message, message
    assert len(message) < 1000
    log = _log_file(message)
    assert "graph(" in log.read_text()  # the dump is kept for whoever needs it
    log.unlink()


def test_cli_export_failure_is_short(tmp_path):
    model = tmp_path / "branchy.py"
    source = ["import torch", "", "", *inspect.getsource(Branchy).splitlines(), "", "", "def build():"]
    model.write_text("\n".join([*source, "    return Branchy().eval()", ""]))
    line = next(i for i, text in enumerate(source, 1) if "h.sum() > 0" in text)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SPEC.to_dict()))
    args = ["to-onnx", f"{model}:build", "--spec", str(spec), "-o", str(tmp_path / "m.onnx")]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert len(result.output.splitlines()) < 20, result.output
    assert f"{model}:{line} in forward" in result.output
    assert "error: export failed" in result.output and "Traceback" not in result.output
    _log_file(result.output).unlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["branchy.py", "spec.json"]


TORCHSCRIPT = ExportConfig(exporter="torchscript")


def test_a_torchscript_trace_that_fixed_a_branch_is_named_when_parity_fails(tmp_path):
    with pytest.raises(ParityError) as e:
        to_onnx(SignSwitch().eval(), tmp_path / "m.onnx", spec=SPEC, export=TORCHSCRIPT)
    line = _line(SignSwitch, "the traced branch")
    assert (
        f"TorchScript traced one path at {__file__}:{line} (Converting a tensor to a Python boolean"
        in str(e.value)
    )
    assert "try --exporter dynamo" in str(e.value)


def test_a_torchscript_trace_that_fixed_a_branch_is_a_note_when_parity_passes(tmp_path):
    result = to_onnx(AlwaysTrue().eval(), tmp_path / "m.onnx", spec=SPEC, export=TORCHSCRIPT)
    line = _line(AlwaysTrue, "always taken")
    assert any(n.startswith(f"TorchScript traced one path at {__file__}:{line}") for n in result.notes), (
        result.notes
    )
