"""The options the commands share, each declared once (as pip-tools' ``options.py`` and Polygraphy's
``tools/args`` do): a command stacks the decorators it needs and gets the same flag, type and help."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click

if TYPE_CHECKING:
    from mmexport.runtime import Session

F = TypeVar("F", bound=Callable[..., Any])


class Decorator(Protocol):
    """A click option, or several: gives back the command function it decorates."""

    def __call__(self, f: F, /) -> F: ...


JSON_OUTPUT = "mmexport.json"
"""ctx.meta key: set when --json was given, so that an error is printed as JSON on stdout too."""

DATA_HELP = (  # what --data / --eval-data accept
    "'synthetic' (built-in models), a folder of samples (sub-folders or index.jsonl), an .npz file "
    "or folder of them, or file.py:make_feeds (importing the file runs its code: name only files you trust)."
)
METHODS = ("entropy", "minmax", "percentile")  # precision.stats.METHODS, without importing numpy here
FILE = click.Path(dir_okay=False, path_type=Path)
ANY_PATH = click.Path(path_type=Path)


def stack(*options: Callable[[Any], Any]) -> Decorator:
    """Several click options as one decorator, shown in ``--help`` in the order given."""

    def apply(f: F) -> F:
        for option in reversed(options):
            f = option(f)
        return f

    return apply


def json_option(help_text: str = "Print JSON instead of the table.", *, errors: bool = True) -> Decorator:
    """``--json``: the command's result as JSON on stdout; with ``errors``, any error too."""

    def remember(ctx: click.Context, _param: click.Parameter, value: bool) -> bool:
        ctx.meta[JSON_OUTPUT] = value
        return value

    return click.option(
        "--json", "as_json", is_flag=True, callback=remember if errors else None, help=help_text
    )


quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress messages on stderr.")


def output_option(help_text: str, path_type: click.Path = ANY_PATH, **kwargs: Any) -> Decorator:
    """``-o/--output``: what the command writes (a file or a folder, as ``path_type`` says)."""
    return click.option("-o", "--output", type=path_type, help=help_text, **kwargs)


def spec_option(help_text: str, path_type: click.Path = FILE) -> Decorator:
    """``--spec``: a ModelSpec JSON file (``spec_path`` in the command)."""
    return click.option("--spec", "spec_path", type=path_type, help=help_text)


def data_option(purpose: str) -> Decorator:
    """``--data``: samples for the command's ``purpose``, any source the data layer reads."""
    return click.option("--data", default=None, help=f"{purpose} {DATA_HELP}")


BUDGET_HELP = "500 samples of real data; 32 random feeds at the opt shape without data"


def samples_option(default: int | None, help_text: str | None = None) -> Decorator:
    """``--samples``: how many samples of ``--data`` to use (``None``: the stage sizes it by the data)."""
    return click.option(
        "--samples",
        type=click.IntRange(min=1),
        default=default,
        show_default=default is not None,
        help=help_text,
    )


def eval_options(default: int | None, data_default: str, *, allow_none: bool) -> Decorator:
    """``--eval-data`` and ``--eval-samples``: what the accuracy report evaluates on; ``allow_none``:
    ``--eval-samples 0`` asks for no evaluation. A ``None`` default lets the stage size it by the data."""
    samples_help = "Evaluation samples (0: no evaluation)." if allow_none else "Evaluation samples."
    if default is None:
        samples_help += f" [default: {BUDGET_HELP}]"
    return stack(
        click.option("--eval-data", default=None, help=f"Evaluation data {data_default}. {DATA_HELP}"),
        click.option(
            "--eval-samples",
            type=click.IntRange(min=0 if allow_none else 1),
            default=default,
            show_default=default is not None,
            help=samples_help,
        ),
    )


method_option = click.option(
    "--method",
    type=click.Choice(METHODS),
    default="minmax",
    show_default=True,
    help="How each tensor's INT8 range is chosen from its histogram.",
)


def target_option(help_text: str, default: str | None = None, dest: str = "target") -> Decorator:
    """``--target``: a TensorRT target by name (mmexport.trt.targets)."""
    from mmexport.trt.targets import DEFAULT_TARGET, target_names

    return click.option(
        "--target",
        dest,
        type=click.Choice(target_names()),
        default=default or DEFAULT_TARGET,
        show_default=True,
        help=help_text,
    )


@dataclass(frozen=True)
class SessionChoice:
    """How to open artifacts (``--backend``, ``--device``, ``--provider``, ``--threads``): the
    arguments of ``runtime.Session`` that ``run`` and ``bench`` take from the command line."""

    backend: str = "auto"
    device: str = "cpu"
    provider: str | None = None
    threads: int | None = None

    def open(self, path: Path) -> Session:
        """The artifact at ``path``, opened with these options."""
        from mmexport.runtime import Session

        return Session(path, self.backend, self.device, provider=self.provider, threads=self.threads)


_SESSION_OPTIONS = stack(
    click.option("--backend", default="auto", show_default=True, help="Runtime backend (onnxrt, ...)."),
    click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N."),
    click.option(
        "--provider",
        type=click.Choice(["cpu", "cuda", "tensorrt"]),
        default=None,
        help="onnxruntime execution provider (default: the device's).",
    ),
    click.option("--threads", type=click.IntRange(1), default=None, help="Intra-op CPU threads."),
)


def session_options(f: F) -> F:
    """The Session options, given to the command as one ``session: SessionChoice`` argument."""

    @functools.wraps(f)  # copies the options declared below this decorator
    def command(
        *args: Any, backend: str, device: str, provider: str | None, threads: int | None, **kwargs: Any
    ) -> Any:
        return f(*args, session=SessionChoice(backend, device, provider, threads), **kwargs)

    return _SESSION_OPTIONS(command)  # type: ignore[return-value]


def echo_notes(notes: Iterable[str]) -> None:
    """Warnings that did not stop the command, one ``note:`` line each on stderr."""
    for note in notes:
        click.echo(f"note: {note}", err=True)
