//! What we write reads back identical (voxels, dtype, shape, scaling, and
//! geometry to float32 precision), atomically; and nibabel reads our files
//! with the same affine.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use ume::volume::{Geometry, Scaling, Volume};

fn oblique_affine() -> [[f64; 4]; 4] {
    let (c, s) = (0.3f64.cos(), 0.3f64.sin());
    [
        [-1.5 * c, 0.0, 2.0 * s, 90.0],
        [0.0, 1.25, 0.0, -126.5],
        [1.5 * s, 0.0, 2.0 * c, -72.25],
        [0.0, 0.0, 0.0, 1.0],
    ]
}

fn assert_same_geometry(a: &Geometry, b: &Geometry) {
    for r in 0..4 {
        for c in 0..4 {
            let (x, y) = (a.world_from_voxel[r][c], b.world_from_voxel[r][c]);
            // Stored as float32 in NIfTI-1.
            assert!(
                (x - y).abs() <= 1e-5 * x.abs().max(1.0),
                "affine[{r}][{c}]: {x} vs {y}"
            );
        }
    }
}

fn round_trip(v: &Volume, path: &Path) -> Volume {
    ume::io::save_volume(v, path).unwrap();
    let back = ume::io::load(path).unwrap();
    assert_eq!(back.file_shape, v.file_shape);
    assert_eq!(back.dtype, v.dtype);
    assert_eq!(back.raw_bytes(), v.raw_bytes(), "{}", path.display());
    assert_eq!(back.scaling, v.scaling);
    assert_same_geometry(&back.geometry, &v.geometry);
    back
}

#[test]
fn every_dtype_round_trips_gz_and_plain() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Geometry::from_affine(oblique_affine());
    let shape = vec![5, 4, 3, 2];
    let n = 5 * 4 * 3 * 2;
    let vols = [
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as u8).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as i8 - 60).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| (i * 500) as u16).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as i16 * -97).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as u32 * 70_000).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i - 100_000).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as u64 * (1 << 40)).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| -(i as i64) << 35).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| i as f32 * 0.1 - 3.0).collect::<Vec<_>>(),
            g.clone(),
        ),
        Volume::from_values(
            shape.clone(),
            &(0..n).map(|i| (i as f64).sqrt()).collect::<Vec<_>>(),
            g.clone(),
        ),
    ];
    for (i, v) in vols.into_iter().enumerate() {
        let mut v = v.unwrap();
        if i == 3 {
            v.scaling = Scaling {
                slope: 0.5,
                inter: -1024.0,
            };
        }
        round_trip(&v, &tmp.path().join(format!("v{i}.nii.gz")));
        round_trip(&v, &tmp.path().join(format!("v{i}.nii")));
    }
    // No temporary files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

fn testdata() -> Option<PathBuf> {
    let d = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata");
    d.is_dir().then_some(d)
}

#[test]
fn real_files_round_trip_keeping_qform_and_sform() {
    let Some(dir) = testdata() else { return };
    let tmp = tempfile::tempdir().unwrap();
    for f in [
        "github-nifti-reader-js/5D_small.nii", // scaled, sform + qform, 5D
        "github-nifti-reader-js/big.nii.gz",   // big-endian
        "github-nifti-reader-js/avg152T1_LR_nifti2.nii.gz", // NIfTI-2
        "github-niivue/ct_perfusion.nii.gz",   // RGB24
        "github-niivue/complex.nii.gz",        // complex64
        "github-niivue/shear.nii.gz",          // sheared sform
        "github-spm99/avg152T1.hdr",           // Analyze with SPM origin and scale
    ] {
        let v = ume::io::load(&dir.join(f)).unwrap();
        let name = Path::new(f)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace(".hdr", ".nii");
        let back = round_trip(&v, &tmp.path().join(format!("rt_{name}.gz")));
        if let (Some(a), Some(b)) = (v.geometry.nifti, back.geometry.nifti)
            && v.format == ume::volume::SourceFormat::Nifti1
        {
            assert_eq!(a, b, "{f}: qform/sform fields preserved exactly");
        }
    }
}

#[test]
fn nibabel_reads_our_files_with_the_same_affine() {
    let has_nibabel = std::process::Command::new("python3")
        .args(["-c", "import nibabel"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_nibabel {
        // The README's test command installs nibabel; without it there is no reference to ask.
        eprintln!("python3 with nibabel not found: cross-check against nibabel not run");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let v = Volume::from_values(
        vec![3, 4, 5],
        &[7i16; 60],
        Geometry::from_affine(oblique_affine()),
    )
    .unwrap();
    let p = tmp.path().join("ours.nii.gz");
    ume::io::save_volume(&v, &p).unwrap();
    let phantom = ume::phantom::acdc_case(3, 1, ume::phantom::Size::Small); // oblique cine
    let q = tmp.path().join("cine.nii.gz");
    ume::io::save_volume(&phantom.cine, &q).unwrap();
    for (path, vol) in [(&p, &v), (&q, &phantom.cine)] {
        let out = std::process::Command::new("python3")
            .args(["-c", "import sys, json, nibabel as nib\ni = nib.load(sys.argv[1])\nprint(json.dumps({'affine': i.affine.tolist(), 'qform': i.get_qform().tolist(), 'shape': list(i.shape)}))"])
            .arg(path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let shape: Vec<usize> = j["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(shape, vol.file_shape);
        for key in ["affine", "qform"] {
            for r in 0..4 {
                for c in 0..4 {
                    let want = vol.geometry.world_from_voxel[r][c];
                    let got = j[key][r][c].as_f64().unwrap();
                    assert!(
                        (got - want).abs() < 1e-4,
                        "{key}[{r}][{c}]: nibabel {got}, ours {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_file_of_several_writeback_chunks_reads_back_byte_for_byte() {
    // The atomic writer hands the kernel 8 MiB at a time; a header, then
    // voxels ending mid-chunk, must land in order with nothing left over.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let header: Vec<u8> = (0..352u32).map(|i| (i % 251) as u8).collect();
    let voxels: Vec<u8> = (0..(17u32 << 20) + 5).map(|i| (i % 253) as u8).collect();
    std::fs::write(&path, b"an older version").unwrap();
    ume::io::write_atomic_parts(&path, &[&header, &voxels]).unwrap();
    let back = std::fs::read(&path).unwrap();
    assert_eq!(back.len(), header.len() + voxels.len());
    assert!(back[..352] == header[..] && back[352..] == voxels[..]);
    let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
    assert_eq!(
        names.len(),
        1,
        "no temporary file is left beside the target"
    );
}
