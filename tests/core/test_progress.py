"""One progress type for counts, notes nested by context."""

from __future__ import annotations

import threading

from mmexport.core.progress import Progress, depth, nested, no_progress


def test_nested_notes_are_one_level_deeper_and_restored_on_errors() -> None:
    assert depth() == 0
    with nested():
        assert depth() == 1
        with nested():
            assert depth() == 2
        try:
            with nested():
                raise ValueError
        except ValueError:
            pass
        assert depth() == 1
    assert depth() == 0


def test_another_thread_starts_at_the_top() -> None:
    seen: list[int] = []
    with nested():
        thread = threading.Thread(target=lambda: seen.append(depth()))
        thread.start()
        thread.join()
    assert seen == [0]


def test_no_progress_is_a_progress_that_takes_a_total_or_not() -> None:
    calls: list[tuple[int, int | None]] = []

    def record(done: int, total: int | None = None) -> None:
        calls.append((done, total))

    for progress in (no_progress, record):
        checked: Progress = progress  # both satisfy the one signature
        checked(3)
        checked(4, 10)
    assert calls == [(3, None), (4, 10)]
