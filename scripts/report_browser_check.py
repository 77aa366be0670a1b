#!/usr/bin/env python3
"""Opens a nic HTML report in Debian's headless Chromium (selenium + chromium-driver) and checks
that it rendered: every section present, the expected ones non-empty, every visible SVG chart drawn,
every image decoded, and no console errors; that it opens with the results tables (rows and columns
from a matrix's axes) after the run's status, that the graph fits the page with a matrix as one box,
that the node table is collapsible, that patient models' loss charts show each fold's validation
(held-out fold) loss beside its training loss, that previews are embedded thumbnails linking to full images on
disk, and that the file is small and loads fast. Saves a screenshot next to the report.

    python scripts/report_browser_check.py RUN_FOLDER/report.html --expect dag nodes metrics plots
"""
import argparse, pathlib, sys, urllib.parse
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service

SECTIONS = ["results", "dag", "nodes", "curves", "metrics", "plots", "previews"]

parser = argparse.ArgumentParser()
parser.add_argument("report")
parser.add_argument("--expect", nargs="*", default=SECTIONS, help="sections that must have content")
parser.add_argument("--max-mb", type=float, default=8.0, help="the report file's largest size")
parser.add_argument("--max-load-seconds", type=float, default=2.0)
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
    size = report.stat().st_size / 2**20
    check(size < args.max_mb, f"report size {size:.2f} MB < {args.max_mb} MB")
    load = driver.execute_script("const t = performance.getEntriesByType('navigation')[0]; return t ? t.loadEventEnd : null")
    check(load is not None and load < args.max_load_seconds * 1000, f"loaded in {load} ms (< {args.max_load_seconds} s)")
    first = driver.execute_script("return document.querySelector('main section').id")
    check(first == "section-results", f"first section is the results ({first})")
    check(driver.execute_script("return /status/.test(document.getElementById('summary').textContent)"), "the header gives the run's status")
    if "results" in args.expect:
        tables = driver.execute_script("""return Array.from(document.querySelectorAll('table.results')).map(t =>
            [t.dataset.template, t.rows.length, t.rows[0].cells.length])""")
        check(len(tables) > 0, f"{len(tables)} results tables: {tables}")
        for template, rows, columns in tables:
            check(rows > 1 and columns > 2, f"results table {template}: {rows - 1} rows, {columns} columns")
    groups = driver.execute_script("return document.querySelectorAll('#dag-groups .dag-group').length")
    if groups:
        nodes = driver.execute_script("return document.querySelectorAll('#dag .dag-node').length")
        check(groups < nodes, f"graph: {groups} boxes for {nodes} nodes (a matrix is one box)")
        fits = driver.execute_script("""const b = document.getElementById('dag-groups').getBoundingClientRect();
            return [b.width, document.documentElement.clientWidth]""")
        check(fits[0] <= fits[1], f"graph fits the page ({fits[0]:.0f} px of {fits[1]} px)")
        check(driver.execute_script("return document.querySelector('#dag-all') instanceof HTMLDetailsElement"), "every node's graph is one click away")
    check(driver.execute_script("return document.querySelector('#section-nodes details') !== null || document.getElementById('section-nodes').dataset.empty === 'true'"),
          "node table is collapsible")
    links = driver.execute_script("""return Array.from(document.querySelectorAll('figure')).map(f => {
        const a = f.querySelector('a.full-image'), i = f.querySelector('img');
        return [a ? a.getAttribute('href') : null, i ? i.src.startsWith('data:') : false]; })""")
    for href, embedded in links:
        check(href is not None and (report.parent / urllib.parse.unquote(href)).exists() and embedded,
              f"thumbnail embedded, full image linked: {href}")
    drawn = driver.execute_script("""
        return Array.from(document.querySelectorAll('svg')).filter(s => !s.closest('details:not([open])')).map(s => {
            const box = s.getBoundingClientRect();
            return [s.getAttribute('aria-label') || s.id, box.width > 0 && box.height > 0 && s.querySelectorAll('path,circle,rect').length > 1];
        });""")
    check(len(drawn) > 0, f"{len(drawn)} SVG figures")
    for label, ok in drawn:
        check(ok, f"svg drawn: {label}")
    # Patient models: each fold's validation (held-out fold) loss beside its training loss, in one panel.
    folds = driver.execute_script("""return Array.from(document.querySelectorAll('svg[aria-label*="loss per fold"]')).map(s =>
        [s.getAttribute('aria-label'), s.querySelectorAll('path.training').length, s.querySelectorAll('path.validation[stroke-dasharray]').length])""")
    if "curves" in args.expect:
        check(len(folds) > 0, f"{len(folds)} patient-model loss charts")
    for label, training, validation in folds:
        check(training > 0 and validation == training and "held-out" in label,
              f"{label}: {training} training and {validation} validation curves")
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
