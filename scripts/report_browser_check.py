#!/usr/bin/env python3
"""Opens a nic HTML report in Debian's headless Chromium (selenium + chromium-driver) and checks
that it rendered: every section present, the expected ones non-empty, every SVG chart drawn, every
image decoded, and no console errors. Saves a screenshot next to the report.

    python scripts/report_browser_check.py RUN_FOLDER/report.html --expect dag nodes metrics plots
"""
import argparse, pathlib, sys
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

SECTIONS = ["dag", "nodes", "curves", "metrics", "plots", "previews"]

parser = argparse.ArgumentParser()
parser.add_argument("report")
parser.add_argument("--expect", nargs="*", default=SECTIONS, help="sections that must have content")
args = parser.parse_args()
report = pathlib.Path(args.report).resolve()

options = Options()
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    options.add_argument(flag)
options.binary_location = "/usr/bin/chromium"
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
passed, failed = 0, 0

def check(condition, what):
    global passed, failed
    if condition:
        passed += 1
        print(f"ok    {what}")
    else:
        failed += 1
        print(f"FAIL  {what}")

try:
    driver.get(report.as_uri())
    check(driver.title.startswith("nic report"), f"title: {driver.title!r}")
    for name in SECTIONS:
        found = driver.execute_script(f"return document.getElementById('section-{name}') !== null")
        check(found, f"section {name} present")
        if name in args.expect:
            empty = driver.execute_script(f"return document.getElementById('section-{name}').dataset.empty")
            check(empty == "false", f"section {name} has content")
    drawn = driver.execute_script("""
        return Array.from(document.querySelectorAll('svg')).map(s => {
            const box = s.getBoundingClientRect();
            return [s.getAttribute('aria-label') || s.id, box.width > 0 && box.height > 0 && s.querySelectorAll('path,circle,rect').length > 1];
        });""")
    check(len(drawn) > 0, f"{len(drawn)} SVG figures")
    for label, ok in drawn:
        check(ok, f"svg drawn: {label}")
    images = driver.execute_script("return Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0])")
    for alt, ok in images:
        check(ok, f"image decoded: {alt}")
    if "previews" in args.expect:
        check(len(images) > 0, f"{len(images)} preview images")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]
    for entry in errors:
        print("console:", entry["message"])
    check(not errors, "no console errors")
    height = driver.execute_script("return document.body.scrollHeight")
    driver.set_window_size(1400, min(max(height, 800), 12000))
    shot = report.parent / "report.png"
    driver.save_screenshot(str(shot))
    check(shot.stat().st_size > 10000, f"screenshot {shot}")
finally:
    driver.quit()

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
