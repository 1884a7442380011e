"""WCAG AA contrast of the ctflow view in both themes, computed from the stylesheet it serves.

The colours come from ``include/ctflow/ui/static/ctflow.css`` itself: its ``:root`` variables (each a
``light-dark(light, dark)`` pair) and every rule that sets a text colour. A rule that sets both a
text colour and a background (pills, buttons, badges) is checked on its own background; a text
colour without one is checked on every surface the page paints (the rules that set only a
background: page, panels, cards, highlighted rows, the chart's plot area).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ctflow.ui

CSS = Path(ctflow.ui.__file__).parent / "static" / "ctflow.css"
AA = 4.5
THEMES = ("light", "dark")
#: Backgrounds that are graphics, not surfaces text sits on.
GRAPHICS = {".bar", "tr.drifted .bar"}


def rules(css: str) -> list[tuple[str, dict[str, str]]]:
    css = re.sub(r"/\*.*?\*/", "", css, flags=re.S)
    out = []
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        declarations = {}
        for part in body.split(";"):
            name, sep, value = part.partition(":")
            if sep:
                declarations[name.strip()] = value.strip()
        out.append((" ".join(selector.split()), declarations))
    return out


def palette(parsed) -> dict[str, dict[str, str]]:
    """``:root``'s variables per theme."""
    root = next(d for s, d in parsed if s == ":root")
    themes: dict[str, dict[str, str]] = {t: {} for t in THEMES}
    for name, value in root.items():
        if not name.startswith("--"):
            continue
        pair = re.fullmatch(r"light-dark\(\s*(#[0-9a-fA-F]{6})\s*,\s*(#[0-9a-fA-F]{6})\s*\)", value)
        assert pair, f"{name}: {value} is not light-dark(#rrggbb, #rrggbb)"
        themes["light"][name], themes["dark"][name] = pair.groups()
    return themes


def resolve(value: str, variables: dict[str, str]) -> str:
    found = re.fullmatch(r"var\((--[\w-]+)\)", value.strip())
    assert found, f"{value!r}: colours are set through the palette's variables"
    return variables[found.group(1)]


def luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.04045 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast(a: str, b: str) -> float:
    hi, lo = sorted((luminance(a), luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def _text(declarations: dict[str, str], selector: str) -> str | None:
    if "color" in declarations:
        return declarations["color"]
    return declarations.get("fill") if selector.endswith("text") or "label" in selector else None


def pairs(parsed) -> list[tuple[str, str, str]]:
    """(selector, text colour, background) as the stylesheet uses them, unresolved."""
    surfaces = [(s, d.get("background") or d["background-color"]) for s, d in parsed
                if ("background" in d or "background-color" in d) and "color" not in d and s not in GRAPHICS]
    surfaces += [(s, d["fill"]) for s, d in parsed if s.endswith(".plot")]
    out = []
    for selector, declarations in parsed:
        text = _text(declarations, selector)
        if text is None or text == "inherit":
            continue
        own = declarations.get("background") or declarations.get("background-color")
        if own:
            out.append((selector, text, own))
        else:
            out += [(f"{selector} on {where}", text, bg) for where, bg in surfaces]
    return out


PARSED = rules(CSS.read_text())


def test_the_stylesheet_has_both_themes_and_follows_airflows_class():
    themes = palette(PARSED)
    assert themes["light"]["--bg"] != themes["dark"]["--bg"]
    assert luminance(themes["dark"]["--bg"]) < 0.05 < 0.9 < luminance(themes["light"]["--bg"])  # no white frame
    selectors = {s for s, _ in PARSED}
    assert {":root.light", ":root.dark"} <= selectors  # Airflow's choice wins over the system's


@pytest.mark.parametrize("theme", THEMES)
def test_every_text_colour_on_its_background_meets_wcag_aa(theme):
    variables = palette(PARSED)[theme]
    checked = pairs(PARSED)
    assert len(checked) > 100  # pills, buttons, badges and text on every surface
    failing = []
    for where, text, background in checked:
        ratio = contrast(resolve(text, variables), resolve(background, variables))
        if ratio < AA:
            failing.append(f"{where}: {text} on {background} = {ratio:.2f}:1")
    assert not failing, "\n".join(failing)


def test_the_contrast_formula_is_wcags():
    assert contrast("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast("#777777", "#ffffff") == pytest.approx(4.48, abs=0.01)  # WCAG's classic near miss
