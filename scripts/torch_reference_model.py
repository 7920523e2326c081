"""The DMFN generator rebuilt in PyTorch from SPEC.md §2, for timing comparisons only.

Imports nothing but torch and NumPy, so it runs under any interpreter that has PyTorch, separate
from the project's environment (the project itself never depends on PyTorch). Weights are random:
only the architecture (and so the arithmetic) matters for timing.

As a program it is a timing worker driven over stdin/stdout by `scripts/bench_common.py`: one JSON
request per line, one JSON reply per line, so that a TensorFlow benchmark can interleave its own
repeats with PyTorch's within one run (fair ratios on a machine whose load changes):

    {"op": "build", "block": "official", "nf": 64, "n_blocks": 8, "size": 256, "batch": 1}
    {"op": "time"}        -> {"seconds": 0.59}
    {"op": "info"}        -> {"torch": "2.13.0+cpu", "threads": 2}

Usage (by hand):

    echo '{"op": "info"}' | /tmp/torchvenv/bin/python scripts/torch_reference_model.py
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import torch
from torch import nn

DILATIONS = (1, 2, 4, 8)


def _conv(cin, cout, kernel_size, stride=1, dilation=1):
    # Symmetric zero padding of dilation * (k - 1) / 2, as SPEC §2 prescribes.
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2, dilation=dilation)


class _InstanceNorm(nn.Module):
    """Instance normalisation without affine parameters, eps 1e-5, for any channel count."""

    def forward(self, x):
        return nn.functional.instance_norm(x, eps=1e-5)


def _norm():
    return _InstanceNorm()


class DMFB(nn.Module):
    """One dense multi-scale fusion block, SPEC §2a ("paper") or §2b ("official").

    Args:
        channels: input and output channels C; the branches work at C / 4.
        block: "paper" or "official".
    """

    def __init__(self, channels: int, block: str):
        super().__init__()
        inner = channels // 4
        self.block = block
        self.c1 = _conv(channels, inner, 3)
        self.dilated = nn.ModuleList([_conv(inner, inner, 3, dilation=d) for d in DILATIONS])
        if block == "paper":
            self.combination = nn.ModuleList([_conv(inner, inner, 3) for _ in range(3)])
            self.c2 = _conv(channels, channels, 1)
        else:
            self.combination = nn.ModuleList()
            self.c2 = _conv(channels, channels, 3)
        self.norm = _norm()
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.norm(self.c1(x)))
        if self.block == "paper":
            branches = [self.relu(self.norm(conv(h))) for conv in self.dilated]
            fused = [branches[0]]
            for combine, branch in zip(self.combination, branches[1:]):
                fused.append(combine(fused[-1] + branch))
        else:
            branches = [conv(h) for conv in self.dilated]
            fused = [branches[0]]
            for branch in branches[1:]:
                fused.append(fused[-1] + branch)
        z = self.relu(self.norm(torch.cat(fused, dim=1)))
        return x + self.norm(self.c2(z))


def _conv_norm_relu(cin, cout, kernel_size, stride=1):
    return [_conv(cin, cout, kernel_size, stride), _norm(), nn.ReLU()]


def _upsample(cin, cout):
    # ConvTranspose2d(4, stride 2, padding 1) doubles the size (SPEC §2, "crop 1 each side").
    return [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _norm(), nn.ReLU(), *_conv_norm_relu(cout, cout, 3)]


def build_generator(nf: int = 64, n_blocks: int = 8, block: str = "paper") -> nn.Module:
    """The DMFN generator of SPEC §2 as an NCHW `nn.Sequential`: [B, 4, H, W] -> [B, 3, H, W].

    Args:
        nf: base width.
        n_blocks: number of DMFBs.
        block: "paper" or "official".

    Example:

    >>> build_generator(nf=8, n_blocks=1)(torch.zeros(1, 4, 32, 32)).shape
    torch.Size([1, 3, 32, 32])
    """
    layers = [_conv(4, nf, 5), nn.ReLU()]
    layers += _conv_norm_relu(nf, 2 * nf, 3, stride=2)
    layers += _conv_norm_relu(2 * nf, 2 * nf, 3)
    layers += _conv_norm_relu(2 * nf, 4 * nf, 3, stride=2)
    layers += [DMFB(4 * nf, block) for _ in range(n_blocks)]
    layers += _conv_norm_relu(4 * nf, 4 * nf, 3)
    layers += _upsample(4 * nf, 2 * nf)
    layers += _upsample(2 * nf, nf)
    layers += [_conv(nf, 3, 3), nn.Tanh()]
    return nn.Sequential(*layers)


class _Worker:
    """Answers build/time/info requests; holds one model and one input batch at a time."""

    def __init__(self):
        self.model = None
        self.inputs = None

    def handle(self, request: dict) -> dict:
        op = request.get("op")
        if op == "info":
            return {"torch": torch.__version__, "threads": torch.get_num_threads()}
        if op == "build":
            torch.manual_seed(0)
            self.model = build_generator(request["nf"], request["n_blocks"], request["block"]).eval()
            size = request["size"]
            rng = np.random.default_rng(0)
            self.inputs = torch.from_numpy(rng.uniform(-1, 1, (request["batch"], 4, size, size)).astype("float32"))
            return {"built": True}
        if op == "time":
            if self.model is None:
                return {"error": "no model: send a build request first"}
            with torch.inference_mode():
                start = time.perf_counter()
                self.model(self.inputs)
                return {"seconds": time.perf_counter() - start}
        return {"error": f"unknown op {op!r}"}


def main() -> None:
    worker = _Worker()
    for line in sys.stdin:
        if not line.strip():
            continue
        print(json.dumps(worker.handle(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
