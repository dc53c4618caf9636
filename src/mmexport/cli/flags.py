"""Library errors name config fields (``batch_size``); the command line shows its flags instead."""

from __future__ import annotations

import re

from mmexport.core.errors import ConfigError, MmexportError

FLAGS: dict[str, str] = {
    "method": "--method",
    "percentile": "--percentile",
    "samples": "--samples",
    "batch_size": "--batch-size",
    "trt_version": "--trt-version",
    "max_accuracy_drop": "--max-accuracy-drop",
    "eval_samples": "--eval-samples",
}
"""Config field -> the flag that sets it (where a field is not listed: ``--`` and dashes)."""


def flag(field: str) -> str:
    """The command-line flag that sets a config field."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def cli_message(error: MmexportError) -> str:
    """The error's text with the config fields it names written as flags (first mention of each)."""
    text = str(error)
    if isinstance(error, ConfigError):
        for field in error.fields:
            text = re.sub(rf"(?<![\w-]){re.escape(field)}(?![\w-])", flag(field), text, count=1)
    return text
