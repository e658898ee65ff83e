"""The report's fidelity table, from the metrics dict of :func:`sampleval.experiments.fidelity.evaluate`
(``metrics/fidelity.json``). Kept apart from :mod:`sampleval.experiments.fidelity` so that the report
renders it without importing torch."""
from __future__ import annotations

import math


def _finite(x) -> bool:
    """A real, finite number (metrics JSON writes NaN as null)."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _f(x, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and not math.isfinite(x)) else f"{x:.{digits}f}"


def _with_ci(e: dict, key: str) -> str:
    return f"{_f(e.get(key))} [{_f(e.get(key + '_lo'))}, {_f(e.get(key + '_hi'))}]"


def render_table(fid: dict) -> str:
    """The report's fidelity section body (markdown): what was retrained, the training
    noise, and one row per estimator (and TracIn checkpoint variant) with the leave-one-out
    Pearson and Spearman and the LDS, each with its bootstrap 95 % CI, plus the convex control."""
    seeds = fid.get("seeds", [])
    lines = [
        f"Leave-one-out retraining of {fid['n_points']} fixed random training points with {len(seeds)} seeds {seeds} "
        f"(paired by seed: actual = loss without the point - loss with it, same seed, averaged), and the linear "
        f"datamodeling score (LDS) over {fid['n_subsets']} random {fid.get('subset_fraction', 0.5):.0%} subsets "
        f"({len(fid.get('subset_seeds', [0]))} seed(s) each). Every retraining is scored at epoch {fid.get('epoch', 'n/a')} "
        f"(the baseline's selected epoch; no reselection). Brackets: {fid.get('ci_level', 0.95):.0%} percentile bootstrap CIs "
        f"over points (leave-one-out) or subsets (LDS), {fid.get('n_bootstrap', 'n/a')} resamples.",
        "",
    ]
    for part, what in (("loo", "leave-one-out effects of the points"), ("lds", "losses of the subsets")):
        noise = fid.get("noise", {}).get(part, {})
        if _finite(noise.get("seed_agreement")):
            lines += [
                f"Training noise ({'leave-one-out' if part == 'loo' else 'LDS'}): the {what} under two retraining seeds correlate at "
                f"Pearson {_f(noise['seed_agreement'])}, Spearman {_f(noise.get('seed_agreement_spearman'))} (1 = one seed reproduces "
                f"another); the mean over {noise['n_seeds']} seeds has Spearman-Brown reliability {_f(noise['reliability'])}.",
                "",
            ]
    rows = [(name, e) for name, e in fid.get("network", {}).items()]
    rows += [(f"tracin, checkpoints {v}", e) for v, e in fid.get("tracin_checkpoints", {}).items() if isinstance(e, dict)]
    lines += ["| estimator | leave-one-out Pearson | leave-one-out Spearman | minus best | LDS | minus best |", "|---|---|---|---|---|---|"]

    def vs(e: dict, key: str) -> str:
        return f"[{_f(e.get(key + '_vs_best_lo'))}, {_f(e.get(key + '_vs_best_hi'))}]" if key + "_vs_best_lo" in e else "n/a"

    for name, e in rows:
        lines.append(f"| {name} | {_with_ci(e, 'loo_pearson')} | {_with_ci(e, 'loo_spearman')} | {vs(e, 'loo_spearman')} | "
                     f"{_with_ci(e, 'lds')} | {vs(e, 'lds')} |")
    if "convex_if" in fid:
        c = fid["convex_if"]
        lines += ["", f"Convex control (multinomial logistic regression, exact influence function, same points): leave-one-out "
                      f"Pearson {_with_ci(c, 'loo_pearson')}, Spearman {_with_ci(c, 'loo_spearman')}."]
    sel = fid.get("tracin_checkpoints", {}).get("selected_epoch")
    if sel is not None:
        lines += ["", f"TracIn checkpoint variants sum the lr-weighted per-checkpoint columns: all, up to the selected epoch {sel}, "
                      "or skipping the first K (burn_in_K). \"minus best\": paired bootstrap CI of the row's Spearman (LOO) or LDS minus "
                      "the best row's; one that excludes 0 separates the two."]
    return "\n".join(lines) + "\n"
