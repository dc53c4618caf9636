"""The CLI's progress: notes printed as indented lines, long loops as done/total with rate and ETA."""

from __future__ import annotations

import logging

import click
import pytest
from click.testing import CliRunner

from mmexport.cli.progress import Counter, show_notes
from mmexport.core.progress import nested


def _clock(times: list[float]):
    return lambda: times.pop(0)


def test_counter_off_a_terminal_prints_each_tenth_with_rate_and_eta(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = Counter("calibrating", tty=False, clock=_clock([float(i) for i in range(1, 7)]))
    for done in (8, 16, 17, 48, 79, 80):
        bar(done, 80)
    assert capsys.readouterr().err.splitlines() == [
        "  calibrating: 8/80 samples",  # the rate counts from the first call
        "  calibrating: 16/80 samples, 8/s, about 8 s left",
        "  calibrating: 48/80 samples, 13.3/s, about 2 s left",  # 17 is in the same tenth as 16
        "  calibrating: 79/80 samples, 17.8/s, under 1 s left",
        "  calibrating: 80/80 samples, 14.4/s",
    ]


def test_counter_without_a_total_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Counter("calibrating", tty=False, clock=_clock([1.0, 3.0]))
    bar(10)
    bar(20)
    assert capsys.readouterr().err == "  calibrating: 10/? samples\n  calibrating: 20/? samples, 5/s\n"


def test_counter_on_a_terminal_rewrites_one_line_and_ends_it(capsys: pytest.CaptureFixture[str]) -> None:
    bar = Counter("calibrating", tty=True, clock=_clock([1.0, 2.0]))
    bar(5, 10)
    bar(10, 10)
    bar.end()  # already ended at the total: no second newline
    err = capsys.readouterr().err
    assert err == "\r  calibrating: 5/10 samples\r  calibrating: 10/10 samples, 5/s\n"


@click.command()
@click.option("-q", "--quiet", is_flag=True)
def _stage_command(quiet: bool) -> None:
    show_notes(quiet)
    log = logging.getLogger("mmexport.stage")
    log.info("exporting")
    with nested():
        log.info("part 'image'")
    if not quiet:
        Counter("calibrating", tty=True, clock=_clock([1.0]))(1, 4)
    log.info("evaluating")  # ends the counter's line first
    log.warning("not a note")
    logging.getLogger("other").info("not ours")


def test_notes_print_indented_under_the_command_and_nothing_with_quiet() -> None:
    shown = CliRunner().invoke(_stage_command, [])
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == (
        "  exporting\n    part 'image'\n\r  calibrating: 1/4 samples\n  evaluating\n"
    )  # neither the warning (a log line) nor another library's record is a note
    quiet = CliRunner().invoke(_stage_command, ["-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    logger = logging.getLogger("mmexport")
    assert logger.handlers == [] or all(type(h).__name__ != "NotePrinter" for h in logger.handlers)


def test_counter_phases_start_a_line_of_their_own_with_a_fresh_rate(
    capsys: pytest.CaptureFixture[str],
) -> None:
    bar = Counter("scanning", tty=False, clock=_clock([1.0, 2.0, 10.0, 11.0]))
    bar(4, 8)
    bar(8, 8)
    bar.phase("checking")
    bar(4, 8)
    bar(8, 8)
    assert capsys.readouterr().err.splitlines() == [
        "  scanning: 4/8 samples",
        "  scanning: 8/8 samples, 4/s",
        "  checking: 4/8 samples",  # the rate does not count the time between the phases
        "  checking: 8/8 samples, 4/s",
    ]
