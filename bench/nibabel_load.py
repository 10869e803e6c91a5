"""Reference timings for `ume bench load`: nibabel loading files the
stricter way (np.asarray(img.dataobj), scaling applied) plus min/max/mean.

Usage: python3 bench/nibabel_load.py REPEATS GROUP_NAME FILE [FILE ...] [-- GROUP_NAME FILE ...]
Prints one JSON object {group: best_seconds}. Only the benchmark runs this.
"""
import json
import sys
import time

import nibabel as nib
import numpy as np


def load_group(files):
    for f in files:
        a = np.asarray(nib.load(f).dataobj)
        a.min(), a.max(), a.mean()


def main():
    repeats = int(sys.argv[1])
    groups, cur = [], None
    for arg in sys.argv[2:]:
        if arg == "--":
            cur = None
        elif cur is None:
            cur = (arg, [])
            groups.append(cur)
        else:
            cur[1].append(arg)
    out = {}
    for name, files in groups:
        best = float("inf")
        for _ in range(repeats):
            t = time.perf_counter()
            load_group(files)
            best = min(best, time.perf_counter() - t)
        out[name] = best
    print(json.dumps(out))


if __name__ == "__main__":
    main()
