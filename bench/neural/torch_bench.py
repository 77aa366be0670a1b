#!/usr/bin/env python3
"""PyTorch side of bench/neural/run.sh: the same architectures (built from nic's YAML by
scripts/parity_neural.py), same batch sizes and threads, best of N timings. Prints one JSON line."""
import argparse
import json
import os
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from parity_neural import Model  # noqa: E402


def best(repeats, fn):
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def train_step(model, x, target, opt):
    def step():
        opt.zero_grad(set_to_none=False)
        loss = F.mse_loss(model(x), target)
        loss.backward()
        opt.step()
    return step


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--no-patient", action="store_true")
    ap.add_argument("--channels-last", action="store_true", help="NHWC memory format inside PyTorch")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    nodes = os.path.join(ROOT, "nodes")
    out = {}

    enc = Model(f"{nodes}/encoders/nic-encoder.yaml").to(memory_format=fmt)
    # The model takes NHWC and permutes to NCHW; for channels_last that permute is free.
    x = torch.rand(256, 64, 64, 3) * 2 - 1
    enc.eval()
    with torch.no_grad():
        out["encoder inference (batch 256)"] = best(5, lambda: enc(x))
    enc.train()
    x64 = x[:64].contiguous()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-4)
    out["encoder training step (batch 64)"] = best(5, train_step(enc, x64, torch.full((64, 128), 0.5), opt))

    if not args.no_patient:
        pat = Model(f"{nodes}/patient/nic-sepconv8.yaml", f"{nodes}/heads/regression.yaml").to(memory_format=fmt)
        pat.train()
        xp = torch.rand(16, 400, 400, 128) * 2 - 1
        opt = torch.optim.Adam(pat.parameters(), lr=1e-4)
        out["patient CNN training step (16×400×400×128)"] = best(2, train_step(pat, xp, torch.full((16, 1), 0.5), opt))

    out["torch"] = torch.__version__
    out["threads"] = torch.get_num_threads()
    out["channels_last"] = args.channels_last
    print("JSON " + json.dumps(out, ensure_ascii=False))


if __name__ == "__main__":
    main()
