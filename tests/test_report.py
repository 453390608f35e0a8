"""`snakemake --report` of the tiny run, rendered in headless Chromium: the summary table and the figures
are there, with captions, and the images actually display. Needs Debian's chromium and chromedriver."""

import base64
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from conftest import run_snakemake

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 20


@pytest.fixture(scope="module")
def report(tiny_run):
    """results/report.html of the tiny run (made once per module)."""
    path = tiny_run / "report.html"
    t0 = time.monotonic()
    run_snakemake(tiny_run.parent, "--report", str(path))
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB, {time.monotonic() - t0:.1f} s)")
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium driven by the given chromedriver: Selenium Manager (which would look drivers up
    online) is never asked, and the browser resolves no host names, so nothing leaves the machine."""
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.skip(f"report rendering test needs Debian's chromium and chromedriver: missing {missing}")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.selenium_manager import SeleniumManager

    profile = tempfile.mkdtemp(prefix="mer-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-extensions", "--window-size=1400,1000",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})  # DevTools events: every request

    def no_selenium_manager(*args, **kwargs):
        raise AssertionError("Selenium Manager was asked for a driver (it may go online)")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(SeleniumManager, "binary_paths", no_selenium_manager)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver, condition, what):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(condition, f"timed out waiting for {what}")


def open_report(driver, report):
    """Load the report afresh; returns once React has drawn the main menu."""
    driver.switch_to.default_content()
    driver.get(report.as_uri())
    wait(driver, lambda d: d.title == "Snakemake Report" and menu_items(d), "the report's menu")


def menu_items(driver):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.XPATH, "//nav//li/a[span]")


def click_menu(driver, label):
    """Click the navbar entry (category or subcategory) named `label`."""
    from selenium.webdriver.common.by import By

    xpath = f"//nav//li/a[span[normalize-space()='{label}']]"
    wait(driver, lambda d: d.find_elements(By.XPATH, xpath), f"menu entry {label!r}")[0].click()


def result_row(driver, label):
    """The row of the subcategory's results table whose first cell is `label`: (view, info) buttons."""
    from selenium.webdriver.common.by import By

    xpath = f"//nav//table//tr[td[1][normalize-space()='{label}']]/td[last()]//a"
    buttons = wait(driver, lambda d: d.find_elements(By.XPATH, xpath), f"result row {label!r}")
    assert len(buttons) == 2, f"row {label!r}: expected view and info buttons, found {len(buttons)}"
    return buttons


def show(driver, report, category, subcategory, label):
    """Navigate the report's menus like a reader: category, subcategory (if the category has more
    than one), then the view button of the result labelled `label`."""
    open_report(driver, report)
    click_menu(driver, category)
    if subcategory:
        click_menu(driver, subcategory)
    view, _info = result_row(driver, label)
    view.click()


def caption(driver, label):
    """The caption text of the result `label` of the current subcategory (its info panel)."""
    from selenium.webdriver.common.by import By

    result_row(driver, label)[1].click()
    return wait(driver, lambda d: " ".join(e.text for e in d.find_elements(By.CSS_SELECTOR, "nav li.prose")),
                f"the caption of {label!r}")


DISPLAYED_IMAGE = """
const img = document.querySelector('div.p-3 > img[src^="data:image/png"]');
if (!img) return null;
const box = img.getBoundingClientRect();
return {complete: img.complete, width: img.naturalWidth, height: img.naturalHeight, shown: box.width * box.height,
        src: img.getAttribute('src')};
"""


def displayed_png(driver, expected):
    """Wait for the content pane's PNG to load; check it is drawn and is exactly the file `expected`."""
    img = wait(driver, lambda d: (lambda r: r if r and r["complete"] else None)(d.execute_script(DISPLAYED_IMAGE)),
               f"{expected.name} to load")
    assert img["width"] > 0 and img["height"] > 0, f"{expected.name} did not decode: {img['width']}x{img['height']}"
    assert img["shown"] > 0, f"{expected.name} has no area on the page"
    header, data = img["src"].split(",", 1)
    assert f"filename={expected.name}" in header and base64.b64decode(data) == expected.read_bytes()
    return img


NAV_STATE = """return [document.querySelector('nav').getBoundingClientRect().width,
                     document.getAnimations().length]"""


def layout_settled(driver):
    """True once no animation runs and the navbar keeps its width for 0.3 s (it slides between widths)."""
    before = driver.execute_script(NAV_STATE)
    time.sleep(0.3)
    return driver.execute_script(NAV_STATE) == before and before[1] == 0


def keep_screenshot(driver, tmp_path, results, name):
    """Save a screenshot once the navbar's width transition is over, in tmp_path and beside the results."""
    wait(driver, layout_settled, "the navbar's width to settle")
    shot = tmp_path / name
    assert driver.save_screenshot(str(shot)), "screenshot failed"
    shutil.copy(shot, results / name)
    print(f"screenshot: {shot} (copy: {results / name})")
    return shot


def test_report_is_self_contained(report):
    html = report.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html>")
    for name in ("summary.html", "confusion.png", "per_fold.png", "training_curves.png", "apex_curves.png",
                 "crops_montage.png"):
        assert f"filename={name};base64," in html, f"{name} not embedded"
    for caption_words in ("predictions of all folds", "macro F1", "held-out subject", "M_i"):
        assert caption_words in html, f"caption text {caption_words!r} missing"


def test_summary_table_renders(report, browser, tmp_path):
    from selenium.webdriver.common.by import By

    show(browser, report, "1. Results", "Summary", "all experiments")
    frame = wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "iframe[src^='data:text/html']"),
                 "the summary table's frame")[0]
    browser.switch_to.frame(frame)
    try:
        wait(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "table#T_summary tbody tr"), "summary rows")
        headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table#T_summary th")]
        rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")]
                for tr in browser.find_elements(By.CSS_SELECTOR, "table#T_summary tbody tr")]
    finally:
        browser.switch_to.default_content()
    assert {"Experiment", "Accuracy", "UF1", "UAR"} <= set(headers), headers
    by_name = {r[headers.index("Experiment")]: dict(zip(headers, r, strict=True)) for r in rows}
    assert set(by_name) == {"tiny", "tiny_b"}, rows
    for name, row in by_name.items():
        assert 0 <= float(row["Accuracy"]) <= 1 and 0 <= float(row["UF1"]) <= 1, row
        assert row["Folds"] == "3" and row["Samples"] == "15" and row["Method"] == "SE-ResNeXt-50", (name, row)
    keep_screenshot(browser, tmp_path, report.parent, "report_screenshot.png")  # the table beside its menu
    text = caption(browser, "all experiments")
    assert "pooled predictions of all folds" in text and "macro F1" in text, text


@pytest.mark.parametrize(("category", "subcategory", "label", "file"), [
    ("1. Results", "Confusion matrices", "tiny", "tiny/confusion.png"),
    ("1. Results", "Confusion matrices", "tiny_b", "tiny_b/confusion.png"),
    ("1. Results", "Accuracy per fold", "tiny_b", "tiny_b/per_fold.png"),
    ("2. Training", None, "tiny", "tiny/training_curves.png"),  # one subcategory: opened directly
    ("3. Preprocessing", None, "apex spotting: M_i curves", "preprocessing/demo/apex_curves.png"),
    ("3. Preprocessing", None, "aligned apex crops per class", "preprocessing/demo/crops_montage.png"),
])
def test_figures_display(report, browser, tmp_path, category, subcategory, label, file):
    show(browser, report, category, subcategory, label)
    img = displayed_png(browser, report.parent / file)
    assert img["width"] >= 300, img["width"]
    assert caption(browser, label), f"{file} has no caption"
    if file == "tiny/confusion.png":
        keep_screenshot(browser, tmp_path, report.parent, "report_screenshot_confusion.png")


def test_report_loads_nothing_from_the_network(report, browser):
    """Every request the page made while the tests browsed it was for the file itself or embedded data."""
    import json

    open_report(browser, report)
    urls = [m["params"]["request"]["url"] for m in
            (json.loads(e["message"])["message"] for e in browser.get_log("performance"))
            if m["method"] == "Network.requestWillBeSent"]
    assert urls, "no requests logged at all (the performance log is not working)"
    # file: the report; data:/blob: its embedded results; about:/chrome*: the browser's own blank and
    # new-tab pages, served from inside the browser. Anything else (http, https, ws, ...) would be network.
    local = {"file", "data", "blob", "about", "chrome", "chrome-untrusted", "chrome-search"}
    outside = [u for u in urls if urlsplit(u).scheme not in local]
    assert not outside, f"the report fetched {outside[:5]}"
    assert any(u == report.as_uri() for u in urls)
