"""Every built page as a reader sees it: opened in headless Chromium with the network cut off.

The book must need nothing from the internet (MathJax is served from `_static/mathjax`,
book/_ext/local_mathjax.py). Each page must show typeset math (no raw `\\(`), figures that
loaded, no JavaScript error, and no code cell or equation wider than the text column. One
full-page screenshot per chapter is kept in `_build/screenshots/` for a person to look at.

Chromium comes from the system (`apt-get install chromium` on Debian); playwright drives it
through `executable_path` (its own browser download is not used).
"""
import os
import shutil
from pathlib import Path

import pytest

from test_book import CHAPTERS, ROOT

SCREENSHOTS = ROOT / "_build" / "screenshots"
# Laptop screens: at 1440 px the code column holds ~88 characters, at 1280 px ~81 (long lines
# wrap there: book/_static/wrap.css). Each page is read in both, and in the theme's dark mode.
VIEWPORTS = ({"width": 1440, "height": 900}, {"width": 1280, "height": 800})
INSTALL = ("Chromium is not installed: run `apt-get install -y chromium` (Debian/Ubuntu), or "
           "set CHROMIUM to a Chromium/Chrome executable")

# What a reader would see wrong, gathered in the page after MathJax has finished.
PAGE_PROBLEMS = """async () => {
  const problems = [];
  const mathOnPage = document.querySelectorAll('.math').length;
  if (mathOnPage) {
    if (!window.MathJax || !MathJax.startup) return ['math on the page but MathJax did not load'];
    await MathJax.startup.promise;
    const typeset = document.querySelectorAll('mjx-container').length;
    if (typeset < mathOnPage) problems.push(`${typeset} of ${mathOnPage} formulas typeset`);
    for (const error of document.querySelectorAll('mjx-merror'))
      problems.push(`MathJax error: ${error.textContent.slice(0, 80)}`);
  }
  const text = document.body.cloneNode(true);
  const skipped = 'pre, code, script, style, mjx-container';
  for (const node of text.querySelectorAll(skipped)) node.remove();
  for (const raw of ['\\\\(', '\\\\[', '$$'])
    if (text.textContent.includes(raw)) {
      const at = text.textContent.indexOf(raw);
      problems.push(`raw TeX "${text.textContent.slice(at, at + 40).trim()}"`);
    }
  for (const img of document.images)
    if (!img.complete || img.naturalWidth === 0)
      problems.push(`image not loaded: ${img.getAttribute('src')}`);
  const column = document.querySelector('article.bd-article') || document.body;
  const right = column.getBoundingClientRect().right + 1;
  for (const pre of column.querySelectorAll('div.cell_input pre'))   // the chapters' code
    if (pre.scrollWidth > pre.clientWidth + 1)
      problems.push(`code wider than its column (${pre.scrollWidth} > ${pre.clientWidth} px): `
                    + pre.textContent.split('\\n').reduce((a, b) => b.length > a.length ? b : a)
                        .slice(0, 60));
  for (const math of column.querySelectorAll('mjx-container[display="true"]')) {
    const box = (math.querySelector('mjx-math') || math).getBoundingClientRect();
    const parent = math.parentElement;
    if (box.right > right || parent.scrollWidth > parent.clientWidth + 1)
      problems.push(`equation wider than the column (${Math.round(box.width)} px): `
                    + (math.querySelector('mjx-assistive-mml math')?.getAttribute('alttext')
                       || math.textContent).slice(0, 60));
  }
  return problems;
}"""


# Console errors of the theme itself (sphinx-book-theme 1.x with Jupyter Book 1), not of the
# book: the Thebe config script is written twice into every page, and pydata-sphinx-theme
# reports an empty stored light/dark mode on a page opened from a file. Matched by text.
THEME_ERRORS = ("Identifier 'THEBE_JS_URL' has already been declared",
                "Got invalid theme mode: . Resetting to auto.")


def chromium_executable():
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture(scope="module")
def browser():
    executable = chromium_executable()
    if executable is None:
        pytest.skip(INSTALL)
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed: pip install -r "
                                          "requirements.txt (it needs Python >= 3.10)")
    with sync_api.sync_playwright() as playwright:
        yield playwright.chromium.launch(executable_path=executable, headless=True)


def page_problems(browser, page_path, screenshot=None, viewport=VIEWPORTS[0], dark=False):
    """Open one HTML file offline (at ``viewport``, in the dark theme with ``dark``); return
    what a reader would see wrong, and the URLs it tried to fetch from the network (each is
    refused, as on a machine with no internet)."""
    context = browser.new_context(viewport=viewport, offline=True,
                                  color_scheme="dark" if dark else "light")
    fetched, errors = [], []

    def block_network(route):
        if route.request.url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            fetched.append(route.request.url)
            route.abort()

    context.route("**/*", block_network)
    page = context.new_page()
    page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(Path(page_path).resolve().as_uri(), wait_until="load")
    if dark and page.evaluate("document.documentElement.dataset.theme") != "dark":
        errors.append("the theme did not switch to dark mode")
    try:
        problems = page.evaluate(PAGE_PROBLEMS)
    except Exception:  # search.html rewrites its own URL once loaded: look again once settled
        page.wait_for_timeout(1000)
        page.wait_for_load_state("load")
        problems = page.evaluate(PAGE_PROBLEMS)
    if screenshot is not None:
        page.screenshot(path=str(screenshot), full_page=True)
    context.close()
    return problems + [f"JavaScript error: {error}" for error in errors
                       if not any(known in error for known in THEME_ERRORS)], fetched


def built_pages(html):
    return sorted(path for path in html.rglob("*.html")
                  if not {"_static", "_sources", "_images"} & set(path.relative_to(html).parts))


def test_every_page_reads_offline(built_book, browser):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    chapter_pages = {built_book / f"{chapter}.html": SCREENSHOTS / f"{Path(chapter).name}.png"
                     for chapter in CHAPTERS}
    pages = built_pages(built_book)
    assert set(chapter_pages) <= set(pages)
    report = {}
    for viewport in VIEWPORTS:
        for page in pages:
            screenshot = chapter_pages.get(page) if viewport is VIEWPORTS[0] else None
            problems, fetched = page_problems(browser, page, screenshot, viewport)
            if fetched:
                problems.append(f"needs the network for {len(fetched)} file(s), e.g. "
                                f"{fetched[0]}")
            if problems:
                report[f"{page.relative_to(built_book)} at {viewport['width']} px"] = problems
    for screenshot in chapter_pages.values():
        assert screenshot.stat().st_size > 0
    assert not report, "pages a reader would see broken:\n" + "\n".join(
        f"{page}:\n  " + "\n  ".join(problems) for page, problems in report.items())


def test_figures_read_in_the_dark_theme(built_book, browser):
    """In dark mode the page turns dark but a figure keeps its own background: every figure
    must be opaque (a transparent PNG would put matplotlib's black labels on a dark page)."""
    from PIL import Image
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    see_through = []
    for png in sorted((built_book / "_images").glob("*.png")):
        with Image.open(png) as image:
            alpha = image.convert("RGBA").getchannel("A")
            if alpha.getextrema()[0] < 255:
                see_through.append(png.name)
    assert not see_through, f"figures with transparent pixels (unreadable in dark mode): " \
        f"{', '.join(see_through[:5])}"
    for chapter in CHAPTERS:
        problems, _ = page_problems(browser, built_book / f"{chapter}.html",
                                    SCREENSHOTS / f"{Path(chapter).name}_dark.png", dark=True)
        assert not problems, f"{chapter} in dark mode: {problems}"
