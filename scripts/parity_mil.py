#!/usr/bin/env python3
"""Parity of nic's bag models (multiple-instance learning) with a PyTorch reference.

The reference is written here independently of nic: an instance MLP built from the architecture's
`layers`, CLAM's gated attention (`Attn_Net_Gated`: attention_a = Linear+Tanh, attention_b =
Linear+Sigmoid, attention_c = Linear; Lu et al. 2021) or Ilse et al.'s plain attention or a mean, a
softmax over each bag, the attention-weighted sum, then the head. It loads the weights nic saved
(safetensors, strict) and compares, per bag, the eval output, the attention weights, and one MSE
training step's loss and parameter gradients (dropout off on both sides).

    scripts/parity_mil.py [--nic .build/release/nic] [--write-fixtures Tests/NeuralTests/Fixtures/parity]

Needs torch, numpy, safetensors and pyyaml. Exit status 1 when a difference exceeds 1e-5 (outputs,
attention) or 1e-4 relative (gradients). --write-fixtures stores each case (nic's weights and inputs,
PyTorch's outputs, attention and gradients) for ParityFixtureTests, which checks nic without PyTorch.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
import torch.nn as nn
import yaml
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CASES = [
    ("nodes/patient/abmil-gated.yaml", "nodes/heads/regression.yaml", 128),
    ("nodes/patient/mil-mean.yaml", "nodes/heads/regression.yaml", 128),
    ("nodes/patient/abmil-gated.yaml", "nodes/heads/classification.yaml", 3),
    ("scripts/parity/mil-after.yaml", "nodes/heads/regression.yaml", 16),
]


def layers(spec, features):
    out = []
    for layer in spec or []:
        kind, value = (layer, None) if isinstance(layer, str) else next(iter(layer.items()))
        if kind == "dense":
            units = value if isinstance(value, int) else value["units"]
            out.append(nn.Linear(features, units))
            features = units
        elif kind == "relu":
            out.append(nn.ReLU())
        elif kind == "leaky_relu":
            out.append(nn.LeakyReLU(value))
        elif kind == "tanh":
            out.append(nn.Tanh())
        elif kind == "sigmoid":
            out.append(nn.Sigmoid())
        elif kind == "dropout":
            out.append(nn.Dropout(0.0))  # off: random masks cannot match
        else:
            raise SystemExit(f"parity_mil: layer '{kind}' not in the reference")
    return nn.Sequential(*out), features


class GatedAttention(nn.Module):
    """CLAM's Attn_Net_Gated with one attention branch."""

    def __init__(self, features, hidden, gated):
        super().__init__()
        self.gated = gated
        self.attention_a = nn.Sequential(nn.Linear(features, hidden), nn.Tanh())
        if gated:
            self.attention_b = nn.Sequential(nn.Linear(features, hidden), nn.Sigmoid())
        self.attention_c = nn.Linear(hidden, 1)

    def forward(self, h):
        a = self.attention_a(h)
        if self.gated:
            a = a * self.attention_b(h)
        return self.attention_c(a).squeeze(1)


class BagModel(nn.Module):
    def __init__(self, arch, head, features, outputs):
        super().__init__()
        self.instance, width = layers(arch.get("layers"), features)
        pool = arch["pool"] if isinstance(arch["pool"], dict) else {"type": arch["pool"]}
        self.kind = pool["type"]
        if self.kind != "mean":
            self.pool = GatedAttention(width, pool.get("hidden", 64), self.kind == "gated_attention")
        self.after, width = layers(arch.get("after"), width)
        head_layers = list(head["layers"])
        last = head_layers[-1]["dense"]
        head_layers[-1] = {"dense": dict(last, units=outputs) if isinstance(last, dict) else outputs}
        self.head, _ = layers(head_layers, width)

    def forward(self, x, sizes):
        h = self.instance(x)
        pooled, weights = [], []
        for bag in torch.split(h, sizes):
            if self.kind == "mean":
                alpha = torch.full((bag.shape[0],), 1.0 / bag.shape[0], dtype=bag.dtype)
            else:
                alpha = torch.softmax(self.pool(bag), dim=0)
            weights.append(alpha)
            pooled.append(alpha @ bag)
        return self.head(self.after(torch.stack(pooled))), torch.cat(weights)


def check(nic, arch_path, head_path, features, work, fixtures=None):
    out = os.path.join(work, os.path.basename(arch_path) + os.path.basename(head_path))
    subprocess.run([nic, "doctor", "parity", "--architecture", os.path.join(ROOT, arch_path), "--head", os.path.join(ROOT, head_path),
                    "--input", str(features), "--batch", "4", "--out", out], check=True)
    arch = yaml.safe_load(open(os.path.join(ROOT, arch_path)))
    head = yaml.safe_load(open(os.path.join(ROOT, head_path)))
    outputs = load_file(os.path.join(out, "outputs.safetensors"))
    model = BagModel(arch, head, features, outputs["eval_output"].shape[1])
    model.load_state_dict(load_file(os.path.join(out, "weights.safetensors")), strict=True)
    x, sizes = outputs["input"], [int(s) for s in outputs["bag_sizes"]]
    worst = {}
    model.eval()
    with torch.no_grad():
        y, alpha = model(x, sizes)
    y_eval = y
    worst["eval_output"] = (y - outputs["eval_output"]).abs().max().item()
    worst["attention"] = (alpha - outputs["attention"]).abs().max().item()
    model.train()
    y, _ = model(x, sizes)
    loss = ((y - outputs["target"]) ** 2).mean()
    loss.backward()
    worst["loss"] = abs(loss.item() - outputs["loss"].item())
    grad_rel = 0.0
    scale = max(outputs["grad." + name].abs().max().item() for name, _ in model.named_parameters())
    for name, p in model.named_parameters():
        g = outputs["grad." + name]
        # Relative to the largest gradient of the model: a zero-gradient bias (attention_c.bias: the
        # softmax ignores a shift) has rounding noise only.
        grad_rel = max(grad_rel, (p.grad - g).abs().max().item() / scale)
    ok = worst["eval_output"] <= 1e-5 and worst["attention"] <= 1e-5 and worst["loss"] <= 1e-5 and grad_rel <= 1e-4
    print(f"{'ok  ' if ok else 'FAIL'} {arch_path} + {head_path} ({features} features, bags {sizes}): "
          f"output {worst['eval_output']:.2e}, attention {worst['attention']:.2e}, loss {worst['loss']:.2e}, gradients (relative) {grad_rel:.2e}")
    if fixtures and ok:
        from parity_neural import write_fixture
        reference = {"torch.eval_output": y_eval, "torch.attention": alpha, "torch.loss": loss}
        reference.update({"torch.grad." + name: p.grad for name, p in model.named_parameters()})
        name = os.path.splitext(os.path.basename(arch_path))[0] + "+" + os.path.splitext(os.path.basename(head_path))[0]
        write_fixture(fixtures, name, "bag", os.path.join(ROOT, arch_path), os.path.join(ROOT, head_path),
                      load_file(os.path.join(out, "weights.safetensors")), outputs, reference, {"features": features})
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nic", default=os.path.join(ROOT, ".build/release/nic"))
    parser.add_argument("--write-fixtures", metavar="DIR", help="also store each case for ParityFixtureTests")
    args = parser.parse_args()
    torch.set_default_dtype(torch.float32)
    with tempfile.TemporaryDirectory() as work:
        results = [check(args.nic, *case, work, args.write_fixtures) for case in CASES]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
