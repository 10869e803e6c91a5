//! Conformance against real third-party files: every volume in
//! `../shared/testdata` must match what nibabel 5.4.2 read from it
//! (`reference.json`): shape, dtype, affine, scaled statistics, the eight
//! samples and the sha256 of the raw voxels. Files we reject must be the
//! ones listed (with the reason) in the README.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use ume::volume::{DataType, Volume};

fn testdata() -> Option<PathBuf> {
    let dir = std::env::var_os("UME_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata"));
    dir.join("reference.json").is_file().then_some(dir)
}

/// Files UME rejects on purpose (README, "Formats").
const REJECTED: &[(&str, &str)] = &[];

/// A DICOM entry: nibabel's values are in (row, column, frame) order with
/// an LPS affine; UME's volume is (column, row, slice) in RAS, its slices
/// sorted along the normal. Compare in world space: each of nibabel's
/// samples must be at the voxel UME has at that world position.
fn check_dicom(dir: &std::path::Path, entry: &Value) {
    let file = entry["file"].as_str().unwrap();
    let v = ume::io::load(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));
    let rcf: Vec<usize> = serde_json::from_value(entry["shape_rows_cols"].clone()).unwrap();
    assert_eq!(v.file_shape, vec![rcf[1], rcf[0], rcf[2]], "{file} shape");
    let s = &v.stats()[0];
    for (name, g) in [
        ("min", s.min),
        ("max", s.max),
        ("mean", s.mean),
        ("sum", s.sum),
    ] {
        assert!(
            close(g, f(&entry["stats"][name]), 1e-9, 1e-9),
            "{file} {name} {g}"
        );
    }
    let lps = &entry["affine_lps_row_col_slice"];
    let vfw = v.geometry.voxel_from_world().unwrap();
    for sample in entry["samples"].as_array().unwrap() {
        let idx: Vec<f64> = serde_json::from_value(sample["index"].clone()).unwrap();
        let world: Vec<f64> = (0..3)
            .map(|r| {
                let x = f(&lps[r][3]) + (0..3).map(|c| f(&lps[r][c]) * idx[c]).sum::<f64>();
                if r < 2 { -x } else { x }
            })
            .collect();
        let ijk: Vec<usize> = (0..3)
            .map(|r| {
                let x = vfw[r][3] + (0..3).map(|c| vfw[r][c] * world[c]).sum::<f64>();
                assert!((x - x.round()).abs() < 1e-3, "{file}: off-grid {x}");
                x.round() as usize
            })
            .collect();
        let got = v.value_at(v.flat_index_of(&ijk).unwrap(), 0);
        assert_eq!(
            got,
            f(&sample["value"]),
            "{file} at nibabel {idx:?} = UME {ijk:?}"
        );
    }
}

fn close(a: f64, b: f64, rel: f64, abs: f64) -> bool {
    (a - b).abs() <= abs + rel * a.abs().max(b.abs())
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn check_stats(file: &str, what: &str, got: &ume::volume::Stats, want: &Value) {
    assert_eq!(
        got.n_voxels as u64,
        want["n_voxels"].as_u64().unwrap(),
        "{file} {what} n_voxels"
    );
    assert_eq!(
        got.nan_count as u64,
        want["nan_count"].as_u64().unwrap(),
        "{file} {what} nan_count"
    );
    assert_eq!(
        got.inf_count as u64,
        want["inf_count"].as_u64().unwrap(),
        "{file} {what} inf_count"
    );
    for (name, g) in [
        ("min", got.min),
        ("max", got.max),
        ("mean", got.mean),
        ("sum", got.sum),
    ] {
        assert!(
            close(g, f(&want[name]), 1e-6, 1e-9),
            "{file} {what} {name}: got {g}, nibabel {}",
            want[name]
        );
    }
}

fn check_volume(dir: &std::path::Path, entry: &Value) {
    let file = entry["file"].as_str().unwrap();
    let v: Volume = ume::io::load(&dir.join(file)).unwrap_or_else(|e| panic!("{e}"));

    let shape: Vec<usize> = entry["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(v.file_shape, shape, "{file} shape");

    // Affine: nibabel's choice (sform, qform, fallback). Absolute slack for
    // entries near zero that nibabel computes from float32 quaternions.
    let aff = entry["affine"].as_array().unwrap();
    for r in 0..4 {
        for c in 0..4 {
            let want = f(&aff[r][c]);
            let got = v.geometry.world_from_voxel[r][c];
            assert!(
                close(got, want, 1e-6, 1e-5),
                "{file} affine[{r}][{c}]: got {got}, nibabel {want}"
            );
        }
    }
    if let Some(ax) = entry["axcodes"].as_str() {
        assert_eq!(v.geometry.orientation(), ax, "{file} orientation");
    }

    let sha = Sha256::digest(v.raw_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        entry["raw_le_sha256"].as_str().unwrap(),
        "{file} raw sha256"
    );

    let stats = v.stats();
    match v.dtype {
        DataType::Rgb24 => {
            for (i, ch) in ["R", "G", "B"].iter().enumerate() {
                check_stats(file, ch, &stats[i], &entry["stats_per_channel"][ch]);
            }
        }
        DataType::Complex64 => {
            check_stats(file, "real", &stats[0], &entry["stats_real"]);
            check_stats(file, "imag", &stats[1], &entry["stats_imag"]);
            check_stats(file, "abs", &stats[2], &entry["stats_abs"]);
        }
        _ => check_stats(file, "value", &stats[0], &entry["stats"]),
    }

    for s in entry["samples"].as_array().unwrap() {
        let index: Vec<usize> = s["index"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        let flat = v
            .flat_index_of(&index)
            .unwrap_or_else(|| panic!("{file}: index {index:?} out of range"));
        match &s["value"] {
            Value::Array(chs) => {
                for (ch, want) in chs.iter().enumerate() {
                    let got = v.value_at(flat, ch);
                    assert!(
                        close(got, f(want), 1e-6, 0.0),
                        "{file} {index:?} ch {ch}: got {got}, nibabel {want}"
                    );
                }
            }
            want => {
                let got = v.value_at(flat, 0);
                assert!(
                    close(got, f(want), 1e-6, 0.0),
                    "{file} {index:?}: got {got}, nibabel {want}"
                );
            }
        }
    }
}

#[test]
fn shared_testdata_matches_nibabel() {
    let Some(dir) = testdata() else {
        eprintln!("../shared/testdata not present: conformance test has nothing to check here");
        return;
    };
    let reference: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap())
            .unwrap();
    let mut checked = 0;
    for entry in reference["files"].as_array().unwrap() {
        let file = entry["file"].as_str().unwrap();
        if let Some((_, why)) = REJECTED.iter().find(|(f, _)| *f == file) {
            let e = ume::io::load(&dir.join(file)).expect_err(why);
            assert!(
                e.to_string().contains(file.rsplit('/').next().unwrap()),
                "error names the file: {e}"
            );
            continue;
        }
        if entry["kind"] == "dicom" {
            check_dicom(&dir, entry);
        } else {
            check_volume(&dir, entry);
        }
        checked += 1;
    }
    assert!(checked >= 28, "only {checked} files checked");
}

#[test]
fn six_storage_orders_agree_in_world_space() {
    let Some(dir) = testdata() else { return };
    let load = |n: &str| {
        ume::io::load(&dir.join(format!("github-niivue/nifti_space/{n}.nii.gz"))).unwrap()
    };
    let reference = load("RAS");
    let inv = |v: &Volume| v.geometry.voxel_from_world().unwrap();
    for name in ["LPS", "PIL", "SRA", "IPR", "AIL"] {
        let v = load(name);
        let vfw = inv(&v);
        // Every voxel of RAS, looked up by world position in the other file,
        // has the same value.
        let [nx, ny, nz] = reference.dims;
        for k in (0..nz).step_by(3) {
            for j in (0..ny).step_by(3) {
                for i in (0..nx).step_by(3) {
                    let w = reference
                        .geometry
                        .world_from_index([i as f64, j as f64, k as f64]);
                    let ijk: [f64; 3] = std::array::from_fn(|r| {
                        vfw[r][0] * w[0] + vfw[r][1] * w[1] + vfw[r][2] * w[2] + vfw[r][3]
                    });
                    let idx = ijk.map(|x| x.round() as usize);
                    assert_eq!(
                        v.get(idx[0], idx[1], idx[2], 0),
                        reference.get(i, j, k, 0),
                        "{name} at RAS voxel {i},{j},{k}"
                    );
                }
            }
        }
    }
}
