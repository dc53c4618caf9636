"""Library errors name config fields; the CLI prints them as its flags."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.cli.flags import cli_message, flag
from mmexport.core.errors import ConfigError, MmexportError
from mmexport.precision.stages import CalibrationConfig


@pytest.mark.parametrize(
    ("fields", "library", "cli_text"),
    [
        ({"method": "max"}, "method must be one of", "--method must be one of minmax, entropy, percentile"),
        ({"percentile": 0.0}, "percentile must be in (0, 100]", "--percentile must be in (0, 100], got 0.0"),
        (
            {"samples": 0},
            "samples and batch_size must be >= 1",
            "--samples and --batch-size must be >= 1, got 0, 8",
        ),
    ],
)
def test_config_errors_name_fields_and_the_cli_names_flags(fields, library, cli_text):
    with pytest.raises(ConfigError) as caught:
        CalibrationConfig(**fields)
    assert str(caught.value).startswith(library) and "--" not in str(caught.value)
    assert cli_message(caught.value).startswith(cli_text)


def test_only_the_named_fields_become_flags():
    error = ConfigError("method percentile is unknown; method must be set", fields=("method",))
    assert cli_message(error) == "--method percentile is unknown; method must be set"
    assert cli_message(MmexportError("samples must be >= 1")) == "samples must be >= 1"
    assert flag("opt_level") == "--opt-level"


def test_the_calibrate_command_prints_flags(tmp_path):
    args = ["calibrate", str(tmp_path / "m.onnx"), "--max-accuracy-drop", "0.5", "--eval-samples", "0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    assert result.stderr == "error: --max-accuracy-drop needs evaluation samples (--eval-samples >= 1)\n"


def test_the_method_choices_are_the_librarys():
    from mmexport.cli.options import METHODS
    from mmexport.precision import stats

    assert set(METHODS) == set(stats.METHODS)
