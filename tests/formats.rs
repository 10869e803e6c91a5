//! NRRD and MetaImage: what Slicer and ITK users keep. Written files read
//! back with the same voxels and `world_from_voxel`; hand-written headers in
//! each format's conventions (LPS world, detached data, big-endian, gzip /
//! zlib, ITK's TransformMatrix order) land where they should; broken files
//! are clear errors naming the field; ITK's own example files (Debian's
//! insighttoolkit5-examples, fetched by scripts/fetch_test_data.sh) read as
//! SimpleITK reads them (tests/fixtures/formats_reference.json, made by
//! scripts/formats_reference.py); vector images keep their components
//! through NRRD and MetaImage; and ITK itself (when its Python package is
//! installed; scripts/test.sh installs SimpleITK) reads our files with the
//! same geometry.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use serde_json::Value;
use sha2::Digest;
use std::path::Path;

#[path = "common/registry.rs"]
mod registry;
use ume::volume::{Geometry, Volume};

fn oblique_volume() -> Volume {
    // 6×5×4 int16, anisotropic, rotated about z, off origin.
    let (c, s) = (0.8f64, 0.6f64);
    let g = Geometry::from_affine([
        [0.9 * c, -1.1 * s, 0.0, -12.5],
        [0.9 * s, 1.1 * c, 0.0, 30.0],
        [0.0, 0.0, 2.5, -7.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let vals: Vec<i16> = (0..6 * 5 * 4)
        .map(|i| (i * 37 % 501) as i16 - 250)
        .collect();
    Volume::from_values(vec![6, 5, 4], &vals, g).unwrap()
}

fn close(a: &Geometry, b: &Geometry) {
    for r in 0..3 {
        for c in 0..4 {
            let (x, y) = (a.world_from_voxel[r][c], b.world_from_voxel[r][c]);
            assert!((x - y).abs() < 1e-6, "affine[{r}][{c}]: {x} vs {y}");
        }
    }
}

#[test]
fn nrrd_and_mha_round_trip_voxels_and_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let v = oblique_volume();
    for name in ["a.nrrd", "a.mha", "a.nii.gz"] {
        let p = tmp.path().join(name);
        ume::io::save_any(&v, &p).unwrap();
        let back = ume::io::load(&p).unwrap();
        assert_eq!(back.file_shape, v.file_shape, "{name}");
        assert_eq!(back.raw_bytes(), v.raw_bytes(), "{name}");
        close(&back.geometry, &v.geometry);
    }
    assert!(ume::io::save_any(&v, &tmp.path().join("a.png")).is_err());
}

#[test]
fn handwritten_headers_follow_each_formats_conventions() {
    let tmp = tempfile::tempdir().unwrap();
    // A detached NRRD, big-endian int16, in LPS: world x and y flip sign.
    std::fs::write(
        tmp.path().join("b.nhdr"),
        "NRRD0004\n# a comment\ntype: short\ndimension: 3\nspace: left-posterior-superior\n\
         sizes: 2 2 1\nspace directions: (2,0,0) (0,3,0) (0,0,4)\nkinds: domain domain domain\n\
         endian: big\nencoding: raw\nspace origin: (10,20,30)\ndata file: b.raw\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("b.raw"), [0u8, 1, 0, 2, 1, 0, 0xff, 0xfe]).unwrap();
    let v = ume::io::load(&tmp.path().join("b.nhdr")).unwrap();
    assert_eq!(
        (0..4).map(|i| v.value_at(i, 0)).collect::<Vec<_>>(),
        vec![1.0, 2.0, 256.0, -2.0]
    );
    let m = v.geometry.world_from_voxel;
    assert_eq!([m[0][0], m[1][1], m[2][2]], [-2.0, -3.0, 4.0]);
    assert_eq!([m[0][3], m[1][3], m[2][3]], [-10.0, -20.0, 30.0]);

    // Kinds that say nothing (`???`) leave every axis spatial; `RGB-color`
    // first makes components.
    for (kinds, dims, comps) in [
        ("??? ??? ???", [3, 2, 2], 1),
        ("RGB-color domain domain", [2, 2, 1], 3),
    ] {
        let mut bytes = format!(
            "NRRD0004\ntype: uchar\ndimension: 3\nsizes: 3 2 2\nkinds: {kinds}\nencoding: raw\n\n"
        )
        .into_bytes();
        bytes.extend(0..12u8);
        let p = tmp.path().join("k.nrrd");
        std::fs::write(&p, bytes).unwrap();
        let v = ume::io::load(&p).unwrap();
        assert_eq!((v.dims, v.components), (dims, comps), "{kinds}");
    }

    // A MetaImage with ITK's TransformMatrix (axis directions one after
    // another): axis 0 runs along world y (LPS).
    let mut bytes =
        b"ObjectType = Image\nNDims = 3\nBinaryData = True\nBinaryDataByteOrderMSB = False\n\
        TransformMatrix = 0 1 0 1 0 0 0 0 1\nOffset = 1 2 3\nElementSpacing = 0.5 0.25 2\n\
        DimSize = 2 1 1\nElementType = MET_UCHAR\nElementDataFile = LOCAL\n"
            .to_vec();
    bytes.extend([7u8, 9]);
    std::fs::write(tmp.path().join("c.mha"), &bytes).unwrap();
    let v = ume::io::load(&tmp.path().join("c.mha")).unwrap();
    assert_eq!((v.value_at(0, 0), v.value_at(1, 0)), (7.0, 9.0));
    let w = v.geometry.world_from_index([1.0, 0.0, 0.0]);
    let o = v.geometry.world_from_index([0.0, 0.0, 0.0]);
    assert_eq!(o, [-1.0, -2.0, 3.0], "LPS offset → RAS");
    assert_eq!([w[0] - o[0], w[1] - o[1], w[2] - o[2]], [0.0, -0.5, 0.0]);
}

#[test]
fn broken_files_are_errors_naming_the_problem() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 5] = [
        (
            "bz.nrrd",
            b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: bzip2\n\n",
            "bzip2",
        ),
        (
            "short.nrrd",
            b"NRRD0004\ntype: uchar\ndimension: 3\nsizes: 2 2 2\nencoding: raw\n\nabc",
            "truncated",
        ),
        (
            "huge.nrrd",
            b"NRRD0004\ntype: double\ndimension: 3\nsizes: 100000 100000 100000\nencoding: gzip\n\n\x1f\x8b",
            "compressed",
        ),
        (
            "layers.nrrd",
            b"NRRD0004\ntype: uchar\ndimension: 4\nsizes: 2 2 2 2\nkinds: list domain domain domain\n\
              Segment0_ID:=a\nencoding: raw\n\n",
            "open it as labels",
        ),
        ("nohead.mha", b"NDims = 3\nDimSize = 2 2 2\n", "ElementDataFile"),
    ];
    for (name, bytes, want) in cases {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let e = ume::io::load(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(want), "{name}: {e}");
    }
}

#[test]
fn ume_convert_keeps_the_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let v = oblique_volume();
    let src = tmp.path().join("in.nii.gz");
    ume::io::save_volume(&v, &src).unwrap();
    let mid = tmp.path().join("mid.nrrd");
    let out = tmp.path().join("out.nii");
    for (a, b) in [(&src, &mid), (&mid, &out)] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
            .args(["convert"])
            .arg(a)
            .arg("-o")
            .arg(b)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let back = ume::io::load(&out).unwrap();
    assert_eq!(back.raw_bytes(), v.raw_bytes());
    close(&back.geometry, &v.geometry);
}

/// ITK's reading of a file (SimpleITK, which scripts/test.sh installs):
/// origin, spacing, direction (LPS) and the sum.
fn itk(path: &Path) -> Option<serde_json::Value> {
    let script = "import sys, json, SimpleITK as sitk, numpy as np\n\
        i = sitk.ReadImage(sys.argv[1])\n\
        print(json.dumps({'origin': list(i.GetOrigin()), 'spacing': list(i.GetSpacing()), \
        'direction': np.asarray(i.GetDirection()).reshape(3, 3).tolist(), \
        'components': i.GetNumberOfComponentsPerPixel(), \
        'sum': float(sitk.GetArrayViewFromImage(i).astype(np.float64).sum())}))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "python3 with SimpleITK not found: the ITK cross-check was not run ({})",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn itk_reads_our_files_with_the_same_geometry() {
    let tmp = tempfile::tempdir().unwrap();
    let v = oblique_volume();
    let sum: f64 = (0..v.element_count()).map(|i| v.value_at(i, 0)).sum();
    for name in ["x.nrrd", "x.mha"] {
        let p = tmp.path().join(name);
        ume::io::save_any(&v, &p).unwrap();
        let Some(j) = itk(&p) else { return };
        let m = v.geometry.world_from_voxel;
        let origin: Vec<f64> = serde_json::from_value(j["origin"].clone()).unwrap();
        assert!(
            (origin[0] + m[0][3]).abs() < 1e-4 && (origin[1] + m[1][3]).abs() < 1e-4,
            "{name}: {origin:?}"
        );
        let spacing: Vec<f64> = serde_json::from_value(j["spacing"].clone()).unwrap();
        let sp = v.spacing_mm();
        for k in 0..3 {
            assert!(
                (spacing[k] - sp[k]).abs() < 1e-5,
                "{name}: spacing {spacing:?} vs {sp:?}"
            );
        }
        let d: Vec<Vec<f64>> = serde_json::from_value(j["direction"].clone()).unwrap();
        // ITK's direction column c is axis c's unit vector in LPS.
        for c in 0..3 {
            for r in 0..3 {
                let want = [-1.0, -1.0, 1.0][r] * m[r][c] / sp[c];
                assert!((d[r][c] - want).abs() < 1e-5, "{name}: direction[{r}][{c}]");
            }
        }
        assert_eq!(j["sum"].as_f64().unwrap(), sum, "{name}: voxels");
    }
}

/// A Slicer segmentation as Slicer 5 writes one with overlapping segments:
/// two layers on a first "list" axis, segment fields in the header.
fn slicer_seg_nrrd(path: &Path) {
    let (nx, ny, nz) = (4usize, 3usize, 2usize);
    let mut data = vec![0u8; 2 * nx * ny * nz];
    // Layer 0: "liver" (value 1) in voxels 0..6, "kidney" (value 2) at 10.
    // Layer 1: "tumor" (value 1) in voxels 4..8 (overlaps the liver at 4, 5).
    for v in 0..6 {
        data[2 * v] = 1;
    }
    data[2 * 10] = 2;
    for v in 4..8 {
        data[2 * v + 1] = 1;
    }
    let mut head = String::from(
        "NRRD0004\ntype: unsigned char\ndimension: 4\nspace: left-posterior-superior\n\
         sizes: 2 4 3 2\nspace directions: none (-1.5,0,0) (0,-1.5,0) (0,0,3)\n\
         kinds: list domain domain domain\nencoding: raw\nspace origin: (10,20,-30)\n\
         Segmentation_MasterRepresentation:=Binary labelmap\n",
    );
    for (k, (name, color, layer, value)) in [
        ("liver", "0.8 0.4 0.2", 0, 1),
        ("kidney", "0.1 0.9 0.1", 0, 2),
        ("tumor", "1 1 0", 1, 1),
    ]
    .iter()
    .enumerate()
    {
        head.push_str(&format!(
            "Segment{k}_ID:=Segment_{k}\nSegment{k}_Name:={name}\nSegment{k}_Color:={color}\n\
             Segment{k}_Layer:={layer}\nSegment{k}_LabelValue:={value}\n"
        ));
    }
    head.push('\n');
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&data);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn slicer_seg_nrrd_layers_merge_into_named_labels_and_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("case.seg.nrrd");
    slicer_seg_nrrd(&p);
    let (l, table, notes) = ume::io::segnrrd::load(&p).unwrap();
    // Layers merged: ids 1…3 in segment order, the later segment wins.
    assert_eq!(l.dims, [4, 3, 2]);
    let ids: Vec<u16> = (0..24).map(|i| l.get(i)).collect();
    assert_eq!(&ids[..12], &[1, 1, 1, 1, 3, 3, 3, 3, 0, 0, 2, 0]);
    assert!(notes[0].contains("2 voxels"), "{notes:?}");
    let names: Vec<&str> = table.labels.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, ["liver", "kidney", "tumor"]);
    assert_eq!(table.labels[0].color, [204, 102, 51]);
    // LPS → RAS, as for plain NRRD.
    assert_eq!(l.geometry.world_from_voxel[0], [1.5, 0.0, 0.0, -10.0]);
    // Written back (one layer) and read again: same ids, names, colours.
    let out = tmp.path().join("again.seg.nrrd");
    ume::io::segnrrd::save(&l, &l.geometry, &table, &out).unwrap();
    let (back, t2, n2) = ume::io::segnrrd::load(&out).unwrap();
    assert!(n2.is_empty());
    assert_eq!((0..24).map(|i| back.get(i)).collect::<Vec<_>>(), ids);
    assert_eq!(t2.labels, table.labels);
    close(&back.geometry, &l.geometry);
    // As a plain image, the layered file is refused with the reason.
    let err = ume::io::load(&p).unwrap_err().to_string();
    assert!(err.contains("segment layers"), "{err}");
}

/// pynrrd (an independent reader, installed by scripts/test.sh) reads what
/// UME writes: an NRRD image and a Slicer segmentation, with the same
/// sizes, LPS directions and origin, voxel sum and segment fields.
#[test]
fn pynrrd_reads_our_nrrd_and_seg_nrrd() {
    let tmp = tempfile::tempdir().unwrap();
    let v = oblique_volume();
    let img = tmp.path().join("img.nrrd");
    ume::io::save_any(&v, &img).unwrap();
    let seg = tmp.path().join("seg.seg.nrrd");
    let mut l = ume::volume::LabelVolume::zeros([6, 5, 4], 1, v.geometry.clone());
    l.set(7, 3);
    l.set(8, 3);
    let table = ume::volume::LabelTable {
        name: "t".into(),
        labels: vec![ume::volume::LabelEntry {
            id: 3,
            name: "lesion".into(),
            color: [255, 0, 0],
        }],
    };
    ume::io::segnrrd::save(&l, &v.geometry, &table, &seg).unwrap();
    let script = "import sys, json, nrrd, numpy as np\n\
        out = []\n\
        for p in sys.argv[1:]:\n\
        \x20   d, h = nrrd.read(p)\n\
        \x20   out.append({'sizes': [int(x) for x in h['sizes']], 'dirs': np.asarray(h['space directions'], float).tolist(),\n\
        \x20     'origin': [float(x) for x in h['space origin']], 'space': h['space'], 'sum': float(np.asarray(d, float).sum()),\n\
        \x20     'name': h.get('Segment0_Name'), 'value': h.get('Segment0_LabelValue'), 'x0': float(d[1, 0, 0])})\n\
        print(json.dumps(out))";
    let out = std::process::Command::new("python3")
        .args(["-c", script])
        .arg(&img)
        .arg(&seg)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pynrrd failed (pip install pynrrd; scripts/test.sh installs it): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let (a, b) = (&j[0], &j[1]);
    assert_eq!(a["sizes"], serde_json::json!([6, 5, 4]));
    assert_eq!(a["space"], "left-posterior-superior");
    let m = &v.geometry.world_from_voxel;
    for c in 0..3 {
        for r in 0..3 {
            let lps = if r < 2 { -m[r][c] } else { m[r][c] };
            assert!(
                (a["dirs"][c][r].as_f64().unwrap() - lps).abs() < 1e-9,
                "dir {c} {r}"
            );
        }
        let o = if c < 2 { -m[c][3] } else { m[c][3] };
        assert!((a["origin"][c].as_f64().unwrap() - o).abs() < 1e-9);
    }
    let sum: f64 = (0..v.element_count()).map(|i| v.value_at(i, 0)).sum();
    assert_eq!(a["sum"].as_f64().unwrap(), sum);
    assert_eq!(a["x0"].as_f64().unwrap(), v.value_at(1, 0));
    assert_eq!(b["name"], "lesion");
    assert_eq!(b["value"], "3");
    assert_eq!(b["sum"].as_f64().unwrap(), 6.0);
}

#[test]
fn itk_example_files_read_as_simpleitk_reads_them() {
    let root = registry::test_data().join("itk-formats");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/formats_reference.json"
    ))
    .unwrap();
    let refs: Value = serde_json::from_str(&text).unwrap();
    let files = refs["files"].as_array().unwrap();
    assert!(
        files.len() >= 26,
        "the reference lists {} files",
        files.len()
    );
    let (mut nrrd, mut meta, mut vectors) = (0, 0, 0);
    for e in files {
        let name = e["file"].as_str().unwrap();
        let path = root.join(name);
        let d = sha2::Sha256::digest(std::fs::read(&path).unwrap());
        let sha: String = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(
            sha,
            e["sha256"].as_str().unwrap(),
            "{name}: another file than the reference's"
        );
        assert!(
            e.get("sitk_error").is_none(),
            "{name}: SimpleITK refused it"
        );
        let v = ume::io::load(&path).unwrap_or_else(|err| panic!("{name}: {err}"));
        let size: Vec<usize> = serde_json::from_value(e["size"].clone()).unwrap();
        assert_eq!(v.dims.to_vec(), size, "{name}: size");
        let comps = e["components"].as_u64().unwrap() as usize;
        assert_eq!(v.components, comps, "{name}: components");
        let want: Vec<Vec<f64>> = serde_json::from_value(e["affine"].clone()).unwrap();
        for r in 0..4 {
            for c in 0..4 {
                let got = v.geometry.world_from_voxel[r][c];
                assert!(
                    (got - want[r][c]).abs() < 1e-5,
                    "{name}: affine[{r}][{c}] {got} vs SimpleITK's {}",
                    want[r][c]
                );
            }
        }
        let n = v.voxels_per_frame();
        for (c, stats) in e["values"].as_array().unwrap().iter().enumerate() {
            let values: Vec<f64> = (0..n).map(|i| v.value_at(i + c * n, 0)).collect();
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let mean = values.iter().sum::<f64>() / n as f64;
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(f64::MIN_POSITIVE);
            assert!(
                close(min, stats["min"].as_f64().unwrap()),
                "{name}[{c}]: min {min}"
            );
            assert!(
                close(max, stats["max"].as_f64().unwrap()),
                "{name}[{c}]: max {max}"
            );
            assert!(
                close(mean, stats["mean"].as_f64().unwrap()),
                "{name}[{c}]: mean {mean}"
            );
            for s in stats["samples"].as_array().unwrap() {
                let ix: Vec<usize> = serde_json::from_value(s[0].clone()).unwrap();
                let flat = v.flat_index(ix[0], ix[1], ix[2], 0, c).unwrap();
                let got = v.value_at(flat, 0);
                // serde_json's float parsing may be one ulp off Python's.
                let want = s[1].as_f64().unwrap();
                assert!(close(got, want), "{name}[{c}] at {ix:?}: {got} vs {want}");
            }
        }
        let lower = name.to_lowercase();
        nrrd += usize::from(lower.ends_with(".nhdr") || lower.ends_with(".nrrd"));
        meta += usize::from(lower.ends_with(".mha") || lower.ends_with(".mhd"));
        vectors += usize::from(comps > 1);
    }
    // Detached NRRD in 2D space, MetaImage with .raw, .zraw and LOCAL data,
    // rotated axes, and vector images are all among them.
    assert!(
        nrrd >= 5 && meta >= 20 && vectors >= 2,
        "{nrrd} NRRD, {meta} MetaImage, {vectors} vector"
    );
}

#[test]
fn vector_images_keep_their_components_through_nrrd_and_metaimage() {
    let tmp = tempfile::tempdir().unwrap();
    // A 3-component float image (a displacement field) on an oblique grid.
    let base = oblique_volume();
    let n = base.voxels_per_frame();
    let values: Vec<f32> = (0..n * 3).map(|i| (i as f32 * 0.37).sin() * 10.0).collect();
    let mut shape = base.file_shape.clone();
    shape.truncate(3);
    shape.extend([1, 3]);
    let v = Volume::from_values(shape, &values, base.geometry.clone()).unwrap();
    assert_eq!(v.components, 3);
    for name in ["f.nrrd", "f.mha", "f.nii.gz"] {
        let p = tmp.path().join(name);
        ume::io::save_any(&v, &p).unwrap();
        let back = ume::io::load(&p).unwrap();
        assert_eq!(back.components, 3, "{name}");
        assert_eq!(back.dims, v.dims, "{name}");
        assert_eq!(
            back.raw_bytes(),
            v.raw_bytes(),
            "{name}: components in order"
        );
        if let Some(j) = itk(&p) {
            assert_eq!(
                j["components"].as_u64(),
                Some(3),
                "{name}: ITK's components"
            );
            let sum: f64 = values.iter().map(|&x| f64::from(x)).sum();
            let got = j["sum"].as_f64().unwrap();
            assert!(
                (got - sum).abs() < 1e-6 * sum.abs().max(1.0),
                "{name}: ITK's sum {got} vs {sum}"
            );
        }
        close(&back.geometry, &v.geometry);
        // And on to NIfTI (ume convert's path), unchanged.
        let nii = tmp.path().join(format!("{name}.nii"));
        ume::io::save_any(&back, &nii).unwrap();
        assert_eq!(ume::io::load(&nii).unwrap().raw_bytes(), v.raw_bytes());
    }
}
