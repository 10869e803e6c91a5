#!/usr/bin/env python3
"""PyTorch reference of the seed 002/003 U-Net (module names as in seed 003:
enc1..enc4, bottleneck, up4..up1, dec4..dec1, final_conv).

Two uses, both optional (UME itself never needs Python):

  parity OUT_DIR  -- random weights (BatchNorm running statistics too) saved
                     as OUT_DIR/model.pth, a fixed input and the eval-mode
                     output as raw little-endian f32 (x.bin, y.bin), and
                     meta.json with the shapes. UME's tests load model.pth
                     through Burn's PyTorch import and compare outputs.
  bench           -- slices/s of inference and images/s of a training step
                     (Adam, BCE) at the given size, for `ume bench unet`.
                     Prints one JSON line.
"""
import argparse
import json
import pathlib
import time

import torch
import torch.nn as nn


class DoubleConv(nn.Module):
    def __init__(self, c_in, c_out):
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )

    def forward(self, x):
        return self.conv(x)


class UNet(nn.Module):
    def __init__(self, in_channels=1, out_channels=117, features=(32, 64, 128, 256), bottleneck=512):
        super().__init__()
        assert len(features) == 4, "the seed U-Net has four levels"
        f1, f2, f3, f4 = features
        self.enc1 = DoubleConv(in_channels, f1)
        self.enc2 = DoubleConv(f1, f2)
        self.enc3 = DoubleConv(f2, f3)
        self.enc4 = DoubleConv(f3, f4)
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = DoubleConv(f4, bottleneck)
        self.up4 = nn.ConvTranspose2d(bottleneck, f4, 2, stride=2)
        self.dec4 = DoubleConv(2 * f4, f4)
        self.up3 = nn.ConvTranspose2d(f4, f3, 2, stride=2)
        self.dec3 = DoubleConv(2 * f3, f3)
        self.up2 = nn.ConvTranspose2d(f3, f2, 2, stride=2)
        self.dec2 = DoubleConv(2 * f2, f2)
        self.up1 = nn.ConvTranspose2d(f2, f1, 2, stride=2)
        self.dec1 = DoubleConv(2 * f1, f1)
        self.final_conv = nn.Conv2d(f1, out_channels, 1)

    def forward(self, x):
        x1 = self.enc1(x)
        x2 = self.enc2(self.pool(x1))
        x3 = self.enc3(self.pool(x2))
        x4 = self.enc4(self.pool(x3))
        b = self.bottleneck(self.pool(x4))
        u4 = self.dec4(torch.cat([self.up4(b), x4], dim=1))
        u3 = self.dec3(torch.cat([self.up3(u4), x3], dim=1))
        u2 = self.dec2(torch.cat([self.up2(u3), x2], dim=1))
        u1 = self.dec1(torch.cat([self.up1(u2), x1], dim=1))
        return self.final_conv(u1)


def parity(args):
    torch.manual_seed(args.seed)
    model = UNet(args.in_channels, args.out_channels, args.features, args.bottleneck)
    # Non-trivial BatchNorm state, so the import of running stats is tested.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.eval()
    x = torch.randn(args.batch, args.in_channels, args.size, args.size)
    with torch.no_grad():
        y = model(x)
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / "model.pth")
    x.numpy().astype("<f4").tofile(out / "x.bin")
    y.numpy().astype("<f4").tofile(out / "y.bin")
    (out / "meta.json").write_text(json.dumps({
        "in_channels": args.in_channels,
        "out_channels": args.out_channels,
        "features": list(args.features),
        "bottleneck": args.bottleneck,
        "x_shape": list(x.shape),
        "y_shape": list(y.shape),
        "torch": torch.__version__,
    }, indent=1))


def bench(args):
    torch.set_num_threads(args.threads)
    model = UNet(args.in_channels, args.out_channels, args.features, args.bottleneck)
    model.eval()
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(args.batch, args.in_channels, args.size, args.size).to(memory_format=fmt)
    with torch.no_grad():
        model(x)  # warm-up
        t = time.perf_counter()
        for _ in range(args.reps):
            model(x)
        infer = args.reps * args.batch / (time.perf_counter() - t)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    xt = torch.randn(args.train_batch, args.in_channels, args.size, args.size).to(memory_format=fmt)
    yt = (torch.rand(args.train_batch, args.out_channels, args.size, args.size) > 0.5).float()
    loss_fn = nn.BCEWithLogitsLoss()

    def step():
        opt.zero_grad()
        loss = loss_fn(model(xt), yt)
        loss.backward()
        opt.step()

    step()  # warm-up
    t = time.perf_counter()
    for _ in range(args.train_reps):
        step()
    train = args.train_reps * args.train_batch / (time.perf_counter() - t)
    print(json.dumps({
        "torch": torch.__version__,
        "threads": args.threads,
        "inference_slices_per_s": infer,
        "train_images_per_s": train,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("mode", choices=["parity", "bench"])
    p.add_argument("out", nargs="?", default="unet_parity")
    p.add_argument("--in-channels", type=int, default=1)
    p.add_argument("--out-channels", type=int, default=117)
    p.add_argument("--features", type=lambda s: tuple(int(v) for v in s.split(",")), default=(32, 64, 128, 256))
    p.add_argument("--bottleneck", type=int, default=512)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-reps", type=int, default=3)
    p.add_argument("--channels-last", action="store_true")
    args = p.parse_args()
    parity(args) if args.mode == "parity" else bench(args)


if __name__ == "__main__":
    main()
