"""The ``sampleval`` command: look at the pipeline's results without opening files.

- ``sampleval report``: where report.md is, and its first lines;
- ``sampleval suspects --top 50``: the most suspect training samples (data/label_issues.parquet);
  ``--export data/corrections.csv`` writes them as a corrections file (relabel to the
  suggested label; keep where the model agrees), to review and then ``dvc repro``.

Run it from the repository root (or pass the paths). Installed as a console script
(``[project.scripts]``); ``python -m sampleval.cli`` is the same.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPORT = "report.md"
LABEL_ISSUES = "data/label_issues.parquet"
MANIFEST = "data/prepared/manifest.json"


def _report(args) -> int:
    path = Path(args.path)
    if not path.exists():
        print(f"error: {path} does not exist; run `dvc repro` in the repository root first", file=sys.stderr)
        return 1
    print(f"report: {path.resolve()}")
    lines = path.read_text().splitlines()
    print("\n".join(lines[: args.lines]))
    if len(lines) > args.lines:
        print(f"... ({len(lines) - args.lines} more lines)")
    return 0


def _suspects(args) -> int:
    import pandas as pd

    from sampleval.reporting.label_issues import export_corrections, found_in_top

    path = Path(args.table)
    if not path.exists():
        print(f"error: {path} does not exist; run `dvc repro suspects` first", file=sys.stderr)
        return 1
    if args.top < 1:
        print(f"error: --top must be at least 1, got {args.top}", file=sys.stderr)
        return 1
    table = pd.read_parquet(path).sort_values("rank")
    cols = ["rank", "sample_id", "given_label", "suggested_label", "suggested_prob", "score", "flipped"]
    print(f"{path}: {len(table)} training samples, most suspect first by {table['ranking'].iloc[0]}")
    with pd.option_context("display.max_rows", args.top + 1, "display.width", 120):
        print(table[cols].head(args.top).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    found = found_in_top(table, args.top)
    if found:
        print(f"injected flips in these {args.top}: {found['found']} of {found['n_flipped']}")
    if args.export:
        manifest = Path(args.manifest)
        task = json.loads(manifest.read_text())["task"] if manifest.exists() else "multiclass"
        try:
            out = export_corrections(table, args.top, args.export, task)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        counts = out["action"].value_counts().to_dict()
        print(f"wrote {args.export}: {len(out)} rows ({', '.join(f'{n} {a}' for a, n in counts.items())}); "
              "review it, commit it and run `dvc repro`")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sampleval", description="Results of the sampleval pipeline (run `dvc repro` first).")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="where report.md is, and its first lines")
    rep.add_argument("--path", default=REPORT)
    rep.add_argument("--lines", type=int, default=20, help="lines to print (default 20)")
    rep.set_defaults(func=_report)
    sus = sub.add_parser("suspects", help="the most suspect training samples; --export writes a corrections file")
    sus.add_argument("--top", type=int, default=50, help="rows to show / export (default 50)")
    sus.add_argument("--export", metavar="PATH", help="write the rows as a corrections CSV (e.g. data/corrections.csv)")
    sus.add_argument("--table", default=LABEL_ISSUES)
    sus.add_argument("--manifest", default=MANIFEST, help="the prepared data's manifest (its task decides whether relabelling applies)")
    sus.set_defaults(func=_suspects)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
