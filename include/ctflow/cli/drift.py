"""``ctflow drift``: per-column data drift of a current window against a reference.

    ctflow drift --reference ref.parquet --current window.parquet [--columns a b]
                 [--method auto|ks|chi2|z|psi|wasserstein|jensenshannon]
                 [--num-method M] [--cat-method M] [--threshold X] [--json]
                 [--html report.html] [--png chart.png] [--save-profile ref.npz]
                 [--min-rows N]

The reference may be a saved profile (``.npz``, see ``--save-profile``) so that a
monitoring run reads only the new window. Exit 0 with a verdict, whether or not drift is
found; exit 2 with a one-line message on bad input; exit :data:`EXIT_INSUFFICIENT_DATA` (3)
when the current window cannot be judged: fewer than ``--min-rows`` rows, or no column with
that many usable (not missing, finite) values. That is never reported as "no drift".

Data files are read with pyarrow, not pandas: pandas alone costs ~1.5 s to import,
longer than the whole comparison. Nothing heavy is imported at module level because
this module is imported for every ``ctflow`` command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ctflow.core.drift.results import METHODS

#: From ``results``, which needs no numpy: this module is imported for every ``ctflow`` command.
METHOD_CHOICES = ("auto", *METHODS)
_TABLE_SUFFIXES = (".parquet", ".pq", ".csv")
#: The current window is too small or has no usable value: no verdict.
EXIT_INSUFFICIENT_DATA = 3


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "drift",
        help="compare a data window with a reference, column by column",
        description="Per-column drift of CURRENT against REFERENCE (parquet or csv; the reference may "
        "also be a profile saved with --save-profile). Exit 0 whether or not drift is found, 2 on bad input, "
        "3 on insufficient data (too few rows or no usable values in CURRENT: no verdict).",
    )
    parser.add_argument("--reference", required=True, type=Path, metavar="PATH",
                        help="reference data (.parquet/.csv) or a saved reference profile (.npz)")
    parser.add_argument("--current", required=True, type=Path, metavar="PATH",
                        help="current window (.parquet/.csv)")
    parser.add_argument("--columns", nargs="+", metavar="COLUMN",
                        help="columns to compare (default: all reference columns)")
    parser.add_argument("--method", default="auto", choices=METHOD_CHOICES,
                        help="test for every column (default auto: Evidently's per-column choice)")
    parser.add_argument("--num-method", choices=METHOD_CHOICES, help="test for numeric columns (overrides --method)")
    parser.add_argument("--cat-method", choices=METHOD_CHOICES, help="test for categorical columns (overrides --method)")
    parser.add_argument("--threshold", type=float, help="threshold for every column (default: per method)")
    parser.add_argument("--max-drifted-share", type=float, default=0.5, metavar="SHARE",
                        help="dataset drifts when at least this share of columns drifts (default 0.5)")
    parser.add_argument("--min-rows", type=_positive_int, default=None, metavar="N",
                        help="fewer rows in CURRENT, or no column with N usable values, is insufficient data "
                             "(exit 3); default 100, as the spec's monitoring.min_rows")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--html", type=Path, metavar="PATH", help="also write a self-contained HTML report")
    parser.add_argument("--png", type=Path, metavar="PATH", help="also write a PNG chart of scores vs thresholds")
    parser.add_argument("--save-profile", type=Path, metavar="PATH",
                        help="save the reference profile (.npz) for later runs")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ctflow.exceptions import CtflowError

    try:
        result = _compute(args)
    except CtflowError as exc:
        print(f"ctflow drift: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        import json

        print(json.dumps(result.to_dict(), indent=2))
    else:
        print(format_table(result))
    try:
        if args.html:
            from ctflow.core.drift.report import render_html

            render_html(result, args.html, title=f"Drift: {args.current.name} vs {args.reference.name}")
        if args.png:
            from ctflow.core.drift.report import plot_drift

            plot_drift(result, args.png, title=f"Drift: {args.current.name} vs {args.reference.name}")
    except OSError as exc:
        print(f"ctflow drift: error: cannot write report: {exc}", file=sys.stderr)
        return 2
    if result.insufficient:
        print(f"ctflow drift: insufficient data, no verdict: {result.insufficient}", file=sys.stderr)
        return EXIT_INSUFFICIENT_DATA
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _compute(args: argparse.Namespace) -> Any:
    from ctflow.core.drift import DriftInputError, ReferenceProfile, dataset_drift_from_profile, suggest
    from ctflow.core.drift.sufficiency import DEFAULT_MIN_ROWS

    columns = args.columns
    if args.reference.suffix == ".npz":
        _require_file(args.reference)
        profile = ReferenceProfile.load(args.reference)
    else:
        reference = read_table(args.reference, columns)
        profile = ReferenceProfile.from_frame(reference, columns)
        del reference  # only the profile is needed from here on
    names = columns if columns is not None else profile.names
    for name in names:
        if name not in profile.columns:
            raise DriftInputError(f"unknown column {name!r} in {args.reference}{suggest(name, profile.names)}")
    current = read_table(args.current, names)
    if args.save_profile:
        try:
            profile.save(args.save_profile)
        except OSError as exc:
            raise DriftInputError(f"cannot write profile {args.save_profile}: {exc}") from exc
    return dataset_drift_from_profile(
        profile, current, columns=names, method=args.method, num_method=args.num_method,
        cat_method=args.cat_method, threshold=args.threshold, max_drifted_share=args.max_drifted_share,
        min_rows=args.min_rows or DEFAULT_MIN_ROWS,
    )


def _require_file(path: Path) -> None:
    from ctflow.core.drift import DriftInputError

    if not path.is_file():
        raise DriftInputError(f"no such file: {path}")


def read_table(path: Path, columns: list[str] | None) -> Any:
    """Read ``columns`` (all but pandas index columns when None) of a parquet/csv file as a pyarrow Table."""
    from ctflow.core.drift import DriftInputError, suggest

    _require_file(path)
    suffix = path.suffix.lower()
    if suffix not in _TABLE_SUFFIXES:
        raise DriftInputError(f"{path}: unsupported file type {suffix or '(none)'}; use .parquet or .csv")
    import pyarrow as pa

    try:
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            table = pacsv.read_csv(path)
            available = table.column_names
        else:
            import pyarrow.parquet as pq

            # ParquetFile, not pq.read_table: the latter goes through pyarrow.dataset,
            # which imports pandas (~1.5 s)
            parquet = pq.ParquetFile(path)
            available = parquet.schema_arrow.names
            table = None
    except (pa.ArrowException, OSError) as exc:
        raise DriftInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc
    if columns is None:
        columns = [c for c in available if not c.startswith("__index_level_")]
    for name in columns:
        if name not in available:
            raise DriftInputError(f"unknown column {name!r} in {path}{suggest(name, available)}")
    try:
        return table.select(columns) if table is not None else parquet.read(columns=columns, use_pandas_metadata=False)
    except (pa.ArrowException, OSError) as exc:
        raise DriftInputError(f"cannot read {path}: {str(exc).splitlines()[0]}") from exc


def format_table(result: Any) -> str:
    """Aligned text table of the per-column results plus a summary line."""
    from ctflow.core.drift.report import summary_line

    header = ("column", "kind", "method", "statistic", "p-value", "threshold", "drift", "missing ref/cur")
    rows = [header]
    for c in result.columns:
        rows.append((
            c.column, c.kind, c.method, _num(c.statistic, ".4g"), _num(c.p_value, ".3g"), f"{c.threshold:g}",
            "YES" if c.drifted else "no", f"{c.missing_reference}/{c.missing_current}",
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    right = {3, 4, 5}
    lines = [
        "  ".join(cell.rjust(w) if i in right else cell.ljust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True))).rstrip()
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append("")
    lines.append(summary_line(result))
    return "\n".join(lines)


def _num(value: float | None, spec: str) -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return format(value, spec)


def main(argv: list[str] | None = None) -> int:
    """Run ``drift`` on its own (``python -m ctflow.cli.drift ...``)."""
    parser = argparse.ArgumentParser(prog="ctflow")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["drift", *(sys.argv[1:] if argv is None else argv)])
    return int(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
