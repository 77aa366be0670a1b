#!/usr/bin/env python3
"""The external-test table of a pipeline (issue 21, the paper's "training set | external test set"):
per target, patient model and encoder, the out-of-fold metric on the training cohort (cross-validated)
beside the same kept model's metric on the external cohort (`apply`), each with its bootstrap CI and n,
and the paired difference of an encoder against mean-RGB on the external set (a `compare` of two
`apply` nodes: the same resampled patients for both).

    scripts/external-table.py pipelines/external.yaml [--nic .build/release/nic] [--cache DIR] [--csv]

Nothing here is tied to node names: it reads the pipeline as `nic expand` prints it (each instance
with its template and axes) and the results as `nic metrics --csv` prints them, and follows the
graph: an evaluator of an `apply` node is external, the apply's `model` input names the trained
patient model, whose own evaluator is the training-set (CV) row; the encoder is the one feeding the
model's grids (compressor → `encoder`); the target is the instance's `target` axis (or its param).
Pipelines without apply nodes, or evaluators not yet computed, give empty cells, not an error.
"""
import argparse, csv, io, re, subprocess, sys

import yaml

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("pipeline")
parser.add_argument("--nic", default=".build/release/nic")
parser.add_argument("--cache", help="the cache folder (nic's --cache)")
parser.add_argument("--csv", action="store_true", help="CSV instead of a Markdown table")
parser.add_argument("--expanded", help="read this `nic expand` output instead of running nic")
parser.add_argument("--metrics", help="read this `nic metrics --csv` output instead of running nic")
parser.add_argument("--baseline", default="mean_rgb", help="the encoder the paired differences are against")
parser.add_argument("--require-complete", action="store_true",
                    help="exit 1 unless every applied model has both a CV and an external value with a CI (CI: make test)")
args = parser.parse_args()


def nic(*arguments):
    command = [args.nic, *arguments] + (["--cache", args.cache] if args.cache else [])
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    return done.stdout


expanded_text = open(args.expanded).read() if args.expanded else nic("expand", args.pipeline)
metrics_text = open(args.metrics).read() if args.metrics else nic("metrics", args.pipeline, "--csv")

nodes = (yaml.safe_load(expanded_text) or {}).get("nodes") or {}
# `nic expand` writes each instance under a comment "# template (file:line:column): axis=value ...".
instances = {}
pending = None
for line in expanded_text.splitlines():
    comment = re.match(r"^  # (\S+) \([^)]*\):(.*)$", line)
    if comment:
        pending = (comment.group(1), dict(kv.split("=", 1) for kv in comment.group(2).split() if "=" in kv))
        continue
    name = re.match(r'^  "?([^\s":]+)"?:\s*$', line) or re.match(r'^  "?([^\s":]+)"?:\s*\{', line)
    if name and pending:
        instances[name.group(1)] = pending
    if not line.startswith("  #"):
        pending = None

metrics = {}
for row in csv.DictReader(io.StringIO(metrics_text)):
    metrics.setdefault(row["node"], []).append(row)


def source(node, port):
    """The node feeding `port` of `node` (a `node.port` reference loses its port)."""
    value = ((nodes.get(node) or {}).get("in") or {}).get(port)
    return str(value).split(".")[0] if value is not None else None


def encoder_of(model):
    grids = source(model, "grids") or source(model, "features")
    encoder = source(grids, "encoder") if grids else None
    stain = ((nodes.get(grids) or {}).get("params") or {}).get("stain")
    return (encoder or grids or "?") + (f" ({stain})" if stain and stain != "none" else "")


def describe(model):
    template, axes = instances.get(model, (model, {}))
    kind = axes.get("arch") or template
    target = axes.get("target") or ",".join((nodes.get(model, {}).get("params") or {}).get("target") or []) or "?"
    return target, kind, encoder_of(model)


PRIMARY = ["spearman", "auc", "cindex", "pearson", "accuracy", "mae"]


def primary(node, suffix=""):
    rows = metrics.get(node)
    if rows is None:
        return None
    by_name = {r["metric"]: r for r in rows}
    for name in ([n + suffix for n in PRIMARY] if suffix else PRIMARY):
        if name in by_name and by_name[name]["value"]:
            return by_name[name]
    for r in rows:
        if r["metric"].endswith(suffix) and r["value"]:
            return r
    return rows[0] if rows and not suffix else None


def cell(row):
    if row is None:
        return ""
    if not row["value"]:
        return row["metric"].strip("()")  # "(not computed: run the pipeline)", "(nothing to score…)"
    ci = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", row["95% CI"] or "")]
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if len(ci) == 2 else ""
    return f'{float(row["value"]):.2f}{interval}' + (f' n={row["n"]}' if row.get("n") else "")


# Every evaluator: of a trained model (CV) or of an apply node (external).
evaluated = {}   # model → {"cv": metrics row, "external": [(label, row)]}
for name, node in nodes.items():
    if node.get("type") != "evaluator":
        continue
    predicted = source(name, "predictions")
    if predicted is None:
        continue
    if nodes.get(predicted, {}).get("type") == "apply":
        model = source(predicted, "model")
        grids = source(predicted, "grids")
        stain = ((nodes.get(grids) or {}).get("params") or {}).get("stain")
        label = f"stain {stain}" if stain and stain != "none" else ""
        evaluated.setdefault(model, {"cv": None, "external": []})["external"].append((label, primary(name)))
    else:
        evaluated.setdefault(predicted, {"cv": None, "external": []})["cv"] = primary(name)

# Paired differences between two applied models on the external set (compare of two apply nodes).
paired = {}  # (model a) → "a − b: value [CI]"
for name, node in nodes.items():
    if node.get("type") != "compare":
        continue
    a, b = source(name, "a"), source(name, "b")
    if nodes.get(a, {}).get("type") != "apply" or nodes.get(b, {}).get("type") != "apply":
        continue
    model_a, model_b = source(a, "model"), source(b, "model")
    difference = primary(name, "_a_minus_b")
    text = cell(difference)
    paired[model_a] = f"{encoder_of(model_a)} − {encoder_of(model_b)}: {text}" if text else ""

header = ["target", "model", "encoder", "metric", "training set (CV)", "external test set", f"external: paired vs {args.baseline}"]
rows = []
for model, found in evaluated.items():
    if not found["external"]:
        continue  # a model never applied to an external cohort has no row here
    target, kind, encoder = describe(model)
    metric = (found["cv"] or found["external"][0][1] or {}).get("metric", "")
    for i, (label, external) in enumerate(found["external"]):
        rows.append([target, kind, encoder + (f" ({label})" if label else ""), metric,
                     cell(found["cv"]) if i == 0 else "″", cell(external), paired.get(model, "") if i == 0 else ""])

target_order = {t: i for i, t in enumerate(["score", "grade", "survival"])}
kind_order = {k: i for i, k in enumerate(["cnn", "mil", "abmil", "probe"])}
rows.sort(key=lambda r: (target_order.get(r[0], 99), r[0], kind_order.get(r[1], 99), r[1], r[2] == args.baseline, r[2]))
if not rows:
    sys.exit("no evaluator of an `apply` node in this pipeline: nothing to tabulate")

if args.require_complete:
    interval = re.compile(r"^-?\d+\.\d\d \[-?\d+\.\d\d, -?\d+\.\d\d\] n=\d+$")
    incomplete = [r for r in rows if not (interval.match(r[4]) or r[4] == "″") or not interval.match(r[5])]
    for r in incomplete:
        print(f"incomplete: {r}", file=sys.stderr)
    if incomplete:
        sys.exit(1)

if args.csv:
    out = csv.writer(sys.stdout)
    out.writerow(header)
    out.writerows(rows)
else:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(r) + " |")
