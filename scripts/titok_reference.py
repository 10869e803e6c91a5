#!/usr/bin/env python3
"""PyTorch reference of UME's TiTok-style tokenizer (src/models/tokenizer.rs).

The modules carry Burn's names (`encoder.layers.N.mha.query`, `pwff.linear_inner`,
`norm_1`/`norm_2`, ...) so that a state_dict saved here loads into UME through
Burn's PyTorch store with no key map. Burn's pre-norm block applies `norm_2`
before attention and `norm_1` before the feed-forward; this file does the same.

Two uses, both optional (UME itself never needs Python):

  parity OUT_DIR  -- a small tokenizer with random weights saved as
                     OUT_DIR/model.pth, its config as config.json, a fixed input
                     (x.bin) and what the reference computes from it: the
                     encoder's codes (z.bin), token ids (ids.json) and the
                     decoded frames (y.bin), raw little-endian f32.
  bench           -- frames/s of encode + decode (tokens and back) in eval mode
                     at the given config, for `ume bench tokenizer`. Prints one
                     JSON line.
"""
import argparse
import json
import pathlib
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Mha(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.query = nn.Linear(d, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.output = nn.Linear(d, d)

    def forward(self, x, key=None, value=None):
        """Self-attention of x, or x attending to key/value (Burn's MhaInput)."""
        key = x if key is None else key
        value = key if value is None else value
        b, s, d = x.shape
        h = self.heads

        def split(t):
            return t.reshape(b, t.shape[1], h, d // h).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(key)), split(self.value(value))
        w = torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1)
        return self.output((w @ v).transpose(1, 2).reshape(b, s, d))


class Pwff(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.linear_inner = nn.Linear(d, 4 * d)
        self.linear_outer = nn.Linear(4 * d, d)

    def forward(self, x):
        return self.linear_outer(F.gelu(self.linear_inner(x)))


class Block(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.mha = Mha(d, heads)
        self.pwff = Pwff(d)
        self.norm_1 = nn.LayerNorm(d)
        self.norm_2 = nn.LayerNorm(d)

    def forward(self, x):
        x = x + self.mha(self.norm_2(x))
        return x + self.pwff(self.norm_1(x))


class Blocks(nn.Module):
    def __init__(self, d, heads, depth):
        super().__init__()
        self.layers = nn.ModuleList(Block(d, heads) for _ in range(depth))

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class Codebook(nn.Module):
    def __init__(self, n, c):
        super().__init__()
        self.entries = nn.Parameter(torch.randn(n, c) * 0.02)


def l2(x):
    return x / x.pow(2).sum(-1, keepdim=True).sqrt().clamp_min(1e-6)


class Titok(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        h, w = cfg["image_size"]
        p = cfg["patch_size"]
        self.p, self.grid = p, (h // p, w // p)
        n, k = (h // p) * (w // p), cfg["num_latent_tokens"]
        de, dd = cfg["encoder_width"], cfg["decoder_width"]
        rnd = lambda *s: nn.Parameter(torch.randn(*s) * 0.02)  # noqa: E731
        self.patch_embed = nn.Linear(p * p, de)
        self.patch_pos = rnd(n, de)
        self.latents = rnd(k, de)
        self.latent_pos = rnd(k, de)
        self.encoder = Blocks(de, cfg["encoder_heads"], cfg["encoder_depth"])
        self.encoder_norm = nn.LayerNorm(de)
        self.to_code = nn.Linear(de, cfg["code_dim"])
        self.codebook = Codebook(cfg["codebook_size"], cfg["code_dim"])
        self.from_code = nn.Linear(cfg["code_dim"], dd)
        self.mask_token = rnd(dd)
        self.decoder_pos = rnd(k + n, dd)
        self.decoder = Blocks(dd, cfg["decoder_heads"], cfg["decoder_depth"])
        self.decoder_norm = nn.LayerNorm(dd)
        self.to_pixels = nn.Linear(dd, p * p)

    def patchify(self, x):
        b, _, h, w = x.shape
        p, (gh, gw) = self.p, self.grid
        return x.reshape(b, gh, p, gw, p).permute(0, 1, 3, 2, 4).reshape(b, gh * gw, p * p)

    def encode(self, x):
        t = self.patch_embed(self.patchify(x)) + self.patch_pos
        b, n = t.shape[0], t.shape[1]
        lat = (self.latents + self.latent_pos).expand(b, -1, -1)
        out = self.encoder_norm(self.encoder(torch.cat([t, lat], 1)))
        return self.to_code(out[:, n:])

    def tokenize(self, z):
        return (l2(z) @ l2(self.codebook.entries).T).argmax(-1)

    def detokenize(self, ids):
        codes = l2(self.codebook.entries)[ids]
        tokens = self.from_code(codes)
        b, k, dd = tokens.shape
        n = self.grid[0] * self.grid[1]
        masks = self.mask_token.expand(b, n, dd)
        out = self.decoder_norm(self.decoder(torch.cat([tokens, masks], 1) + self.decoder_pos))
        px = self.to_pixels(out[:, k:])
        p, (gh, gw) = self.p, self.grid
        return px.reshape(b, gh, gw, p, p).permute(0, 1, 3, 2, 4).reshape(b, 1, gh * p, gw * p)


PARITY_CONFIG = {
    "image_size": [16, 24],
    "patch_size": 4,
    "num_latent_tokens": 6,
    "codebook_size": 32,
    "code_dim": 5,
    "encoder_width": 32,
    "encoder_depth": 2,
    "encoder_heads": 4,
    "decoder_width": 24,
    "decoder_depth": 2,
    "decoder_heads": 2,
    "commitment": 0.25,
}


def parity(out, seed):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = Titok(PARITY_CONFIG).eval()
    with torch.no_grad():
        # Norms with non-trivial affine parameters, so their mapping is checked.
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.normal_(1.0, 0.2)
                m.bias.normal_(0.0, 0.2)
        # A codebook whose entries are far apart, so the nearest entry is never
        # a near tie that float rounding could flip.
        model.codebook.entries.normal_(0.0, 1.0)
        h, w = PARITY_CONFIG["image_size"]
        x = torch.rand(3, 1, h, w)
        z = model.encode(x)
        ids = model.tokenize(z)
        y = model.detokenize(ids)
    torch.save(model.state_dict(), out / "model.pth")
    (out / "config.json").write_text(json.dumps(PARITY_CONFIG, indent=1) + "\n")
    x.numpy().astype("<f4").tofile(out / "x.bin")
    z.numpy().astype("<f4").tofile(out / "z.bin")
    y.numpy().astype("<f4").tofile(out / "y.bin")
    (out / "ids.json").write_text(json.dumps(ids.tolist()) + "\n")
    (out / "meta.json").write_text(
        json.dumps({"torch": torch.__version__, "x_shape": list(x.shape)}) + "\n"
    )


def bench(args):
    cfg = json.loads(pathlib.Path(args.config).read_text())
    cfg = cfg.get("model", cfg)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Titok(cfg).eval()
    h, w = cfg["image_size"]
    x = torch.rand(args.batch, 1, h, w)
    with torch.inference_mode():
        model.detokenize(model.tokenize(model.encode(x)))  # warm-up
        best = float("inf")
        for _ in range(args.reps):
            t0 = time.perf_counter()
            model.detokenize(model.tokenize(model.encode(x)))
            best = min(best, time.perf_counter() - t0)
    print(json.dumps({"torch": torch.__version__, "frames_per_s": args.batch / best}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parity")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=7)
    b = sub.add_parser("bench")
    b.add_argument("--config", required=True)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--batch", type=int, default=8)
    b.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    if args.cmd == "parity":
        parity(args.out, args.seed)
    else:
        bench(args)


if __name__ == "__main__":
    main()
