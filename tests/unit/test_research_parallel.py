"""The serial executor of research pieces: order, labelled errors, progress, the notice
without dask (services/research/parallel.py; the Dask path: tests/integration/
test_research_dask.py)."""

from __future__ import annotations

import sys

import pytest

from stagectl.errors import EXIT_INTERNAL, EXIT_USAGE, InputError, InternalError
from stagectl.services.research.parallel import (
    INSTALL_HINT,
    Parallelism,
    Piece,
    SerialExecutor,
    open_executor,
)


def _scaled(factor: int, value: int) -> int:
    if value < 0:
        raise InputError("must not be negative", where="value")
    if value == 0:
        raise ZeroDivisionError("division by zero")
    return factor * value


def _pieces(*values: int) -> list[Piece[int]]:
    return [Piece(f"piece {v}", v) for v in values]


def test_serial_executor_returns_each_pieces_result_in_order() -> None:
    assert SerialExecutor().map(_scaled, 3, _pieces(1, 5, 2), what="x") == [3, 15, 6]


def test_a_failing_piece_keeps_its_error_class_and_names_the_piece() -> None:
    with pytest.raises(InputError) as caught:
        SerialExecutor().map(_scaled, 3, _pieces(1, -4), what="x")
    assert caught.value.exit_code == EXIT_USAGE
    assert str(caught.value) == "piece -4: value: must not be negative"


def test_an_unexpected_error_in_a_piece_is_an_internal_error_naming_the_piece() -> None:
    with pytest.raises(InternalError) as caught:
        SerialExecutor().map(_scaled, 3, _pieces(0), what="x")
    assert caught.value.exit_code == EXIT_INTERNAL
    assert str(caught.value) == "piece 0: ZeroDivisionError: division by zero"
    assert "ZeroDivisionError" in str(caught.value.__cause__)


def test_progress_counts_done_over_total_and_ends_with_the_total() -> None:
    lines: list[str] = []
    SerialExecutor(lines.append).map(_scaled, 1, _pieces(*range(1, 31)), what="cells")
    assert lines[-1] == "cells: 30/30 done"
    assert 10 <= len(lines) <= 12
    done = [int(line.split()[1].split("/")[0]) for line in lines]
    assert done == sorted(done)


def test_one_worker_runs_serially_without_a_notice() -> None:
    lines: list[str] = []
    with open_executor(Parallelism(workers=1), lines.append) as executor:
        assert isinstance(executor, SerialExecutor)
    assert lines == []


def test_workers_without_dask_run_serially_and_say_how_to_enable_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    lines: list[str] = []
    with open_executor(Parallelism(workers=2), lines.append) as executor:
        assert executor.map(_scaled, 2, _pieces(4), what="x") == [8]
    assert len(lines) == 2
    assert lines[0].startswith("dask is not installed: running serially; ")
    assert INSTALL_HINT in lines[0]


@pytest.mark.parametrize("address", ["127.0.0.1:8786", "http://host:8786", "tcp://host"])
def test_a_scheduler_address_without_scheme_or_port_is_refused(address: str) -> None:
    pytest.importorskip("distributed")
    with (
        pytest.raises(InputError, match="expected tcp://HOST:PORT"),
        open_executor(Parallelism(scheduler=address)),
    ):
        pass
