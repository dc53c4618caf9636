"""What the commands share."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])

JSON_OUTPUT = "mmexport.json"
"""ctx.meta key: set when --json was given, so that an error is printed as JSON on stdout too."""


def json_option(help_text: str = "Print JSON instead of the table.") -> Callable[[F], F]:
    """``--json``: the command's result (and any error) as JSON on stdout."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_OUTPUT] = value
        return value

    return click.option("--json", "as_json", is_flag=True, callback=remember, help=help_text)
