"""Screenshots of the ctflow view for the docs, from a running deployment (e.g. ``make up`` after
``make demo``; ``tests/ui/test_browser.py`` takes the same ones on the view's test state, into
``$CTFLOW_TEST_ARTIFACTS``)::

    python -m tests.ui.screenshots --api http://127.0.0.1:8080 --airflow-home .ctflow/airflow --out docs/screenshots
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tests.ui.browser import browser_page, ctflow_frame, login, password


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--airflow-home", type=Path, default=Path(".ctflow/airflow"))
    parser.add_argument("--pipeline", default="flight_delay")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with browser_page(viewport=(1440, 900)) as page:
        login(page, args.api, "admin", password(args.airflow_home))
        frame = ctflow_frame(page, args.api)
        frame.locator(f"tr[data-pipeline={args.pipeline}]").wait_for()
        page.screenshot(path=str(args.out / "ctflow-view.png"))
        page.goto(f"{args.api}/ctflow/pipelines/{args.pipeline}")
        page.locator("#metric-chart").wait_for()
        page.screenshot(path=str(args.out / "ctflow-pipeline.png"), full_page=True)
        page.evaluate("window.localStorage.setItem('theme', 'dark')")  # Airflow's dark theme
        page.reload()
        page.locator("#metric-chart").wait_for()
        page.screenshot(path=str(args.out / "ctflow-pipeline-dark.png"), full_page=True)
        page.evaluate("window.localStorage.setItem('theme', 'light')")
    print(f"wrote ctflow-view.png, ctflow-pipeline.png and ctflow-pipeline-dark.png to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
