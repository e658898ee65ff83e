"""report.md, generated from the metrics files: every number in it comes from a run.

The report is a list of sections (:data:`SECTIONS`), one function each, taking the
:class:`~sampleval.reporting.report_inputs.ReportInputs` and returning its lines. The
sections live by topic: the run itself (:mod:`.sections_run`), retraining on subsets
(:mod:`.sections_subsets`) and wrong labels (:mod:`.sections_labels`). To add a section,
write a function and insert it in :data:`SECTIONS`; a section whose metrics are absent
returns ``[]``. A section's figures are linked under it
(:data:`~sampleval.reporting.report_inputs.FIGURES`, when the PNG exists).

:func:`sampleval.reporting.headline.headline` condenses the run into about ten numbers
(``metrics/headline.json``), and the report's first line says them in words.
:func:`render_html` turns the same Markdown into one self-contained HTML file (figures
embedded as data URIs).
"""
from __future__ import annotations

import base64
import html
import re
from pathlib import Path

from sampleval.reporting.report_inputs import ReportInputs, figure_lines
from sampleval.reporting.sections_labels import section_corrections, section_detection, section_refine, section_score_shapes
from sampleval.reporting.sections_run import section_baseline, section_fidelity, section_header, section_influence
from sampleval.reporting.sections_subsets import section_answer, section_composition, section_subsets


SECTIONS = [
    section_header,
    section_corrections,  # the suspects table's top rows and the corrections' before/after: what a reader acts on first
    section_baseline,
    section_influence,
    section_fidelity,
    section_subsets,
    section_composition,
    section_answer,
    section_detection,
    section_refine,
    section_score_shapes,
]


def render_report(inputs: ReportInputs, sections=None) -> str:
    lines: list[str] = []
    for section in sections or SECTIONS:
        body = section(inputs)
        lines += body + (figure_lines(inputs, section.__name__) if body else [])
    return "\n".join(lines)


_IMG = re.compile(r'<img src="([^"]+\.png)"')


def render_html(markdown_text: str, root: str | Path = ".") -> str:
    """One self-contained HTML page from the report's Markdown: the same sections, each
    figure embedded as a data URI (read from ``root``), no server or network needed."""
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown_text)

    def embed(m: re.Match) -> str:
        path = Path(root) / html.unescape(m.group(1))
        if not path.is_file():
            return m.group(0)
        return f'<img src="data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()}"'

    body = _IMG.sub(embed, body)
    style = ("body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
             "table{border-collapse:collapse;font-size:.85rem;margin:1rem 0}td,th{border:1px solid #ccc;padding:.2rem .4rem}"
             "th{background:#f3f3f3}img{max-width:100%;display:block;margin:.5rem 0}code{background:#f3f3f3;padding:0 .2rem}")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sample valuation report</title>"
            f"<style>{style}</style></head><body>\n{body}</body></html>\n")
