#!/usr/bin/env python3
"""Reference values for UME's DICOM conformance test, made by an independent
reader: pydicom (with pylibjpeg's libjpeg/openjpeg/rle plugins for the
compressed syntaxes) and numpy.

    pip install pydicom pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg pylibjpeg-rle numpy
    python3 scripts/dicom_reference.py "$(scripts/fetch_test_data.sh)" > tests/fixtures/dicom_reference.json

For each case (a file, or a folder holding one series) it writes what
`ume info --json` must report: the shape in NIfTI order (columns, rows,
slices[, time points]), the affine voxel → RAS mm, and value statistics and
samples after rescale and MONOCHROME1 inversion, plus each file's sha256 so
a changed package is noticed rather than silently compared. Refusals are
listed with the words UME's error must contain.
"""
import hashlib
import json
import os
import sys

import numpy as np
import pydicom

# (case path relative to the cache's dicom/ folder, tolerance on values)
# Lossy JPEG: decoders may round the inverse DCT differently.
CASES = [
    ("pydicom/CT_small.dcm", 0),
    ("pydicom/MR_small.dcm", 0),
    ("pydicom/MR_small_bigendian.dcm", 0),
    ("pydicom/MR_small_expb.dcm", 0),
    ("pydicom/MR_small_implicit.dcm", 0),
    ("pydicom/MR_small_padded.dcm", 0),
    ("pydicom/MR_small_RLE.dcm", 0),
    ("pydicom/MR_small_jp2klossless.dcm", 0),
    ("pydicom/JPEG2000.dcm", 0),
    ("pydicom/image_dfl.dcm", 0),
    ("pydicom/rtdose.dcm", 0),
    ("pydicom/rtdose_expb.dcm", 0),
    ("pydicom/rtdose_rle.dcm", 0),
    ("pydicom/rtdose_1frame.dcm", 0),
    ("pydicom-data/JPEG-LL.dcm", 0),
    ("pydicom-data/JPEG2000_UNC.dcm", 0),
    ("pydicom-data/JPGLosslessP14SV1_1s_1f_8b.dcm", 0),
    ("pydicom-data/emri_small.dcm", 0),
    ("pydicom-data/emri_small_big_endian.dcm", 0),
    ("pydicom-data/emri_small_RLE.dcm", 0),
    ("pydicom-data/emri_small_jpeg_2k_lossless.dcm", 0),
    ("pydicom-data/eCT_Supplemental.dcm", 0),
    ("pydicom-data/693_UNCR.dcm", 0),
    ("pydicom-data/693_J2KR.dcm", 0),
    ("pydicom-data/MR2_UNCR.dcm", 0),
    ("pydicom-data/MR2_J2KR.dcm", 0),
    ("pydicom-data/RG1_UNCR.dcm", 0),
    ("pydicom-data/RG3_UNCR.dcm", 0),
    ("pydicom-data/mlut_18.dcm", 0),
    ("pydicom/dicomdirtests/77654033/CR1/6154", 0),
    ("pydicom/dicomdirtests/77654033/CT2", 0),
    ("pydicom/dicomdirtests/98892001/CT5N", 0),
    ("pydicom/dicomdirtests/98892001/CT2N", 0),
    ("pydicom/dicomdirtests/98892003/MR1", 0),
    ("pydicom/dicomdirtests/98892003/MR2", 0),
    ("pydicom/dicomdirtests/98892003/MR700", 0),
]

# Refused on purpose: (file, words the error must contain).
REFUSALS = [
    ("pydicom/MR_small_jpeg_ls_lossless.dcm", "JPEG-LS"),
    ("pydicom-data/emri_small_jpeg_ls_lossless.dcm", "JPEG-LS"),
    ("pydicom-data/US1_UNCR.dcm", "RGB"),
    ("pydicom-data/OBXXXX1A.dcm", "PALETTE COLOR"),
    ("pydicom/SC_rgb_rle.dcm", "RGB"),
    ("pydicom/SC_rgb_jpeg_dcmtk.dcm", "YBR_FULL"),
    # 12-bit lossy JPEG (Process 4): the pure-Rust decoder does not do it.
    ("pydicom/JPGExtended.dcm", "cannot decode"),
    # A broken stream: pydicom's decoders refuse it too.
    ("pydicom/JPEG-lossy.dcm", "cannot decode"),
    ("pydicom-data/liver.dcm", "BitsAllocated 1"),
    ("pydicom/MR_truncated.dcm", "MR_truncated.dcm"),
    ("pydicom/ExplVR_LitEndNoMeta.dcm", "DICM"),
    ("pydicom/rtplan.dcm", "not an image"),
]


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def frames_of(ds):
    """Per frame: (position, orientation, slope, intercept, temporal)."""
    n = int(getattr(ds, "NumberOfFrames", 1) or 1)
    out = []
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    per = ds.get("PerFrameFunctionalGroupsSequence")
    for f in range(n):
        pos = [float(x) for x in ds.ImagePositionPatient] if "ImagePositionPatient" in ds else None
        ori = [float(x) for x in ds.ImageOrientationPatient] if "ImageOrientationPatient" in ds else None
        sp = [float(x) for x in ds.PixelSpacing] if "PixelSpacing" in ds else None
        if sp is not None and min(sp) <= 0:  # a zero spacing is no spacing
            sp = None
        if sp is None and "ImagerPixelSpacing" in ds:  # projection radiographs
            sp = [float(x) for x in ds.ImagerPixelSpacing]
            sp = sp if min(sp) > 0 else None
        slope = float(getattr(ds, "RescaleSlope", 1) or 1)
        if "DoseGridScaling" in ds:
            slope = float(ds.DoseGridScaling)
        inter = float(getattr(ds, "RescaleIntercept", 0) or 0)
        thick = float(getattr(ds, "SpacingBetweenSlices", 0) or getattr(ds, "SliceThickness", 0) or 0) or None
        temporal = getattr(ds, "TemporalPositionIdentifier", None)
        for g in ([shared] if shared else []) + ([per[f]] if per else []):
            if "PlanePositionSequence" in g:
                pos = [float(x) for x in g.PlanePositionSequence[0].ImagePositionPatient]
            if "PlaneOrientationSequence" in g:
                ori = [float(x) for x in g.PlaneOrientationSequence[0].ImageOrientationPatient]
            if "PixelMeasuresSequence" in g:
                m = g.PixelMeasuresSequence[0]
                if "PixelSpacing" in m:
                    sp = [float(x) for x in m.PixelSpacing]
                t = float(getattr(m, "SpacingBetweenSlices", 0) or getattr(m, "SliceThickness", 0) or 0)
                thick = t or thick
            if "PixelValueTransformationSequence" in g:
                t = g.PixelValueTransformationSequence[0]
                slope = float(getattr(t, "RescaleSlope", 1) or 1)
                inter = float(getattr(t, "RescaleIntercept", 0) or 0)
        if "GridFrameOffsetVector" in ds and pos is not None and ori is not None:
            nrm = np.cross(ori[:3], ori[3:])
            pos = list(np.asarray(pos) + float(ds.GridFrameOffsetVector[f]) * nrm)
        out.append(dict(pos=pos, ori=ori, sp=sp, slope=slope, inter=inter, temporal=temporal, thick=thick))
    return out


def stored_values(ds):
    """Pixel values as integers after masking to BitsStored and MONOCHROME1
    inversion, one 2D array per frame."""
    arr = ds.pixel_array.astype(np.int64)
    if int(getattr(ds, "NumberOfFrames", 1) or 1) == 1:
        arr = arr[None]
    if ds.PhotometricInterpretation == "MONOCHROME1":
        bits = int(ds.BitsStored)
        if int(ds.PixelRepresentation) == 1:
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        else:
            lo, hi = 0, (1 << bits) - 1
        arr = lo + hi - arr
    return arr


def case(path):
    """Every series in a file or folder: images grouped by SeriesInstanceUID,
    image size and orientation (as a 3-plane localizer must be split)."""
    files = sorted(
        os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs
    ) if os.path.isdir(path) else [path]
    groups = {}
    for f in files:
        ds = pydicom.dcmread(f)
        vals = stored_values(ds)
        for k, info in enumerate(frames_of(ds)):
            o = tuple(round(x, 3) for x in info["ori"]) if info["ori"] else None
            key = (str(ds.SeriesInstanceUID), int(ds.Rows), int(ds.Columns), o)
            groups.setdefault(key, []).append((info, vals[k] * info["slope"] + info["inter"]))
    series = [dict(volume(images), uid=key[0], images=len(images)) for key, images in sorted(groups.items(), key=lambda kv: str(kv[0]))]
    return {"files": {os.path.relpath(f, path) if f != path else os.path.basename(f): sha(f) for f in files}, "series": series}


def volume(images):
    info0 = images[0][0]
    ori = info0["ori"] or [1, 0, 0, 0, 1, 0]
    sp = info0["sp"] or [1, 1]
    nrm = np.cross(ori[:3], ori[3:])
    if all(i["pos"] is not None for i, _ in images):
        images.sort(key=lambda im: (float(np.dot(im[0]["pos"], nrm)), float(im[0]["temporal"] or 0)))
        d = [float(np.dot(i["pos"], nrm)) for i, _ in images]
        positions = sorted(set(round(x, 2) for x in d))
        t = len(images) // len(positions)
        nz = len(positions)
        # group: slice-major in the sort, time points within a position
        stacks = [images[k * t:(k + 1) * t] for k in range(nz)]
        first, last = np.asarray(stacks[0][0][0]["pos"]), np.asarray(stacks[-1][0][0]["pos"])
        # One slice: its thickness is the slice spacing (as dcm2niix).
        step = (last - first) / (nz - 1) if nz > 1 else nrm * (info0["thick"] or 1.0)
        vol = np.stack([np.stack([s[k][1] for s in stacks], axis=-1) for k in range(t)], axis=-1)
    else:
        nz, t = len(images), 1
        first = np.asarray(info0["pos"] if info0["pos"] is not None else np.zeros(3))
        step = nrm * (info0["thick"] or 1.0)
        vol = np.stack([im[1] for im in images], axis=-1)[..., None]
    # vol is [rows, cols, z, t]; NIfTI order is [cols, rows, z, t].
    vol = vol.transpose(1, 0, 2, 3)
    lps = np.eye(4)
    lps[:3, 0] = np.asarray(ori[:3]) * sp[1]
    lps[:3, 1] = np.asarray(ori[3:]) * sp[0]
    lps[:3, 2] = step
    lps[:3, 3] = first
    ras = np.diag([-1, -1, 1, 1]) @ lps
    shape = list(vol.shape) if t > 1 else list(vol.shape[:3])
    rng = np.random.default_rng(0)
    samples = []
    for _ in range(8):
        idx = [int(rng.integers(0, n)) for n in vol.shape]
        samples.append({"index": idx[: len(shape)], "value": float(vol[tuple(idx)])})
    return {
        "shape": shape,
        "affine": ras.tolist(),
        "min": float(vol.min()),
        "max": float(vol.max()),
        "mean": float(vol.mean()),
        "samples": samples,
    }


def main():
    root = os.path.join(sys.argv[1], "dicom")
    out = {"generator": f"pydicom {pydicom.__version__}, numpy {np.__version__}", "cases": [], "refusals": []}
    for rel, tol in CASES:
        c = case(os.path.join(root, rel))
        c.update(path=rel, tolerance=tol)
        out["cases"].append(c)
    for rel, words in REFUSALS:
        out["refusals"].append({"path": rel, "error_contains": words, "sha256": sha(os.path.join(root, rel))})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
