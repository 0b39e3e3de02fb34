"""The lesion-size trend chart, as SVG drawn on the server with pygal (pinned in requirements.txt).

pygal is kept up to date on PyPI and draws plain SVG with no browser; the same function serves the
PDF (WeasyPrint draws SVG) and any page. It is configured to reference nothing outside the file:
no JavaScript (pygal's tooltips load a script from a CDN by default) and no external stylesheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import pygal
from pygal.style import Style

# Colour-blind-safe (Okabe-Ito), dark enough on white for print.
SERIES_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

STYLE = Style(
    background="white",
    plot_background="white",
    foreground="#222222",
    foreground_strong="#000000",
    foreground_subtle="#777777",
    colors=SERIES_COLOURS,
    font_family="DejaVu Sans, sans-serif",
    label_font_size=11,
    major_label_font_size=11,
    legend_font_size=11,
    title_font_size=13,
)


@dataclass(frozen=True)
class Series:
    """One lesion: its label and a value per x label (None where it was not measured)."""

    label: str
    values: list[float | None]


def lesion_trend_svg(
    *,
    title: str,
    y_title: str,
    x_labels: list[str],
    series: list[Series],
    show_legend: bool = True,
    show_dots: bool = True,
) -> str:
    """An SVG line chart, one line per lesion. Text from the data is escaped by pygal (lxml-free
    ElementTree serialisation), so a lesion label cannot inject markup. Without dots, a chart of
    many lines is a third of the size (each dot carries its own label and value)."""
    chart = pygal.Line(
        style=STYLE,
        width=720,
        height=300,
        title=title,
        y_title=y_title,
        x_labels=x_labels,
        show_legend=show_legend,
        legend_at_bottom=True,
        legend_at_bottom_columns=min(len(series), 6) or 1,
        dots_size=3,
        show_dots=show_dots,
        allow_interruptions=True,
        include_x_axis=True,
        js=[],
        disable_xml_declaration=True,
        no_data_text="No measurements",
    )
    for item in series:
        chart.add(item.label, item.values)
    return chart.render(is_unicode=True)
