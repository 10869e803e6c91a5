//! `ume eval` as a user runs it: a pair of label files, a label file against
//! a dataset case folder, and two folders of phantom cases; JSON fields,
//! ranking, and clear errors.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use ume::phantom::{Kind, Size, generate};
use ume::volume::{LabelData, LabelVolume};

fn ume(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(args)
        .output()
        .unwrap()
}

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A copy of a label map with every label moved `dx` voxels along x.
fn shifted(l: &LabelVolume, dx: usize) -> LabelVolume {
    let [nx, ny, nz] = l.dims;
    let mut out = l.clone();
    let mut ids = vec![0u8; nx * ny * nz];
    for k in 0..nz {
        for j in 0..ny {
            for i in dx..nx {
                ids[i + nx * (j + ny * k)] = l.get(i - dx + nx * (j + ny * k)) as u8;
            }
        }
    }
    out.data = LabelData::U8(ids);
    out
}

fn p(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn a_pair_of_files() {
    let tmp = tempfile::tempdir().unwrap();
    let case = ume::phantom::totalseg_case(3, 1, Size::Small);
    let gt = tmp.path().join("gt.nii.gz");
    let pred = tmp.path().join("pred.nii.gz");
    ume::io::save_labels(&case.labels, &gt).unwrap();
    ume::io::save_labels(&shifted(&case.labels, 1), &pred).unwrap();
    let j = json(&ume(&[
        "eval",
        "--pred",
        p(&pred),
        "--gt",
        p(&gt),
        "--labels",
        "totalseg",
        "--json",
    ]));
    let structures = j["structures"].as_array().unwrap();
    assert!(structures.len() >= 10);
    let liver = structures.iter().find(|s| s["name"] == "liver").unwrap();
    for key in [
        "label",
        "dice",
        "iou",
        "hd95_mm",
        "nsd",
        "assd_mm",
        "volume_gt_ml",
        "volume_pred_ml",
    ] {
        assert!(liver.get(key).is_some(), "missing {key}");
    }
    let dice = liver["dice"].as_f64().unwrap();
    assert!(dice > 0.8 && dice < 1.0, "{dice}");
    // A one-voxel shift along x of 4.5 mm voxels: every surface point moves ≤ 4.5 mm.
    assert!((liver["hd95_mm"].as_f64().unwrap() - 4.5).abs() < 1e-9);
    assert!(j["mean_dice"].as_f64().unwrap() > 0.5);

    let same = json(&ume(&["eval", "--pred", p(&gt), "--gt", p(&gt), "--json"]));
    for s in same["structures"].as_array().unwrap() {
        assert_eq!(
            (s["dice"].as_f64(), s["hd95_mm"].as_f64()),
            (Some(1.0), Some(0.0))
        );
    }
    let csv = tmp.path().join("out.csv");
    assert!(
        ume(&["eval", "--pred", p(&pred), "--gt", p(&gt), "--csv", p(&csv)])
            .status
            .success()
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(
        text.starts_with("case,label,name,dice") && text.lines().count() == structures.len() + 1
    );
}

#[test]
fn two_folders_of_phantom_cases_rank_structures() {
    let tmp = tempfile::tempdir().unwrap();
    let gt_dir = tmp.path().join("gt");
    let pred_dir = tmp.path().join("pred");
    let cases = generate(Kind::Brats, Size::Small, 8, 2, &gt_dir, |_, _| {}).unwrap();
    for (n, case) in cases.iter().enumerate() {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let seg = format!("{name}/{name}_seg.nii.gz");
        let labels = ume::io::load_labels(&gt_dir.join(&seg)).unwrap();
        std::fs::create_dir_all(pred_dir.join(&name)).unwrap();
        let pred = if n == 0 { labels } else { shifted(&labels, 2) };
        ume::io::save_labels(&pred, &pred_dir.join(&seg)).unwrap();
    }
    let j = json(&ume(&[
        "eval",
        "--pred",
        p(&pred_dir),
        "--gt",
        p(&gt_dir),
        "--labels",
        "brats",
        "--json",
    ]));
    let per_case = j["cases"].as_array().unwrap();
    assert_eq!(
        per_case.len(),
        2,
        "only files present in both folders are paired"
    );
    assert_eq!(per_case[0]["mean_dice"].as_f64(), Some(1.0));
    assert!(per_case[1]["mean_dice"].as_f64().unwrap() < 1.0);
    let agg = j["aggregate"].as_array().unwrap();
    let names: Vec<&str> = agg.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    let dice: Vec<f64> = agg.iter().map(|s| s["dice"].as_f64().unwrap()).collect();
    assert!(
        dice.windows(2).all(|w| w[0] >= w[1]),
        "ranked best first: {dice:?}"
    );
    assert_eq!(agg[0]["detection_rate"]["0.1"].as_f64(), Some(1.0));
}

#[test]
fn a_file_against_a_totalsegmentator_case_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let cases = generate(Kind::TotalSeg, Size::Small, 9, 2, tmp.path(), |_, _| {}).unwrap();
    // The case's ground truth as the layout assembles it from its masks.
    let case = ume::dataset::open(&cases[0]).unwrap().load_case(0).unwrap();
    let pred = tmp.path().join("pred.nii.gz");
    ume::io::save_labels(&shifted(case.labels.as_ref().unwrap(), 2), &pred).unwrap();
    let j = json(&ume(&[
        "eval",
        "--pred",
        p(&pred),
        "--gt",
        p(&cases[0]),
        "--json",
    ]));
    let structures = j["structures"].as_array().unwrap();
    let names: Vec<&str> = structures
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"liver"), "named by the layout: {names:?}");
    let liver = structures.iter().find(|s| s["name"] == "liver").unwrap();
    let dice = liver["dice"].as_f64().unwrap();
    assert!(dice > 0.5 && dice < 1.0, "a 2-voxel shift: {dice}");
    // A dataset of several cases is not one ground truth.
    let out = ume(&["eval", "--pred", p(&pred), "--gt", p(tmp.path())]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("2 cases"), "{err}");
    // A cine labels only some frames: no 3D ground truth to compare with.
    let acdc = generate(
        Kind::Acdc,
        Size::Small,
        9,
        1,
        &tmp.path().join("acdc"),
        |_, _| {},
    )
    .unwrap();
    let out = ume(&["eval", "--pred", p(&pred), "--gt", p(&acdc[0])]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("labelled frames"), "{err}");
}

#[test]
fn an_unwritable_output_is_named_once() {
    let tmp = tempfile::tempdir().unwrap();
    let seg = tmp.path().join("seg.nii.gz");
    let case = ume::phantom::brats_case(3, 1, Size::Small);
    ume::io::save_labels(&case.labels, &seg).unwrap();
    let csv = tmp.path().join("no/such/folder/metrics.csv");
    let out = ume(&["eval", "--pred", p(&seg), "--gt", p(&seg), "--csv", p(&csv)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics.csv"), "{err}");
    assert_eq!(err.matches("No such file").count(), 1, "{err}");
}

#[test]
fn grids_that_differ_name_both_files() {
    let tmp = tempfile::tempdir().unwrap();
    let a = ume::phantom::acdc_case(1, 1, Size::Small);
    let b = ume::phantom::acdc_case(1, 2, Size::Small); // odd/even cases differ in orientation
    let (pa, pb) = (
        tmp.path().join("first.nii.gz"),
        tmp.path().join("second.nii.gz"),
    );
    ume::io::save_labels(&a.frame_labels[0], &pa).unwrap();
    ume::io::save_labels(&b.frame_labels[0], &pb).unwrap();
    let out = ume(&["eval", "--pred", p(&pa), "--gt", p(&pb)]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("first.nii.gz") && err.contains("second.nii.gz") && err.contains("same grid"),
        "{err}"
    );
}

#[test]
fn keyframes_of_a_cardiac_case_find_ed_and_es() {
    let tmp = tempfile::tempdir().unwrap();
    let dirs = generate(Kind::Acdc, Size::Small, 77, 1, tmp.path(), |_, _| {}).unwrap();
    let j = json(&ume(&[
        "keyframes",
        p(&dirs[0]),
        "--k",
        "2",
        "--strategy",
        "content",
        "--json",
    ]));
    let frames = j["frames"].as_u64().unwrap() as usize;
    assert!(frames >= 20);
    let (ed, es) = (
        j["reference"]["ed"].as_u64().unwrap() as usize,
        j["reference"]["es"].as_u64().unwrap() as usize,
    );
    let selected: Vec<usize> = j["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    let near = |a: usize, b: usize| a.abs_diff(b).min(frames - a.abs_diff(b)) <= 1;
    assert!(
        selected.iter().any(|&t| near(t, ed)) && selected.iter().any(|&t| near(t, es)),
        "{selected:?} vs ED {ed} ES {es}"
    );
    assert_eq!(j["scores"]["content"].as_array().unwrap().len(), frames);
    assert_eq!(j["scores"]["uniform"].as_array().unwrap().len(), frames);
    assert!(j["scores"]["attention"].is_null());
    let u = json(&ume(&[
        "keyframes",
        p(&dirs[0]),
        "--k",
        "4",
        "--strategy",
        "uniform",
        "--json",
    ]));
    let last = frames - 1;
    let expected: Vec<usize> = (0..4)
        .map(|i| ((i * last) as f64 / 3.0).round() as usize)
        .collect();
    let got: Vec<usize> = u["selected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect();
    assert_eq!(got, expected);
    let out = ume(&["keyframes", p(&dirs[0]), "--strategy", "fused"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("trained UME encoder"));
}
