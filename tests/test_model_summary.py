"""The student's model summary: made in stage 2 from model.keras, checked by the host, shown."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest

from deepgrade.checks.snapshots import MAX_SUMMARY_ROWS, decode_snapshot, encode_snapshot
from deepgrade.feedback import render_page


def line(summary: object) -> bytes:
    data = json.loads(encode_snapshot([], [], error=None, complete=True))
    data["summary"] = summary
    return json.dumps(data).encode() + b"\n"


def test_a_summary_goes_through_the_channel() -> None:
    rows = [("conv2d", "Conv2D", "(None, 64, 64, 8)", 224), ("dense", "Dense", "(None, 6)", 390)]
    snapshot = decode_snapshot(encode_snapshot([], [], error=None, complete=True, summary=rows))
    assert snapshot.summary == tuple(rows)


@pytest.mark.parametrize(
    "summary",
    [
        "conv2d",
        [["conv2d", "Conv2D", "(None, 6)"]],
        [["conv2d", "Conv2D", "(None, 6)", -1]],
        [["conv2d", "Conv2D", "(None, 6)", 1.5]],
        [["conv2d", "Conv2D", "(None, 6)", True]],
        [["x" * 81, "Conv2D", "(None, 6)", 1]],
        [["conv2d", "Conv2D", "(None, 6)", 1]] * (MAX_SUMMARY_ROWS + 1),
    ],
)
def test_a_malformed_summary_is_refused(summary: object) -> None:
    with pytest.raises(ValueError, match="summary"):
        decode_snapshot(line(summary))


def test_summary_rows_of_a_keras_model() -> None:
    keras = pytest.importorskip("keras")
    from deepgrade.checks.plugin import summary_rows

    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, name="c"), keras.layers.Flatten(),
         keras.layers.Dense(2, name="out")]
    )  # fmt: skip
    rows = summary_rows(model)
    assert [r[1] for r in rows] == ["Conv2D", "Flatten", "Dense"]
    assert rows[0] == ("c", "Conv2D", "(None, 6, 6, 4)", 40)
    assert sum(r[3] for r in rows) == model.count_params()


def test_the_page_shows_the_model_and_its_total() -> None:
    from test_feedback import WHEN, graded, text_of

    rows = (("c", "Conv2D", "(None, 6, 6, 4)", 40), ("out", "Dense", "(None, 2)", 1234))
    page = text_of(render_page(dataclasses.replace(graded(), model_summary=rows), WHEN, "T"))
    assert "c Conv2D (None, 6, 6, 4) 40" in page and "total 1,274" in page


def test_a_confusion_matrix_goes_through_the_channel() -> None:
    confusion = (("cat", "dog"), ((40, 10), (5, 45)))
    snapshot = decode_snapshot(
        encode_snapshot([], [], error=None, complete=True, confusion=confusion)
    )
    assert snapshot.confusion == confusion


@pytest.mark.parametrize(
    "confusion",
    [
        {"labels": ["cat"], "matrix": [[1]]},
        {"labels": ["cat", "dog"], "matrix": [[1, 2]]},
        {"labels": ["cat", "dog"], "matrix": [[1, 2], [3]]},
        {"labels": ["cat", "dog"], "matrix": [[1, -2], [3, 4]]},
        {"labels": ["cat", "dog"], "matrix": [[1, 2.5], [3, 4]]},
        {"labels": ["cat", 7], "matrix": [[1, 2], [3, 4]]},
        [[1, 2], [3, 4]],
    ],
)
def test_a_malformed_confusion_is_refused(confusion: object) -> None:
    data = json.loads(encode_snapshot([], [], error=None, complete=True))
    data["confusion"] = confusion
    with pytest.raises(ValueError, match="confusion"):
        decode_snapshot(json.dumps(data).encode() + b"\n")


def test_the_page_shows_the_confusion_matrix_as_a_shaded_table() -> None:
    from test_feedback import WHEN, graded

    result = dataclasses.replace(graded(), confusion=(("cat", "dog"), ((40, 10), (5, 45))))
    page = render_page(result, WHEN, "T")
    start = page.index('<table id="confusion"')
    table = page[start : page.index("</table>", start)]
    assert '<th scope="col">cat</th><th scope="col">dog</th>' in table
    cell = r'<td style="background: rgba\(33, 102, 172, ([0-9.]+)\)[^"]*">(\d+)</td>'
    cells = re.findall(cell, table)
    assert cells == [("0.889", "40"), ("0.222", "10"), ("0.111", "5"), ("1.0", "45")]
    assert table.count("color: #fff") == 2  # white text on the two dark cells
    stored = type(result).from_json(json.loads(json.dumps(result.to_json())))
    assert stored.confusion == result.confusion  # through the gradebook's JSON and back
