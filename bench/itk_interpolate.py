"""Reference for `ume bench annotation`: ITK's MorphologicalContourInterpolator
(pip install itk-morphologicalcontourinterpolation) filling the slices
between annotated slices of a label map, along one axis.

Usage: python3 bench/itk_interpolate.py IN.nii.gz OUT.nii.gz AXIS REPEATS
AXIS is the NIfTI voxel axis (0, 1, 2). Prints {"seconds": best} as JSON; the
time excludes reading and writing. Only the benchmark runs this.
"""
import json
import sys
import time

import itk


def main():
    src, dst, axis, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    image = itk.imread(src, itk.UC)
    best = None
    out = None
    for _ in range(repeats):
        f = itk.MorphologicalContourInterpolator.New(image)
        f.SetAxis(axis)
        start = time.perf_counter()
        f.Update()
        t = time.perf_counter() - start
        best = t if best is None else min(best, t)
        out = f.GetOutput()
    itk.imwrite(out, dst)
    print(json.dumps({"seconds": best}))


if __name__ == "__main__":
    main()
