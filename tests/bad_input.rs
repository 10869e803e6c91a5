//! A generated corpus of broken files: each must give a clear error that
//! names the file and the problem, never a panic or a huge allocation.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use std::path::{Path, PathBuf};
use ume::volume::{Geometry, Volume};

fn nifti1_header(dims: &[i16], datatype: i16, bitpix: i16, vox_offset: f32) -> Vec<u8> {
    let mut h = vec![0u8; 352];
    h[0..4].copy_from_slice(&348i32.to_le_bytes());
    h[40..42].copy_from_slice(&(dims.len() as i16).to_le_bytes());
    for (i, d) in dims.iter().enumerate() {
        h[42 + 2 * i..44 + 2 * i].copy_from_slice(&d.to_le_bytes());
    }
    h[70..72].copy_from_slice(&datatype.to_le_bytes());
    h[72..74].copy_from_slice(&bitpix.to_le_bytes());
    for i in 0..8 {
        h[76 + 4 * i..80 + 4 * i].copy_from_slice(&1f32.to_le_bytes());
    }
    h[108..112].copy_from_slice(&vox_offset.to_le_bytes());
    h[112..116].copy_from_slice(&1f32.to_le_bytes());
    h[344..348].copy_from_slice(b"n+1\0");
    h
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Load must fail with a message containing the file name and every `needle`.
fn expect_error(path: &Path, needles: &[&str]) {
    let e = ume::io::load(path).expect_err(&format!("{} should be rejected", path.display()));
    let msg = e.to_string();
    let name = path.file_name().unwrap().to_string_lossy();
    assert!(
        msg.contains(name.as_ref()),
        "error does not name the file: {msg}"
    );
    for n in needles {
        assert!(msg.contains(n), "error for {name} lacks {n:?}: {msg}");
    }
}

fn valid_nii() -> Vec<u8> {
    let mut b = nifti1_header(&[8, 8, 8], 4, 16, 352.0);
    for i in 0..512i16 {
        b.extend_from_slice(&i.to_le_bytes());
    }
    b
}

#[test]
fn corpus_of_broken_files() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let good = valid_nii();
    assert!(ume::io::load(&write(d, "good.nii", &good)).is_ok());

    // Truncated gzip stream.
    let gz = gzip(&good);
    expect_error(
        &write(d, "truncated_gzip.nii.gz", &gz[..gz.len() / 2]),
        &["gzip"],
    );
    // Valid gzip, but the voxels stop early.
    expect_error(&write(d, "short_data.nii.gz", &gzip(&good[..600])), &[]);
    expect_error(
        &write(d, "short_data.nii", &good[..600]),
        &["truncated", "1024"],
    );
    // vox_offset beyond the end of the file.
    expect_error(
        &write(
            d,
            "offset_past_end.nii",
            &nifti1_header(&[8, 8, 8], 4, 16, 5000.0),
        ),
        &["vox_offset 5000", "past the end"],
    );
    // Zero, negative and absurd dims.
    expect_error(
        &write(d, "zero_dim.nii", &nifti1_header(&[8, 0, 8], 4, 16, 352.0)),
        &["dim[2] = 0"],
    );
    expect_error(
        &write(
            d,
            "negative_dim.nii",
            &nifti1_header(&[8, -5, 8], 4, 16, 352.0),
        ),
        &["dim[2] = -5"],
    );
    let mut bad_rank = nifti1_header(&[8, 8, 8], 4, 16, 352.0);
    bad_rank[40..42].copy_from_slice(&9i16.to_le_bytes());
    expect_error(&write(d, "bad_rank.nii", &bad_rank), &["dim[0] = 9"]);
    // 10^12 voxels claimed by a tiny file: refused from the file size, before allocating.
    let absurd = nifti1_header(&[10000, 10000, 10000], 4, 16, 352.0);
    expect_error(&write(d, "absurd_dims.nii", &absurd), &["truncated"]);
    expect_error(
        &write(d, "absurd_dims.nii.gz", &gzip(&absurd)),
        &["can hold at most"],
    );
    // Dims × bitpix larger than the file.
    let mut big = nifti1_header(&[64, 64, 64], 16, 32, 352.0);
    big.extend_from_slice(&[0u8; 4096]);
    expect_error(&write(d, "dims_exceed_file.nii", &big), &["truncated"]);
    // Unknown datatype.
    expect_error(
        &write(
            d,
            "unknown_datatype.nii",
            &nifti1_header(&[2, 2, 2], 7, 8, 352.0),
        ),
        &["datatype code 7"],
    );
    // Not a NIfTI file at all, empty file, garbage after a gzip header.
    expect_error(
        &write(
            d,
            "not_nifti.nii",
            b"hello, this is not an image at all, but it is long enough to be read as one.....",
        ),
        &["not a NIfTI"],
    );
    expect_error(&write(d, "empty.nii", b""), &[]);
    let mut garbage = gz[..10].to_vec();
    garbage.extend_from_slice(&[0xAB; 200]);
    expect_error(&write(d, "garbage.nii.gz", &garbage), &["gzip"]);
    // A directory where a file is expected; a .hdr without its .img.
    std::fs::create_dir(d.join("folder.nii")).unwrap();
    expect_error(&d.join("folder.nii"), &["is a directory"]);
    let mut pair = nifti1_header(&[2, 2, 2], 2, 8, 0.0);
    pair[344..348].copy_from_slice(b"ni1\0");
    expect_error(
        &write(d, "lonely.hdr", &pair[..348]),
        &["lonely.img", "not found"],
    );
    expect_error(
        &write(d, "orphan.img", &[0u8; 8]),
        &["orphan.hdr", "not found"],
    );
}

#[test]
fn nan_slope_means_no_scaling_and_nan_voxels_are_counted() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = nifti1_header(&[4], 16, 32, 352.0);
    b[112..116].copy_from_slice(&f32::NAN.to_le_bytes());
    b[116..120].copy_from_slice(&5f32.to_le_bytes());
    for x in [1.0f32, f32::NAN, 3.0, f32::NEG_INFINITY] {
        b.extend_from_slice(&x.to_le_bytes());
    }
    let v = ume::io::load(&write(tmp.path(), "nan.nii", &b)).unwrap();
    assert!(v.scaling.is_identity());
    let s = v.stats()[0];
    assert_eq!(
        (s.min, s.max, s.mean, s.nan_count, s.inf_count),
        (1.0, 3.0, 2.0, 1, 1)
    );
}

#[test]
fn vox_offset_inside_header_is_fixed_with_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b = nifti1_header(&[2, 2], 2, 8, 0.0);
    b.extend_from_slice(&[1, 2, 3, 4]);
    let v = ume::io::load(&write(tmp.path(), "zero_offset.nii", &b)).unwrap();
    assert_eq!(v.get(1, 1, 0, 0), Some(4.0));
    assert!(v.warnings.iter().any(|w| w.contains("vox_offset")));
}

#[test]
fn mismatched_label_grid_names_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let case = tmp.path().join("BraTS20_Training_009");
    std::fs::create_dir(&case).unwrap();
    let img = Volume::from_values(vec![4, 4, 4], &[0i16; 64], Geometry::identity()).unwrap();
    for m in ["t1", "t1ce", "t2", "flair"] {
        ume::io::save_volume(&img, &case.join(format!("BraTS20_Training_009_{m}.nii.gz"))).unwrap();
    }
    let seg = Volume::from_values(vec![4, 4, 5], &[0u8; 80], Geometry::identity()).unwrap();
    ume::io::save_volume(&seg, &case.join("BraTS20_Training_009_seg.nii.gz")).unwrap();
    let ds = ume::dataset::open(&case).unwrap();
    let e = ds.load_case(0).unwrap_err().to_string();
    assert!(
        e.contains("_t1.nii.gz") && e.contains("_seg.nii.gz") && e.contains("dims"),
        "{e}"
    );
}

#[test]
fn truncated_real_files_from_testdata() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/testdata/github-niivue");
    let Ok(bytes) = std::fs::read(dir.join("spmMotor.nii.gz")) else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for cut in [20, bytes.len() / 3, bytes.len() - 9] {
        let p = write(
            tmp.path(),
            &format!("spmMotor_cut{cut}.nii.gz"),
            &bytes[..cut],
        );
        expect_error(&p, &[]);
    }
}
