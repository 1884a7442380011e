"""Put each of issue #15's findings back (:mod:`tests.proof.mutations`) and show its tests fail.

    uv run --frozen python -m tests.proof.run [--only FINDING ...] [--out tests/proof/results.md]

Works in a throw-away ``git worktree`` of HEAD (the checkout you run it from is never changed):
first the listed tests run on the clean copy and must pass, then each mutation is applied, its
tests run (pytest's JUnit XML tells a failed assertion from a collection error, which would prove
nothing) and the file is restored. Exit 1 when a clean test fails or a defect goes unnoticed.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.proof.mutations import MUTATIONS, Mutation

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    seconds: float = 0.0
    first_failure: str = ""


def pytest_outcome(copy: Path, node_ids: list[str]) -> Outcome:
    with tempfile.NamedTemporaryFile(suffix=".xml", delete=False) as xml_file:
        report = Path(xml_file.name)
    started = time.monotonic()
    subprocess.run(["uv", "run", "--frozen", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(report),
                    *node_ids], cwd=copy, env={**os.environ, "CI": "true"}, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    outcome = Outcome(seconds=time.monotonic() - started)
    if report.stat().st_size == 0:
        outcome.errors = 1
        outcome.first_failure = "pytest wrote no report"
        return outcome
    for case in ET.parse(report).getroot().iter("testcase"):
        failure, error, skipped = case.find("failure"), case.find("error"), case.find("skipped")
        if failure is not None:
            outcome.failed += 1
            outcome.first_failure = outcome.first_failure or (failure.get("message") or "")[:160]
        elif error is not None:
            outcome.errors += 1
        elif skipped is not None:
            outcome.skipped += 1
        else:
            outcome.passed += 1
    report.unlink()
    return outcome


def apply(copy: Path, mutation: Mutation) -> str:
    path = copy / mutation.path
    text = path.read_text(encoding="utf-8")
    if text.count(mutation.old) != 1:
        raise SystemExit(f"{mutation.path}: the text to mutate occurs {text.count(mutation.old)} times: "
                         f"{mutation.old!r}\n(the code moved: update tests/proof/mutations.py)")
    path.write_text(text.replace(mutation.old, mutation.new), encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="findings to run (e.g. 1 6 11)")
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "proof" / "results.md")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.finding in args.only]
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    copy = Path(tempfile.mkdtemp(prefix="ctflow-proof-")) / "repo"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(copy), "HEAD"], cwd=ROOT, check=True)
    rows, ok = [], True
    try:
        node_ids = sorted({t for m in chosen for t in m.tests})
        clean = pytest_outcome(copy, node_ids)
        print(f"clean copy at {commit}: {clean.passed} passed, {clean.failed} failed, {clean.errors} errors "
              f"({clean.seconds:.0f} s)", flush=True)
        ok = clean.failed == clean.errors == 0
        for mutation in chosen:
            original = apply(copy, mutation)
            try:
                broken = pytest_outcome(copy, list(mutation.tests))
            finally:
                (copy / mutation.path).write_text(original, encoding="utf-8")
            caught = broken.failed > 0
            ok = ok and caught
            print(f"finding {mutation.finding}: {'caught' if caught else 'NOT CAUGHT'} "
                  f"({broken.failed} failed, {broken.errors} errors, {broken.seconds:.0f} s): {mutation.what}",
                  flush=True)
            rows.append((mutation, broken, caught))
    finally:
        subprocess.run(["git", "worktree", "remove", "--force", str(copy)], cwd=ROOT, check=False)
    write_table(args.out, commit, clean, rows)
    return 0 if ok else 1


def write_table(out: Path, commit: str, clean: Outcome, rows: list[tuple[Mutation, Outcome, bool]]) -> None:
    lines = [
        "# Issue #15's findings, put back one at a time",
        "",
        (f"`python -m tests.proof.run` at {commit}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. "
        f"Clean copy: {clean.passed} passed, {clean.failed} failed, {clean.errors} errors."),
        ("Each row puts the defect back into a throw-away copy and runs the tests that guard it; "
        "*caught* means at least one of them failed on an assertion (not a collection error)."),
        "",
        "| finding | defect put back | file | guarding tests | with the defect |",
        "|---|---|---|---|---|",
    ]
    for mutation, broken, caught in rows:
        tests = "<br>".join(f"`{t.split('::', 1)[-1]}`" for t in mutation.tests)
        verdict = (f"**caught**: {broken.failed} failed" if caught else "**not caught**") + (
            f"; {broken.first_failure.splitlines()[0][:90]}" if broken.first_failure else "")
        lines.append(f"| {mutation.finding} | {mutation.what} | `{mutation.path}` | {tests} | "
                     f"{verdict.replace('|', '/')} |")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
