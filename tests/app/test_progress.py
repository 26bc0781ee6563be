"""Progress of `run --once` and `publish`: the text (hand-computed) and when it is
written; the rows a catch-up has to read, from checkpoints and Delta logs."""

from __future__ import annotations

import io
import json

import pyarrow as pa
import pytest

from meterlake.app import catchup
from meterlake.app.catchup import LakeFiles, delta_rows_from, kafka_waiting, source_offset
from meterlake.core.location import Location, ObjectPath
from meterlake.core.progress import Progress, bar, bar_line, duration, eta, rate, status_line
from meterlake.core.sparkinternals import delta_first_unread
from meterlake.core.storage import filesystem


def test_rate_is_items_per_second_so_far() -> None:
    assert rate(300, 30.0) == 10.0
    assert rate(5, 0.0) is None


def test_eta_is_what_is_left_at_the_rate_so_far() -> None:
    assert eta(300, 1000, 30.0) == 70.0  # 700 left at 10/s
    assert eta(10, 1000, 1.0) == 99.0  # 1% done: 990 left at 10/s
    assert eta(1000, 1000, 50.0) == 0.0


@pytest.mark.parametrize(
    ("done", "total", "seconds"),
    [(5, 1000, 1.0), (0, 1000, 10.0), (300, None, 30.0), (300, 1000, 0.0)],
)
def test_no_eta_before_one_percent_or_without_a_total_or_a_rate(done, total, seconds) -> None:
    assert eta(done, total, seconds) is None


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(7.4, "7 s"), (59.6, "1 min 00 s"), (65, "1 min 05 s"), (2 * 3600 + 180, "2 h 03 min")],
)
def test_durations_read_as_people_say_them(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_the_plain_line_gives_done_of_total_rate_and_eta() -> None:
    line = status_line("bronze", 300, 1000, 30.0, "rows")
    assert line == "bronze: 300 of 1,000 rows (30%), 10 rows/s, ETA 1 min 10 s"
    assert status_line("gold", 2500, None, 10.0, "rows") == "gold: 2,500 rows, 250 rows/s"
    assert status_line("silver", 0, 10, 0.0, "rows") == "silver: 0 of 10 rows (0%), - rows/s, ETA -"


def test_the_bar_fills_its_share_of_the_width() -> None:
    assert bar(0.35, 20) == "[" + "#" * 7 + "." * 13 + "]"
    assert bar(1.5, 4) == "[####]" and bar(-1, 4) == "[....]"


def test_the_terminal_line_has_the_bar_and_fits_the_terminal() -> None:
    line = bar_line("bronze", 300, 1000, 30.0, "rows", columns=80)
    assert line == "bronze [######..............]  30%  300/1,000 rows  10/s  ETA 1 min 10 s"
    # 60 columns leave no room for a bar of 5: the numbers alone
    narrow = bar_line("bronze", 300, 1000, 30.0, "rows", columns=60)
    assert narrow == "bronze  30%  300/1,000 rows  10/s  ETA 1 min 10 s"
    assert len(bar_line("bronze", 300, 1000, 30.0, "rows", columns=30)) == 29


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_a_plain_line_every_interval() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress({"bronze": 1000}, "rows", stream=out, tty=False, every_s=10,
                        clock=clock)
    for now, done in [(5, 100), (10, 300), (15, 400), (19.9, 500), (20, 600)]:
        clock.now = now
        progress.update("bronze", done)
    progress.close()
    assert out.getvalue().splitlines() == [
        "bronze: 300 of 1,000 rows (30%), 30 rows/s, ETA 23 s",
        "bronze: 600 of 1,000 rows (60%), 30 rows/s, ETA 13 s",
    ]


def test_layers_side_by_side_get_a_line_each_and_a_finished_one_keeps_its_figures() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress({"bronze": 1000, "silver": None}, "rows", stream=out, tty=False,
                        every_s=10, clock=clock)
    clock.now = 10
    progress.update("silver", 500)  # bronze has read nothing yet
    clock.now = 20
    progress.update("bronze", 1000, final=True)  # bronze ended after 20 s
    clock.now = 30
    progress.update("bronze", 5)  # ended: ignored
    progress.update("silver", 1500)
    assert out.getvalue().splitlines() == [
        "bronze: 0 of 1,000 rows (0%), 0 rows/s, ETA -",
        "silver: 500 rows, 50 rows/s",
        "bronze: 1,000 of 1,000 rows (100%), 50 rows/s, ETA 0 s",
        "silver: 500 rows, 25 rows/s",
        "bronze: 1,000 of 1,000 rows (100%), 50 rows/s, ETA 0 s",
        "silver: 1,500 rows, 50 rows/s",
    ]


def test_off_a_terminal_the_last_figures_show_once_every_layer_ended_however_soon() -> None:
    clock, out = Clock(), io.StringIO()
    progress = Progress({"gold": 282, "silver": 190}, "rows", stream=out, tty=False,
                        every_s=10, clock=clock)
    clock.now = 0.5
    progress.update("gold", 282, final=True)  # silver still running: not yet
    clock.now = 0.9
    progress.update("silver", 190, final=True)
    assert out.getvalue().splitlines() == [
        "gold: 282 of 282 rows (100%), 564 rows/s, ETA 0 s",
        "silver: 190 of 190 rows (100%), 211 rows/s, ETA 0 s",
    ]


def test_on_a_terminal_the_bar_redraws_in_place_and_is_erased_at_the_end(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    clock, out = Clock(), io.StringIO()
    progress = Progress({"bronze": 1000}, "rows", stream=out, tty=True, clock=clock)
    clock.now = 30.0
    progress.update("bronze", 300)
    clock.now = 30.1  # sooner than REDRAW_S: not drawn again
    progress.update("bronze", 310)
    progress.write("a message", out)
    progress.close()
    line = bar_line("bronze", 300, 1000, 30.0, "rows", 80)
    again = bar_line("bronze", 310, 1000, 30.1, "rows", 80)
    assert out.getvalue() == (
        f"\r{line}\x1b[K" "\r\x1b[J" "a message\n" f"\r{again}\x1b[K" "\r\x1b[J"
    )


def test_on_a_terminal_two_bars_redraw_over_themselves(monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    clock, out = Clock(), io.StringIO()
    progress = Progress({"bronze": 10, "silver": 10}, "rows", stream=out, tty=True,
                        clock=clock)
    clock.now = 1.0
    progress.update("bronze", 5)
    clock.now = 2.0
    progress.update("silver", 4)
    progress.close()
    first = [bar_line("bronze", 5, 10, 1.0, "rows"), bar_line("silver", 0, 10, 1.0, "rows")]
    second = [bar_line("bronze", 5, 10, 2.0, "rows"), bar_line("silver", 4, 10, 2.0, "rows")]
    assert out.getvalue() == (
        "\r" + "\x1b[K\n".join(first) + "\x1b[K"  # drawn, the cursor on the last line
        + "\r\x1b[1A" + "\x1b[K\n".join(second) + "\x1b[K"  # up one line, drawn again
        + "\r\x1b[1A\x1b[J"  # erased
    )


# --------------------------------------------------------------------------- totals


def test_kafka_waiting_counts_from_where_bronze_got_to_or_the_oldest_offset() -> None:
    reached = {0: 100, 1: 50}
    oldest = {0: 0, 1: 60, 2: 10}  # partition 1: retention removed 50..59; 2: never read
    end = {0: 150, 1: 80, 2: 30}
    assert kafka_waiting(reached, oldest, end) == 50 + 20 + 20


def test_a_delta_source_offset_names_the_first_version_not_read_in_full() -> None:
    offset = {"sourceVersion": 1, "reservoirId": "x", "isStartingVersion": False}
    assert delta_first_unread(json.dumps({**offset, "reservoirVersion": 3, "index": -1})) == 3
    assert delta_first_unread(json.dumps({**offset, "reservoirVersion": 3, "index": 4})) == 4


def write_log(folder: Location, name: str, lines: list[str], storage=None) -> None:
    """A log file, in a local folder or (with the store's settings) on the store."""
    text = "\n".join(lines) + "\n"
    if isinstance(folder, ObjectPath):
        where = folder / name
        with filesystem(storage).open_output_stream(f"{where.bucket}/{where.key}") as out:
            out.write(text.encode())
        return
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_rows_of_a_table_from_a_version_on(tmp_path) -> None:
    """Created, two appends, an OPTIMIZE (no data change), an append: delta-rs reads the
    table where it is (on the store too: tests/e2e, tests/reliability/test_objectstore)."""
    from deltalake import DeltaTable, write_deltalake

    where = tmp_path / "bronze"
    table = str(where)
    rows = pa.table({"n": pa.array([], pa.int64())})
    write_deltalake(table, rows)
    for count in (100, 50):
        write_deltalake(table, pa.table({"n": list(range(count))}), mode="append")
    DeltaTable(table).optimize.compact()
    write_deltalake(table, pa.table({"n": list(range(7))}), mode="append")
    assert delta_rows_from(where, 0) == 157
    assert delta_rows_from(where, 3) == 7
    assert delta_rows_from(where, 5) == 0


def test_the_source_offset_is_the_last_finished_batchs_end(base_config, lake_at) -> None:
    storage = base_config.storage
    checkpoint, files = lake_at("silver"), LakeFiles(storage)
    assert source_offset(checkpoint, files) is None  # new checkpoint
    meta = json.dumps({"batchWatermarkMs": 0})
    write_log(checkpoint / "offsets", "0", ["v1", meta, '{"reservoirVersion":2,"index":-1}'],
              storage)
    write_log(checkpoint / "offsets", "1", ["v1", meta, '{"reservoirVersion":5,"index":-1}'],
              storage)
    assert source_offset(checkpoint, files) is None  # batch 0 planned, never finished
    write_log(checkpoint / "commits", "0", ["v1", "{}"], storage)
    # batch 1 was planned but not finished: it runs again from batch 0's end
    assert source_offset(checkpoint, files) == '{"reservoirVersion":2,"index":-1}'


class Finished:
    """A query with its finished micro-batches' input rows."""

    def __init__(self) -> None:
        self.recentProgress: list[dict] = []


def test_a_running_batch_counts_as_far_as_its_biggest_stage_got() -> None:
    query = Finished()
    count = catchup.LayerCount(query, total=1000)
    assert count(5) == 0  # 5 rows: a Delta log's actions, under 1% of the total
    assert count(400) == 400  # the most records one running stage of the layer has read
    assert count(300) == 400  # that stage ended; a smaller one runs: still 400
    query.recentProgress.append({"numInputRows": 600})  # the batch finished
    assert count(0) == 600
    assert count(20) == 620  # the next batch's first stage


def test_a_finished_bar_says_eta_0_s() -> None:
    line = bar_line("bronze", 1000, 1000, 20.0, "rows")
    assert line.endswith("100%  1,000/1,000 rows  50/s  ETA 0 s")
