"""The run log a student sees: time per cell and the first error, never the grader's cells."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import nbformat

from deepgrade import redact
from deepgrade.charts import learning_curves
from deepgrade.feedback import render_page
from deepgrade.runlog import read_run_log


def executed(tmp_path: Path, *, failing: int | None) -> Path:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("EPOCHS = 2")
    params.metadata["tags"] = ["injected-parameters"]
    cells = [params]
    for number in range(1, 5):  # cells 1-3 the student's, 4 the grader's grade-time cell
        cell = nbformat.v4.new_code_cell(f"x{number} = {number}")
        cell.metadata["papermill"] = {"duration": number * 1.5}
        if number == failing or number == 4:
            cell.outputs = [
                nbformat.v4.new_output(
                    "error",
                    ename="ValueError",
                    evalue="bad shape",
                    traceback=[
                        "\x1b[0;31m-----\x1b[0m",
                        f"Cell In[{number}], line 1\n----> 1 model.fit(X, Y)",
                        "\x1b[0;31mValueError\x1b[0m: bad shape" if number != 4 else "_dg_secret",
                    ],
                )
            ]
        cells.append(cell)
    nb.cells = cells
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    return path


def test_times_and_the_first_error_of_the_students_cells(tmp_path: Path) -> None:
    log = read_run_log(executed(tmp_path, failing=2), gradetime_count=1, failed_cell=2)
    assert log.cell_seconds == ((1, 1.5), (2, 3.0), (3, 4.5))  # not the grader's cell 4
    assert "ValueError: bad shape" in log.traceback and "model.fit(X, Y)" in log.traceback
    assert "\x1b" not in log.traceback


def test_a_grader_cells_error_is_never_shown(tmp_path: Path) -> None:
    log = read_run_log(executed(tmp_path, failing=None), gradetime_count=1, failed_cell=4)
    assert log.traceback == ""


def test_a_broken_or_missing_notebook_gives_an_empty_log(tmp_path: Path) -> None:
    broken = tmp_path / "executed.ipynb"
    broken.write_text("{not json")
    assert read_run_log(broken, 1, 1) == read_run_log(None, 1, 1)
    assert read_run_log(tmp_path / "none.ipynb", 1, None).cell_seconds == ()
    odd = tmp_path / "odd.ipynb"
    odd.write_text(
        '{"cells": [{"cell_type": "code", "metadata": {"papermill": {"duration": "NaN"}}}]}'
    )
    assert read_run_log(odd, 0, None).cell_seconds == ()


def test_the_page_shows_the_traceback_and_the_slowest_cells(tmp_path: Path) -> None:
    from test_feedback import WHEN, graded

    log = read_run_log(executed(tmp_path, failing=2), gradetime_count=1, failed_cell=2)
    result = dataclasses.replace(graded(), cell_seconds=log.cell_seconds, traceback=log.traceback)
    page = render_page(result, WHEN, "T")
    assert 'id="traceback"' in page and "ValueError: bad shape" in page
    assert page.index("cell 3") < page.index("cell 1")  # slowest first


def test_a_traceback_quoting_a_hidden_value_is_withheld() -> None:
    from test_feedback import graded

    secrets = redact.secrets_of({"pad_seed": 4721}, [])
    result = dataclasses.replace(graded(), traceback="seed = 4721\nValueError")
    assert redact.withhold(result, secrets).traceback == redact.WITHHELD


def test_a_tracebacks_indentation_survives_the_cleaning() -> None:
    from test_feedback import graded

    text = "Cell In[15], line 3\n      1 x = 1\n----> 3 fit(\x1b[0;31mX\x1b[0m)\u202e"
    shown = redact.withhold(dataclasses.replace(graded(), traceback=text), None).traceback
    assert shown == "Cell In[15], line 3\n      1 x = 1\n----> 3 fit(X)"


def test_histories_keep_only_what_a_chart_needs(tmp_path: Path) -> None:
    import json

    from deepgrade.runlog import read_histories

    good = {"loss": [1.0, 0.5], "val_loss": [1.1, 0.7], "accuracy": [0.5, 0.8]}
    (tmp_path / "history.json").write_text(json.dumps(good))
    (tmp_path / "history_fine.json").write_text(
        '{"loss": [1, NaN], "<b>x</b>": [1.0], "accuracy": [true, 0.5], "ok": [0.25]}'
    )
    (tmp_path / "history_bad.json").write_text("[1, 2")
    (tmp_path / "answers.json").write_text('{"loss": [1.0]}')  # not a history
    (tmp_path / "history_big.json").write_text('{"loss": [' + "1.0," * 300_000 + "1.0]}")
    (tmp_path / "history_link.json").symlink_to(tmp_path / "history.json")
    names = sorted(p.name for p in tmp_path.iterdir())
    found = read_histories(tmp_path, names)
    assert found == {"history.json": good, "history_fine.json": {"ok": [0.25]}}


def test_the_page_draws_the_learning_curves() -> None:
    from test_feedback import WHEN, graded

    result = dataclasses.replace(
        graded(), histories={"history.json": {"loss": [1.0, 0.5], "val_loss": [1.2, 0.9]}}
    )
    page = render_page(result, WHEN, "T")
    assert page.count('<figure class="curves">') == 1 and page.count('<svg class="curve"') == 1
    assert page.count("<polyline") == 2 and page.count("<circle") == 4  # a dot per epoch
    assert "loss by epoch over 2 epoch(s); at the last epoch: training 0.5; validation 0.9" in page
    # epoch 1 at the left edge, the highest value (1.2) at the top, the lowest (0.5) at the bottom
    assert 'points="48,67.7 290,172"' in page and 'points="48,26 290,88.6"' in page


def test_learning_curves_lay_out_any_history() -> None:
    panels = learning_curves(
        {"accuracy": [0.5] * 3, "loss": [2.0, 1.0], "val_loss": [3.0], "a<b": list(range(100))}
    )
    assert [panel.metric for panel in panels] == ["loss", "a<b", "accuracy"]  # loss first
    flat = panels[2].series[0].points.split()
    assert len({point.split(",")[1] for point in flat}) == 1  # a flat line, not a division by 0
    assert panels[1].series[0].dots == ()  # 100 epochs: a line without a dot per epoch
    assert [label for _, label in panels[1].x_ticks] == ["1", "50", "100"]
    from test_feedback import WHEN, graded

    result = dataclasses.replace(graded(), histories={"h.json": {"a<b": [1.0, 2.0]}})
    page = render_page(result, WHEN, "T")
    assert "a&lt;b" in page and "a<b" not in page
