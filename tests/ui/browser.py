"""Headless system Chromium through Playwright (no browser download), and Airflow's login page."""

from __future__ import annotations

import contextlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
]


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


@contextlib.contextmanager
def browser_page(viewport: tuple[int, int] = (1440, 1000)) -> Iterator:
    """A page of a fresh headless Chromium profile; confirm() dialogs are accepted."""
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="ctflow-chromium-")
    try:
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                profile, executable_path=chromium_path(), headless=True, args=ARGS,
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                page = context.pages[0] if context.pages else context.new_page()
                page.set_default_timeout(60_000)
                page.on("dialog", lambda dialog: dialog.accept())
                yield page
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def password(airflow_home: Path, username: str = "admin") -> str:
    return json.loads((airflow_home / "simple_auth_manager_passwords.json.generated").read_text())[username]


def login(page, api: str, username: str, secret: str) -> None:
    """Log in through Airflow's own login page (SimpleAuthManager), which sets the ``_token`` cookie."""
    page.goto(f"{api}/")
    page.wait_for_url("**/auth/login**")
    page.locator("input[name=username], input#username").first.fill(username)
    page.locator("input[name=password], input#password, input[type=password]").first.fill(secret)
    page.locator("button[type=submit], input[type=submit]").first.click()
    page.wait_for_url(lambda url: "/auth/login" not in url)
    page.wait_for_load_state("networkidle")


def ctflow_frame(page, api: str, path: str = "/plugin/ctflow"):
    """Open the ctflow view inside Airflow's UI; returns the iframe that shows it."""
    page.goto(f"{api}{path}")
    page.wait_for_selector("iframe")
    frame = page.frame_locator("iframe").first
    frame.locator("header.top").wait_for()
    return frame
