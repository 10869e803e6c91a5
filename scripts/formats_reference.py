#!/usr/bin/env python3
"""Reference values for UME's NRRD and MetaImage readers, made by an
independent reader (SimpleITK, from PyPI) from the MetaImage and NRRD files
of ITK's examples (fetched by scripts/fetch_test_data.sh into
~/.cache/ume-data/itk-formats). Writes tests/fixtures/formats_reference.json,
which tests/formats_conformance.rs compares UME with; CI does not run this.

Usage: python3 scripts/formats_reference.py [CACHE]   (needs SimpleITK, numpy)

Per file: the sha256 of the header file, the size in ITK's (x, y, z) order,
the number of components per voxel, the affine voxel -> RAS mm (ITK's LPS
direction x spacing and origin, x and y negated; a 2D image sits in the
z = 0 plane), and per component the minimum, maximum, mean and a few
samples at voxel indices (x, y, z).
"""
import hashlib
import json
import os
import sys

import numpy as np
import SimpleITK as sitk

cache = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "UME_DATA", os.path.expanduser("~/.cache/ume-data"))
root = os.path.join(cache, "itk-formats")
out_path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures",
                        "formats_reference.json")


def affine_ras(img):
    n = img.GetDimension()
    d = np.array(img.GetDirection()).reshape(n, n)
    sp = np.array(img.GetSpacing())
    o = np.array(img.GetOrigin())
    m = np.eye(4)
    m[:n, :n] = d * sp[None, :]
    m[:n, 3] = o
    m[0, :] *= -1.0  # LPS -> RAS
    m[1, :] *= -1.0
    m[3, :] = [0, 0, 0, 1]
    return m.tolist()


entries = []
for name in sorted(os.listdir(root)):
    if not name.lower().endswith((".mha", ".mhd", ".nhdr", ".nrrd")):
        continue
    path = os.path.join(root, name)
    with open(path, "rb") as f:
        sha = hashlib.sha256(f.read()).hexdigest()
    entry = {"file": name, "sha256": sha}
    try:
        img = sitk.ReadImage(path)
    except RuntimeError as e:
        entry["sitk_error"] = str(e).strip().splitlines()[-1]
        entries.append(entry)
        continue
    size = list(img.GetSize()) + [1] * (3 - img.GetDimension())
    comps = img.GetNumberOfComponentsPerPixel()
    a = sitk.GetArrayFromImage(img).astype(np.float64)  # (z,) y, x (, c)
    if comps == 1:
        a = a[..., None]
    if img.GetDimension() == 2:
        a = a[None, ...]
    # a is now (z, y, x, c)
    rng = np.random.default_rng(len(name))
    idx = [(0, 0, 0), (size[0] - 1, size[1] - 1, size[2] - 1)]
    idx += [tuple(int(rng.integers(0, s)) for s in size) for _ in range(6)]
    components = []
    for c in range(comps):
        v = a[..., c]
        components.append({
            "min": float(v.min()),
            "max": float(v.max()),
            "mean": float(v.mean()),
            "samples": [[list(i), float(v[i[2], i[1], i[0]])] for i in idx],
        })
    entry.update({
        "pixel": img.GetPixelIDTypeAsString(),
        "size": size,
        "components": comps,
        "affine": affine_ras(img),
        "values": components,
    })
    entries.append(entry)

doc = {
    "made_by": f"scripts/formats_reference.py with SimpleITK {sitk.Version.VersionString()}",
    "source": "Debian insighttoolkit5-examples (examples/Data), Apache-2.0",
    "files": entries,
}
with open(out_path, "w") as f:
    json.dump(doc, f, indent=1)
    f.write("\n")
print(f"{len(entries)} files -> {os.path.normpath(out_path)}")
