"""The DMFN generator, discriminator and training step rebuilt in PyTorch from docs/design.md, for timing only.

Imports nothing but torch and NumPy, so it runs under any interpreter that has PyTorch, separate
from the project's environment (the project itself never depends on PyTorch). Weights are random:
only the architecture (and so the arithmetic) matters for timing.

As a program it is a timing worker driven over stdin/stdout by `scripts/bench_common.py`: one JSON
request per line, one JSON reply per line, so that a TensorFlow benchmark can interleave its own
repeats with PyTorch's within one run (fair ratios on a machine whose load changes):

    {"op": "build", "block": "official", "nf": 64, "n_blocks": 8, "size": 256, "batch": 1}
    {"op": "time"}        -> {"seconds": 0.59}
    {"op": "info"}        -> {"torch": "2.13.0+cpu", "threads": 2}
    {"op": "build_train", "block": "official", "nf": 64, "n_blocks": 8, "size": 256, "batch": 4}
    {"op": "time_train"}  -> {"seconds": 12.7}   (one G update and one D update, docs/design.md §5-6)

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
    # Symmetric zero padding of dilation * (k - 1) / 2, as docs/design.md §2 prescribes.
    return nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=dilation * (kernel_size - 1) // 2, dilation=dilation)


class _InstanceNorm(nn.Module):
    """Instance normalisation without affine parameters, eps 1e-5, for any channel count."""

    def forward(self, x):
        return nn.functional.instance_norm(x, eps=1e-5)


def _norm():
    return _InstanceNorm()


class DMFB(nn.Module):
    """One dense multi-scale fusion block, docs/design.md §2a ("paper") or §2b ("official").

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
    # ConvTranspose2d(4, stride 2, padding 1) doubles the size (docs/design.md §2, "crop 1 each side").
    return [nn.ConvTranspose2d(cin, cout, 4, stride=2, padding=1), _norm(), nn.ReLU(), *_conv_norm_relu(cout, cout, 3)]


def build_generator(nf: int = 64, n_blocks: int = 8, block: str = "paper") -> nn.Module:
    """The DMFN generator of docs/design.md §2 as an NCHW `nn.Sequential`: [B, 4, H, W] -> [B, 3, H, W].

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


def _stage(cin, cout):
    return [nn.Conv2d(cin, cout, 5, stride=2, padding=2), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2)]


class Discriminator(nn.Module):
    """The global + local discriminator of docs/design.md §3; returns (logits [B, 1], five local features).

    Args:
        nf: base width.
        size: the full image side; the local branch sees size / 2 crops.
    """

    def __init__(self, nf: int = 64, size: int = 256):
        super().__init__()
        widths = [nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf, 8 * nf]
        self.global_stages = nn.Sequential(*[layer for i in range(6) for layer in _stage(([3] + widths)[i], widths[i])])
        self.local_stages = nn.ModuleList([nn.Sequential(*_stage(([3] + widths)[i], widths[i])) for i in range(5)])
        self.global_dense = nn.Linear(8 * nf * (size // 64) ** 2, 512)
        self.local_dense = nn.Linear(8 * nf * (size // 64) ** 2, 512)
        self.head = nn.Sequential(nn.LeakyReLU(0.2), nn.Linear(1024, 1))

    def forward(self, image, local_crop):
        features = []
        x = local_crop
        for stage in self.local_stages:
            x = stage(x)
            features.append(x)
        local = self.local_dense(x.flatten(1))
        whole = self.global_dense(self.global_stages(image).flatten(1))
        return self.head(torch.cat([local, whole], dim=1)), features


def build_vgg19_features() -> nn.ModuleList:
    """VGG19's convolutions up to relu5_1 (random weights: they do not change the cost), as five
    slices ending at relu1_1, relu2_1, relu3_1, relu4_1 and relu5_1."""
    plan = [[64], [64, "M", 128], [128, "M", 256], [256, 256, 256, "M", 512], [512, 512, 512, "M", 512]]
    slices, cin = [], 3
    for widths in plan:
        layers = []
        for width in widths:
            if width == "M":
                layers.append(nn.MaxPool2d(2))
            else:
                layers += [nn.Conv2d(cin, width, 3, padding=1), nn.ReLU()]
                cin = width
        slices.append(nn.Sequential(*layers))
    for parameter in (p for s in slices for p in s.parameters()):
        parameter.requires_grad_(False)
    return nn.ModuleList(slices)


def _vgg(slices, x):
    features = []
    for layer in slices:
        x = layer(x)
        features.append(x)
    return features


def _crop(x, boxes, half):
    return torch.stack([x[i, :, top : top + half, left : left + half] for i, (top, left) in enumerate(boxes)])


def _centres(responses):
    # docs/design.md §5: per image and channel, the probability-weighted mean of normalised coordinates.
    b, c, h, w = responses.shape
    p = responses + 1e-7
    p = p / p.sum(dim=(2, 3), keepdim=True)
    rows = 2 * torch.arange(h, dtype=p.dtype) / h - 1
    cols = 2 * torch.arange(w, dtype=p.dtype) / w - 1
    return torch.stack([(p.sum(3) * rows).sum(2), (p.sum(2) * cols).sum(2)], dim=-1)


def _ragan(bce, real, fake, real_label):
    return 0.5 * (bce(real - fake.mean(), torch.full_like(real, real_label)) + bce(fake - real.mean(), torch.full_like(fake, 1 - real_label)))


class TrainStep:
    """One reference training step (docs/design.md §5, §6): a G update with every loss term, then a D update.

    Args:
        block: "paper" or "official".
        nf: base width of G and D.
        n_blocks: DMFBs in G.
        size: image side.
        batch: batch size.
    """

    def __init__(self, block, nf, n_blocks, size, batch):
        torch.manual_seed(0)
        self.generator = build_generator(nf, n_blocks, block).train()
        self.discriminator = Discriminator(nf, size).train()
        self.vgg = build_vgg19_features().eval()
        self.g_optimizer = torch.optim.Adam(self.generator.parameters(), 2e-4, betas=(0.5, 0.999))
        self.d_optimizer = torch.optim.Adam(self.discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
        rng = np.random.default_rng(0)
        self.half = size // 2
        self.image = torch.from_numpy(np.tanh(rng.normal(size=(batch, 3, size, size))).astype("float32"))
        self.mask = torch.zeros(batch, 1, size, size)
        self.boxes = [tuple(int(v) for v in rng.integers(0, size - self.half + 1, size=2)) for _ in range(batch)]
        for i, (top, left) in enumerate(self.boxes):
            self.mask[i, :, top + size // 16 : top + self.half - size // 16, left + size // 16 : left + self.half - size // 16] = 1
        self.vgg_weights = [1000 / c**2 for c in (64, 128, 256, 512, 512)]
        self.dis_weights = [1000 / c**2 for c in (nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf)]
        self.bce = nn.BCEWithLogitsLoss()

    def _discriminate(self, x):
        return self.discriminator(x, _crop(x, self.boxes, self.half))

    def step(self):
        image, mask = self.image, self.mask
        with torch.no_grad():
            vgg_real = _vgg(self.vgg, image)
        raw = self.generator(torch.cat([image * (1 - mask), mask], dim=1))
        output = mask * raw + (1 - mask) * image
        vgg_fake = _vgg(self.vgg, output)
        fake_logits, dis_fake = self._discriminate(output)
        real_logits, dis_real = self._discriminate(image)
        real_logits, dis_real = real_logits.detach(), [f.detach() for f in dis_real]
        error = ((output - image) ** 2).mean(dim=1, keepdim=True).detach()
        low, high = error.amin(dim=(2, 3), keepdim=True), error.amax(dim=(2, 3), keepdim=True)
        guidance = torch.where(high > low, (error - low) / (high - low).clamp_min(1e-12), torch.zeros_like(error))
        guidance = [guidance, nn.functional.avg_pool2d(guidance, 2)]
        self_guided = sum(w * (m * (r - f).abs()).mean() for w, m, r, f in zip(self.vgg_weights, guidance, vgg_real, vgg_fake))
        fm_vgg = sum(w * (r - f).abs().mean() for w, r, f in zip(self.vgg_weights, vgg_real, vgg_fake))
        fm_dis = sum(w * (r - f).abs().mean() for w, r, f in zip(self.dis_weights, dis_real, dis_fake))
        align = ((_centres(vgg_fake[3]) - _centres(vgg_real[3])) ** 2).mean()
        adv = _ragan(self.bce, real_logits, fake_logits, 0.0)
        g_loss = (output - image).abs().mean() + 25 * (self_guided + fm_vgg) + 5 * fm_dis + 0.003 * adv + align
        self.g_optimizer.zero_grad(set_to_none=True)
        g_loss.backward()
        self.g_optimizer.step()

        fake = output.detach()
        real_logits, _ = self._discriminate(image)
        fake_logits, _ = self._discriminate(fake)
        d_loss = _ragan(self.bce, real_logits, fake_logits, 1.0)
        self.d_optimizer.zero_grad(set_to_none=True)
        d_loss.backward()
        self.d_optimizer.step()


class _Worker:
    """Answers build/time/info requests; holds one model and one input batch at a time."""

    def __init__(self):
        self.model = None
        self.inputs = None
        self.train_step = None

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
        if op == "build_train":
            self.train_step = TrainStep(request["block"], request["nf"], request["n_blocks"], request["size"], request["batch"])
            return {"built": True}
        if op == "time_train":
            if self.train_step is None:
                return {"error": "no training step: send a build_train request first"}
            start = time.perf_counter()
            self.train_step.step()
            return {"seconds": time.perf_counter() - start}
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
        try:
            reply = worker.handle(json.loads(line))
        except Exception as error:  # reported to the driving benchmark, which raises it there
            reply = {"error": f"{type(error).__name__}: {error}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
