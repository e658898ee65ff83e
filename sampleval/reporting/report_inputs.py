"""What the report is drawn from (:class:`ReportInputs`), the figures it links per section
(:data:`FIGURES`) and the number formats every section shares."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sampleval.config import Params


def _fmt(x, digits: int = 4) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float):
        if x != x:
            return "n/a"
        return f"{x:.{digits}g}" if abs(x) < 1e-3 and x != 0 else f"{x:.{digits}f}"
    return str(x)


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


@dataclass
class ReportInputs:
    train: dict
    influence: dict
    stats: dict
    params: Params | None  # the run's params (sampleval.config.Params); None: sections that do not quote them
    fidelity: dict | None = None
    cells: dict = field(default_factory=dict)  # CellKey -> cell record (sampleval.experiments.subset_cells.load_cells)
    extra: dict = field(default_factory=dict)  # other sections' metrics, by name
    figures: frozenset = frozenset()  # the PNGs that exist (paths relative to the report), linked under their section


# Each section's figures (relative to report.md), linked under the section when the PNG exists.
FIGURES = {
    "section_baseline": {"plots/train_curve.png": "Training curve (loss per epoch; the selected epoch marked)"},
    "section_influence": {"plots/influence_hist.png": "Distribution of the first ranking's scores",
                          "plots/sorted_scores.png": "Sorted scores (S-shape)",
                          "plots/detection.png": "Flipped labels found against samples inspected, per ranking",
                          "plots/explanations.png": "Misclassified test samples and their most helpful and harmful training samples"},
    "section_fidelity": {"plots/fidelity.png": "Predicted influence against actual retraining"},
    "section_subsets": {"plots/subsets.png": "Test metric per subset cell against the random control"},
    "section_composition": {"plots/composition.png": "Class composition of the removed / selected sets"},
    "section_detection": {"plots/detection/curves.png": "Detection curves per noise setting",
                          "plots/detection/thresholds.png": "Detection at score thresholds"},
    "section_refine": {"plots/refine.png": "Refinement rounds against random removal"},
    "section_corrections": {"plots/suspects.png": "The top suspects with their given and suggested labels"},
    "section_score_shapes": {"plots/score_shapes_sorted.png": "Sorted-score shapes over the sweep",
                             "plots/score_shapes_threshold.png": "Test accuracy against flip ratio"},
}


def figure_lines(inp: ReportInputs, section_name: str) -> list[str]:
    """Markdown image links (relative paths) to the section's figures that exist."""
    lines = [f"![{alt}]({path})" for path, alt in FIGURES.get(section_name, {}).items() if path in inp.figures]
    return lines + [""] if lines else []
