//! Layout detection on the folder shapes people have, and the CLI on top.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use std::path::Path;
use std::process::Command;
use ume::dataset::{self, LabelSource, Layout};
use ume::volume::{Geometry, Volume};

fn small(path: &Path, value: i16) {
    let v = Volume::from_values(vec![4, 3, 2], &[value; 24], Geometry::identity()).unwrap();
    ume::io::save_volume(&v, path).unwrap();
}

fn small_labels(path: &Path) {
    let v = Volume::from_values(
        vec![4, 3, 2],
        &[0u8, 1, 2, 0, 0, 0].repeat(4),
        Geometry::identity(),
    )
    .unwrap();
    ume::io::save_volume(&v, path).unwrap();
}

#[test]
fn brats_2023_names_use_the_2023_table() {
    let tmp = tempfile::tempdir().unwrap();
    let case = tmp.path().join("BraTS-GLI-00000-000");
    std::fs::create_dir(&case).unwrap();
    for (m, v) in [("t1n", 1), ("t1c", 2), ("t2w", 3), ("t2f", 4)] {
        small(&case.join(format!("BraTS-GLI-00000-000-{m}.nii.gz")), v);
    }
    small_labels(&case.join("BraTS-GLI-00000-000-seg.nii.gz"));
    let ds = dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::Brats);
    assert_eq!(ds.labels.name_of(3), Some("enhancing_tumor"));
    let c = ds.load_case(0).unwrap();
    let mods: Vec<(&str, f64)> = c
        .images
        .iter()
        .map(|(m, v)| (m.as_str(), v.get(0, 0, 0, 0).unwrap()))
        .collect();
    assert_eq!(
        mods,
        [("t1", 1.0), ("t1ce", 2.0), ("t2", 3.0), ("flair", 4.0)]
    );
}

#[test]
fn msd_and_nnunet_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let msd = tmp.path().join("Task02_Heart");
    for d in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(msd.join(d)).unwrap();
    }
    small(&msd.join("imagesTr/la_003.nii.gz"), 5);
    small_labels(&msd.join("labelsTr/la_003.nii.gz"));
    // macOS resource forks shipped inside the MSD tarballs are ignored.
    std::fs::write(msd.join("imagesTr/._la_003.nii.gz"), b"junk").unwrap();
    std::fs::write(
        msd.join("dataset.json"),
        r#"{"name": "Heart", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "left atrium"},
           "training": [{"image": "./imagesTr/la_003.nii.gz", "label": "./labelsTr/la_003.nii.gz"}]}"#,
    )
    .unwrap();
    let ds = dataset::open(&msd).unwrap();
    assert_eq!(ds.layout, Layout::Msd);
    assert_eq!(ds.labels.name_of(1), Some("left atrium"));
    let c = ds.load_case(0).unwrap();
    assert_eq!(c.images[0].0, "MRI");
    assert_eq!(c.labels.unwrap().counts(), vec![16, 4, 4]);

    let nn = tmp.path().join("Dataset001_Liver");
    for d in ["imagesTr", "labelsTr"] {
        std::fs::create_dir_all(nn.join(d)).unwrap();
    }
    for case in ["liver_0", "liver_1"] {
        small(&nn.join(format!("imagesTr/{case}_0000.nii.gz")), 1);
        small(&nn.join(format!("imagesTr/{case}_0001.nii.gz")), 2);
        small_labels(&nn.join(format!("labelsTr/{case}.nii.gz")));
    }
    std::fs::write(
        nn.join("dataset.json"),
        r#"{"channel_names": {"0": "CT", "1": "PET"}, "labels": {"background": 0, "liver": 1, "tumour": 2}, "file_ending": ".nii.gz"}"#,
    )
    .unwrap();
    let ds = dataset::open(&nn).unwrap();
    assert_eq!(ds.layout, Layout::NnUnet);
    assert_eq!(ds.cases.len(), 2);
    let names: Vec<&str> = ds.cases[0].images.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["CT", "PET"]);
    assert!(matches!(ds.cases[1].labels, LabelSource::File(_)));
    assert_eq!(ds.labels.name_of(2), Some("tumour"));
}

#[test]
fn nested_acdc_and_unknown_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let training = tmp.path().join("ACDC/training");
    ume::phantom::generate(
        ume::phantom::Kind::Acdc,
        ume::phantom::Size::Small,
        1,
        2,
        &training,
        |_, _| {},
    )
    .unwrap();
    let ds = dataset::open(&tmp.path().join("ACDC")).unwrap();
    assert_eq!((ds.layout, ds.cases.len()), (Layout::Acdc, 2));
    let empty = tmp.path().join("nothing_here");
    std::fs::create_dir(&empty).unwrap();
    let e = dataset::open(&empty).unwrap_err().to_string();
    assert!(
        e.contains("nothing_here") && e.contains("no known dataset layout"),
        "{e}"
    );
}

fn ume() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ume"))
}

#[test]
fn cli_info_json_on_a_file_and_a_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ume()
        .args([
            "phantom", "--kind", "brats", "--cases", "1", "--seed", "3", "--out",
        ])
        .arg(tmp.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let case = tmp.path().join("BraTS20_Training_001");
    let t1 = case.join("BraTS20_Training_001_t1.nii.gz");
    let out = ume()
        .arg("info")
        .arg(&t1)
        .args(["--json", "--at", "48,48,31", "--at", "0,0,0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let truth = ume::phantom::brats_case(3, 1, ume::phantom::Size::Small);
    let t1v = &truth.images[0].1;
    assert_eq!(j["format"], "nifti1");
    assert_eq!(j["datatype"], "int16");
    assert_eq!(j["shape"], serde_json::json!([96, 96, 62]));
    assert_eq!(j["orientation"], "LPS");
    assert_eq!(j["affine"][0][0], -2.5);
    assert_eq!(j["spacing_mm"], serde_json::json!([2.5, 2.5, 2.5]));
    assert_eq!(j["at"][0]["index"], serde_json::json!([48, 48, 31]));
    assert_eq!(j["at"][0]["value"].as_f64(), t1v.get(48, 48, 31, 0));
    assert_eq!(j["at"][1]["value"], 0.0);
    let s = t1v.stats()[0];
    assert_eq!(j["stats"]["max"].as_f64(), Some(s.max));
    assert_eq!(j["stats"]["nan_count"], 0);

    let out = ume()
        .arg("info")
        .arg(tmp.path())
        .arg("--json")
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(j["layout"], "brats");
    assert_eq!(j["case_count"], 1);
    assert_eq!(
        j["modalities"],
        serde_json::json!(["t1", "t1ce", "t2", "flair"])
    );
}

#[test]
fn cli_errors_are_one_line_and_non_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let bad = tmp.path().join("broken.nii.gz");
    std::fs::write(&bad, b"\x1f\x8b\x08\x00garbage").unwrap();
    let out = ume().arg("info").arg(&bad).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.starts_with("error: ") && err.contains("broken.nii.gz"),
        "{err}"
    );
    let out = ume()
        .args(["info", "x.nii", "--at", "1,2"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
