#!/usr/bin/env python3
"""PyTorch reference of the UME 4D encoder (src/models/encoder/, seed 000).

The modules carry Burn's names (`patch.N`, `intra.layers.N.mha.query`,
`inter.output`, `frame_pos`, ...) so that a state_dict saved here loads into UME
through Burn's PyTorch store with no key map. The transformer blocks are the
tokenizer reference's (scripts/titok_reference.py), which are Burn's pre-norm
blocks. Keyframes are chosen as UME chooses them: fused scores, then the top K
with temporal non-maximum suppression (a gap of frames / 2K).

Two uses, both optional (UME itself never needs Python):

  parity OUT_DIR  -- a small encoder with random weights saved as
                     OUT_DIR/model.pth, its config as config.json, a fixed input
                     (x.bin) and what the reference computes from it: the fused
                     keyframe scores (fused.bin), the keyframes (keyframes.json),
                     the context tokens (context.bin), the modality gates
                     (gates.bin), the segmentation logits of frame 2 (seg.bin)
                     and the VoCo embedding of the input (voco.bin), raw
                     little-endian f32.
  bench           -- seconds per volume to the keyframe context, and with every
                     frame segmented, at the given config, for `ume bench
                     encoder`. Prints one JSON line.
"""
import argparse
import json
import math
import pathlib
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from titok_reference import Blocks, Mha  # noqa: E402


def uniform_scores(frames, k):
    """keyframes::uniform_scores: a tent around K evenly spaced frames."""
    if k >= frames:
        pos = list(range(frames))
    elif k == 1:
        pos = [(frames - 1) // 2]
    else:
        pos = sorted({math.floor(i * (frames - 1) / (k - 1) + 0.5) for i in range(k)})
    spacing = (frames - 1) / (len(pos) - 1) if len(pos) > 1 else float(frames)
    half = max(spacing / 2.0, 1e-9)
    return [max(max(1.0 - abs(t - p) / half, 0.0) for p in pos) for t in range(frames)]


def spread_top_k(scores, k):
    """keyframes::spread_top_k along slices (no wrap-around)."""
    n = len(scores)
    k = min(k, n)
    gap = max(n // (2 * max(k, 1)), 1)
    order = sorted(range(n), key=lambda t: (-scores[t], t))
    chosen = []
    for t in order:
        if len(chosen) == k:
            break
        if all(abs(c - t) >= gap for c in chosen):
            chosen.append(t)
    for t in order:
        if len(chosen) == k:
            break
        if t not in chosen:
            chosen.append(t)
    return sorted(chosen)


def unit_rows(s):
    return s / s.max(1, keepdim=True).values.clamp_min(1e-12)


class UmeEncoder(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d, p, m = cfg["embed_dim"], cfg["patch_size"], cfg["input_channels"]
        h, w = cfg["image_size"]
        self.p, self.grid, self.classes = p, (h // p, w // p), cfg["num_classes"]
        self.compression = cfg["compression_ratio"]
        n = self.grid[0] * self.grid[1]
        rnd = lambda *s: nn.Parameter(torch.randn(*s) * 0.02)  # noqa: E731
        self.patch = nn.ModuleList(nn.Conv2d(1, d, p, stride=p) for _ in range(m))
        self.modality_embed = rnd(m, d)
        self.patch_pos = rnd(n, d)
        self.frame_pos = nn.Embedding(cfg["max_frames"], d)
        self.attn_query = rnd(d)
        self.attn_hidden = nn.Linear(d, d)
        self.attn_key = nn.Linear(d, d)
        self.fusion_logits = nn.Parameter(torch.zeros(3))
        self.intra = Blocks(d, cfg["num_heads"], 1)
        self.inter = Mha(d, cfg["num_heads"])
        self.gate = nn.Linear(d, 1)
        self.cls = rnd(d)
        self.trunk = Blocks(d, cfg["num_heads"], cfg["num_layers"])
        self.norm = nn.LayerNorm(d)
        self.seg_cross = Mha(d, cfg["num_heads"])
        self.seg_norm = nn.LayerNorm(d)
        self.seg_head = nn.Linear(d, p * p * cfg["num_classes"])
        self.voco_hidden = nn.Linear(d, d)
        self.voco_out = nn.Linear(d, cfg["voco_dim"])

    def embed(self, x):
        b, m, t, h, w = x.shape
        n = self.grid[0] * self.grid[1]
        per = []
        for k in range(m):
            tok = self.patch[k](x[:, k].reshape(b * t, 1, h, w))
            d = tok.shape[1]
            per.append(tok.reshape(b * t, d, n).transpose(1, 2).reshape(b, t, n, d))
        tokens = torch.stack(per, 1)
        d = tokens.shape[-1]
        return tokens + self.modality_embed.reshape(1, m, 1, 1, d) + self.patch_pos.reshape(1, 1, 1, n, d)

    def select(self, tokens, k):
        b, _, t, _, d = tokens.shape
        k = max(1, min(k, t))
        summary = tokens.mean(3).mean(1)
        uniform = torch.tensor(uniform_scores(t, k), dtype=torch.float32).expand(b, t)
        centred = summary - summary.mean(1, keepdim=True)
        if t > 1:
            content = unit_rows(centred.pow(2).sum(2).clamp_min(1e-12).sqrt())
        else:
            content = torch.ones(b, t)
        keys = self.attn_key(F.gelu(self.attn_hidden(centred)))
        logits = (keys @ self.attn_query.reshape(d, 1)).reshape(b, t) / math.sqrt(d)
        attention = unit_rows(torch.softmax(logits, 1))
        wts = torch.softmax(self.fusion_logits, 0)
        fused = uniform * wts[0] + content * wts[1] + attention * wts[2]
        indices = [spread_top_k(fused[i].tolist(), k) for i in range(b)]
        hard = torch.zeros(b, t)
        for i, idx in enumerate(indices):
            hard[i, idx] = 1.0
        soft = torch.softmax(fused * 10.0, 1) * k
        mask = hard + soft - soft.detach()
        return fused, indices, mask

    def context(self, tokens, indices, mask):
        b, m, _, n, d = tokens.shape
        k = len(indices[0])
        picked = []
        for i, idx in enumerate(indices):
            ids = torch.tensor(idx)
            frames = tokens[i : i + 1][:, :, ids] + self.frame_pos(ids).reshape(1, 1, k, 1, d)
            picked.append(frames * mask[i, ids].reshape(1, 1, k, 1, 1))
        x = torch.cat(picked, 0)
        r = self.compression
        nc = n // r
        x = x.reshape(b, m, k, nc, r, d).mean(4).reshape(b, m, k * nc, d)
        x = self.intra(x.reshape(b * m, k * nc, d)).reshape(b, m, k * nc, d)
        gates = torch.softmax(self.gate(x.mean(2)).reshape(b, m), 1)
        per_position = x.transpose(1, 2).reshape(b * k * nc, m, d)
        mixed = (self.inter(per_position) + per_position).reshape(b, k * nc, m, d)
        fused = (mixed * gates.reshape(b, 1, m, 1)).sum(2)
        seq = torch.cat([self.cls.reshape(1, 1, d).expand(b, 1, d), fused], 1)
        return self.norm(self.trunk(seq)), gates

    def segment_frame(self, tokens, t, context):
        b, m, _, n, d = tokens.shape
        q = tokens[:, :, t].sum(1) + self.frame_pos.weight[t].reshape(1, 1, d)
        h = self.seg_norm(q + self.seg_cross(q, context, context))
        p, (gh, gw), c = self.p, self.grid, self.classes
        out = self.seg_head(h).reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)
        return out.reshape(b, c, gh * p, gw * p)

    def voco(self, crops):
        b, m, t, h, w = crops.shape
        d, p = self.cls.shape[0], self.p
        n = (h // p) * (w // p)
        per = [
            self.patch[k](crops[:, k].reshape(b * t, 1, h, w)).reshape(b * t, d, n).transpose(1, 2).reshape(b, t, n, d)
            for k in range(m)
        ]
        tokens = torch.stack(per, 1) + self.modality_embed.reshape(1, m, 1, 1, d)
        ctx, _ = self.context(tokens, [list(range(t))] * b, torch.ones(b, t))
        z = self.voco_out(F.gelu(self.voco_hidden(ctx[:, 0])))
        return z / z.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12)


PARITY_CONFIG = {
    "input_channels": 2,
    "embed_dim": 32,
    "num_heads": 4,
    "num_layers": 2,
    "patch_size": 4,
    "image_size": [16, 16],
    "num_classes": 3,
    "max_keyframes": 3,
    "compression_ratio": 4,
    "max_frames": 12,
    "voco_dim": 8,
    "label_ids": [],
}


def parity(out, seed):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = PARITY_CONFIG
    for s in range(seed, seed + 100):
        torch.manual_seed(s)
        model = UmeEncoder(cfg).eval()
        with torch.no_grad():
            for mod in model.modules():
                if isinstance(mod, nn.LayerNorm):
                    mod.weight.normal_(1.0, 0.2)
                    mod.bias.normal_(0.0, 0.2)
            model.fusion_logits.normal_(0.0, 1.0)
            x = torch.randn(2, cfg["input_channels"], 7, *cfg["image_size"])
            tokens = model.embed(x)
            fused, indices, mask = model.select(tokens, cfg["max_keyframes"])
        # Keyframes are a hard choice: keep weights whose scores are far
        # from ties, so float rounding cannot flip the choice in UME.
        srt = fused.sort(1).values
        if (srt[:, 1:] - srt[:, :-1]).min() > 1e-3:
            break
    with torch.no_grad():
        context, gates = model.context(tokens, indices, mask)
        seg = model.segment_frame(tokens, 2, context)
        voco = model.voco(x)
    torch.save(model.state_dict(), out / "model.pth")
    (out / "config.json").write_text(json.dumps(cfg, indent=1) + "\n")
    for name, t in [("x", x), ("fused", fused), ("context", context), ("gates", gates), ("seg", seg), ("voco", voco)]:
        t.numpy().astype("<f4").tofile(out / f"{name}.bin")
    (out / "keyframes.json").write_text(json.dumps(indices) + "\n")
    (out / "meta.json").write_text(json.dumps({"torch": torch.__version__, "x_shape": list(x.shape)}) + "\n")


def bench(args):
    cfg = json.loads(pathlib.Path(args.config).read_text())
    cfg = cfg.get("model", cfg)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = UmeEncoder(cfg).eval()
    h, w = cfg["image_size"]
    x = torch.randn(1, cfg["input_channels"], args.frames, h, w)
    k = cfg["max_keyframes"]

    def forward():
        tokens = model.embed(x)
        fused, indices, mask = model.select(tokens, k)
        return tokens, model.context(tokens, indices, mask)[0]

    def segment_all():
        tokens, context = forward()
        for t in range(args.frames):
            model.segment_frame(tokens, t, context)

    def median(f):
        f()
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            f()
            times.append(time.perf_counter() - t0)
        return sorted(times)[len(times) // 2]

    with torch.inference_mode():
        result = {"torch": torch.__version__, "forward_s": median(forward), "segment_all_s": median(segment_all)}
    print(json.dumps(result))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("parity")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=3)
    b = sub.add_parser("bench")
    b.add_argument("--config", required=True)
    b.add_argument("--frames", type=int, default=128)
    b.add_argument("--threads", type=int, default=1)
    b.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    if args.cmd == "parity":
        parity(args.out, args.seed)
    else:
        bench(args)


if __name__ == "__main__":
    main()
