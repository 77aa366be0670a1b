#!/usr/bin/env python3
"""The peer of `nic doctor bag`: CLAM-style gated attention (scripts/parity_mil.py's reference
module, same sizes as nodes/patient/abmil-gated.yaml) on one bag of random instances, the whole bag
at once as CLAM does, in inference mode. Prints the time and the peak RSS as one JSON line."""
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts"))
from parity_mil import BagModel  # noqa: E402
import yaml  # noqa: E402

cells = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
threads = int(os.environ.get("THREADS", "2"))
torch.set_num_threads(threads)
root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
arch = yaml.safe_load(open(os.path.join(root, "nodes/patient/abmil-gated.yaml")))
head = yaml.safe_load(open(os.path.join(root, "nodes/heads/regression.yaml")))
model = BagModel(arch, head, 128, 1).eval()
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
start = time.perf_counter()
with torch.no_grad():
    x = torch.randn(cells, 128)
    y, alpha = model(x, [cells])
seconds = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
print(f"torch: bag of {cells} instances (whole): {seconds:.2f} s, peak RSS {peak} MB (before {before} MB)")
print("JSON " + json.dumps({"seconds": seconds, "peak_rss_mb": peak, "rss_before_mb": before, "cells": cells}))
