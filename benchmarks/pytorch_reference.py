"""Seconds per CycleGAN iteration of an independent PyTorch implementation of the same networks and losses.

A yardstick for ``benchmarks/train_step.py``: the ResNet generator, the
PatchGAN discriminator, the least-squares GAN loss, the L1 cycle loss
(lambda 3) and the gradient-consistency loss in the authors' form (lambda
0.3), an image pool of 50 and Adam(2e-4, beta_1 0.5), written in PyTorch from
the architecture mr2ct documents (``ResnetGenerator``, ``PatchDiscriminator``,
``CycleGAN.train_step``), on the same random images and the same number of
threads. It prints the same table as ``train_step.py`` (median, min and max
seconds of one iteration after warm-up) for float32 and for bfloat16
autocast (PyTorch's mixed precision on CPU).

PyTorch is not a dependency of mr2ct: run this in a separate environment,

    python3 -m venv torchenv && torchenv/bin/pip install torch numpy
    torchenv/bin/python benchmarks/pytorch_reference.py --size 160 --filters 24 --blocks 6   # the cpu preset
    torchenv/bin/python benchmarks/pytorch_reference.py                                      # the paper size

and compare with ``python benchmarks/train_step.py`` with the same
``--size --filters --blocks``, alternating the two on an otherwise idle
machine.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import torch
from torch import nn


def residual_block(channels):
    return nn.Sequential(
        nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
        nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
    )


class Residual(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.body = residual_block(channels)

    def forward(self, x):
        return x + self.body(x)


def generator(filters, blocks, downsampling=2):
    layers = [nn.ReflectionPad2d(3), nn.Conv2d(1, filters, 7), nn.InstanceNorm2d(filters), nn.ReLU(True)]
    channels = filters
    for _ in range(downsampling):
        layers += [nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(channels * 2),
                   nn.ReLU(True)]
        channels *= 2
    layers += [Residual(channels) for _ in range(blocks)]
    for _ in range(downsampling):
        layers += [nn.ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1),
                   nn.InstanceNorm2d(channels // 2), nn.ReLU(True)]
        channels //= 2
    layers += [nn.ReflectionPad2d(3), nn.Conv2d(channels, 1, 7), nn.Tanh()]
    return nn.Sequential(*layers)


def discriminator(filters, num_layers=3):
    layers = [nn.Conv2d(1, filters, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
    channels = filters
    for i in range(1, num_layers + 1):
        out = filters * min(2**i, 8)
        layers += [nn.Conv2d(channels, out, 4, stride=2 if i < num_layers else 1, padding=1),
                   nn.InstanceNorm2d(out), nn.LeakyReLU(0.2, True)]
        channels = out
    layers += [nn.Conv2d(channels, 1, 4, padding=1)]
    return nn.Sequential(*layers)


def _central_gradients(x):
    padded = nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    gx = 0.5 * (padded[:, :, 1:-1, 2:] - padded[:, :, 1:-1, :-2])
    gy = 0.5 * (padded[:, :, 2:, 1:-1] - padded[:, :, :-2, 1:-1])
    return gx.abs(), gy.abs()


def _ncc(a, b, eps=1e-12):
    a = a.flatten(1) - a.flatten(1).mean(1, keepdim=True)
    b = b.flatten(1) - b.flatten(1).mean(1, keepdim=True)
    return (a * b).mean(1) * torch.rsqrt((a * a).mean(1) + eps) * torch.rsqrt((b * b).mean(1) + eps)


def gradient_consistency(a, b):
    """1 - the mean over x and y of the correlation of the absolute central-difference gradients."""
    ax, ay = _central_gradients(a.float())
    bx, by = _central_gradients(b.float())
    return (1.0 - 0.5 * (_ncc(ax, bx) + _ncc(ay, by))).mean()


class ImagePool:
    def __init__(self, size=50):
        self.size, self.images = size, []

    def query(self, image):
        image = image.detach()
        if len(self.images) < self.size:
            self.images.append(image)
            return image
        if random.random() < 0.5:
            i = random.randrange(self.size)
            self.images[i], image = image, self.images[i]
        return image


def lsgan(prediction, target):
    return ((prediction.float() - target) ** 2).mean()


def bench(precision, size, filters, blocks, iterations, warmup, channels_last):
    torch.manual_seed(0)
    random.seed(0)
    g_ct, g_mr = generator(filters, blocks), generator(filters, blocks)
    d_ct, d_mr = discriminator(filters), discriminator(filters)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for net in (g_ct, g_mr, d_ct, d_mr):
        net.to(memory_format=fmt).train()
    opt_g = torch.optim.Adam(list(g_ct.parameters()) + list(g_mr.parameters()), 2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(list(d_ct.parameters()) + list(d_mr.parameters()), 2e-4, betas=(0.5, 0.999))
    pool_ct, pool_mr = ImagePool(), ImagePool()
    gen = torch.Generator().manual_seed(0)
    mr = (torch.rand(1, 1, size, size, generator=gen) * 2 - 1).to(memory_format=fmt)
    ct = (torch.rand(1, 1, size, size, generator=gen) * 2 - 1).to(memory_format=fmt)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def step():
        with autocast:
            fake_ct, fake_mr = g_ct(mr), g_mr(ct)
            rec_mr, rec_ct = g_mr(fake_ct), g_ct(fake_mr)
            loss_g = (lsgan(d_ct(fake_ct), 1.0) + lsgan(d_mr(fake_mr), 1.0)
                      + 3.0 * ((rec_ct.float() - ct).abs().mean() + (rec_mr.float() - mr).abs().mean())
                      + 0.3 * 0.5 * (gradient_consistency(ct, fake_mr) + gradient_consistency(mr, fake_ct)))
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        with autocast:
            old_ct, old_mr = pool_ct.query(fake_ct), pool_mr.query(fake_mr)
            loss_d = 0.5 * (lsgan(d_ct(ct), 1.0) + lsgan(d_ct(old_ct), 0.0)) + 0.5 * (
                lsgan(d_mr(mr), 1.0) + lsgan(d_mr(old_mr), 0.0))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        return float(loss_g.detach()) + float(loss_d.detach())

    for _ in range(warmup):
        step()
    times = []
    for _ in range(iterations):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return "unknown CPU", set()
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((set(line.split(":", 1)[1].split()) for line in text.splitlines() if line.startswith("flags")), set())
    return model, flags


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--filters", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=9)
    parser.add_argument("--only", choices=["fp32", "bf16"], default=None)
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--no-channels-last", action="store_true", help="keep PyTorch's default NCHW layout")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, flags = cpu_name()
    marks = ", ".join(f"{flag} {'yes' if flag in flags else 'no'}" for flag in ("avx512f", "avx512_bf16", "amx_bf16"))
    print(f"CPU: {model}, {args.threads} threads; {marks}")
    print(f"PyTorch {torch.__version__} CycleGAN iteration, {args.size}x{args.size}, batch 1, "
          f"filters {args.filters}, {args.blocks} blocks, channels_last {not args.no_channels_last}")
    print(f"{'precision':<10}{'median s':>9}{'min s':>9}{'max s':>9}")
    for precision in [args.only] if args.only else ["fp32", "bf16"]:
        times = bench(precision, args.size, args.filters, args.blocks, args.iterations, args.warmup,
                      not args.no_channels_last)
        print(f"{precision:<10}{statistics.median(times):>9.3f}{min(times):>9.3f}{max(times):>9.3f}", flush=True)


if __name__ == "__main__":
    main()
