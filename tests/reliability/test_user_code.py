"""``file.py:factory`` runs the user's code; when that code ends the process (``sys.exit`` at import,
an argparse call in a script, ``sys.exit`` in the factory), mmexport must say so and fail, not
exit with the user's status (0 looked like success, with nothing written)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mmexport.cli.app import cli
from mmexport.core.errors import ModelLoadError
from mmexport.export.loader import load_model

SCRIPTS = {
    "exit0.py": "import sys\nsys.exit(0)\n",
    "script.py": "import argparse\nargparse.ArgumentParser().parse_args(['--no-such-flag'])\n",
    "exit_in_factory.py": "import sys\n\ndef factory():\n    sys.exit(4)\n",
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_user_code_that_exits_is_a_model_load_error(tmp_path: Path, tiny_spec_file: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(SCRIPTS[name])
    reference = f"{path}:factory"
    with pytest.raises(ModelLoadError, match=r"called sys\.exit\(\w*\)"):
        load_model(reference, tiny_spec_file)
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, ["to-onnx", reference, "--spec", str(tiny_spec_file), "-o", str(out)])
    assert result.exit_code == 1, result.output
    last = result.stderr.strip().splitlines()[-1]  # argparse prints its usage first, as in a script
    assert last.startswith("error: model ") and "sys.exit" in last
    assert not out.exists()
