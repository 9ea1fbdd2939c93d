"""An English report's chart whose text has no glyph in matplotlib's font (a Chinese farm id
or region) is SVG with the text kept as text, not a PNG with boxes."""

from __future__ import annotations

import base64
import warnings

import pytest
from matplotlib.figure import Figure

from agrisat.report.cards import figure_data_uri


def _figure(title: str) -> Figure:
    fig = Figure(figsize=(3, 2))
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1])
    ax.set_title(title)
    return fig


@pytest.mark.parametrize("title", ["F0001 · Zhucheng – NDVI ≥ 0.5", "Ферма F1", "Café"])
def test_english_chart_with_drawable_text_is_png(title: str) -> None:
    assert figure_data_uri(_figure(title), "en").startswith("data:image/png;base64,")


def test_english_chart_with_chinese_text_is_svg_with_the_text() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Glyph ... missing from font" on the way
        uri = figure_data_uri(_figure("农场 F0250 · 诸城"), "en")
    head, _, data = uri.partition(",")
    assert head == "data:image/svg+xml;base64"
    svg = base64.b64decode(data).decode("utf-8")
    assert "农场 F0250 · 诸城" in svg  # a <text> element, drawn by the reader's fonts
