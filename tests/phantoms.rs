//! Phantoms: deterministic, in the real layouts, with ground truth that
//! matches the images' anatomy and the stated conventions.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use ume::dataset::{self, Layout};
use ume::phantom::{Kind, Size, acdc_case, brats_case, generate, totalseg_case};

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

#[test]
fn same_seed_same_files_other_seed_other_files() {
    for kind in [Kind::Brats, Kind::Acdc, Kind::TotalSeg] {
        let (a, b, c) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        generate(kind, Size::Small, 42, 1, a.path(), |_, _| {}).unwrap();
        generate(kind, Size::Small, 42, 1, b.path(), |_, _| {}).unwrap();
        generate(kind, Size::Small, 43, 1, c.path(), |_, _| {}).unwrap();
        let (sa, sb, sc) = (snapshot(a.path()), snapshot(b.path()), snapshot(c.path()));
        assert!(!sa.is_empty());
        assert!(sa == sb, "{kind:?}: same seed must give identical files");
        assert!(sa != sc, "{kind:?}: another seed must differ");
    }
}

fn mean_where(values: &[f32], labels: &ume::volume::LabelVolume, id: u16) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for (i, v) in values.iter().enumerate() {
        if labels.get(i) == id {
            s += f64::from(*v);
            n += 1;
        }
    }
    assert!(n > 0, "label {id} is empty");
    s / n as f64
}

#[test]
fn brats_phantom_has_all_regions_and_realistic_contrasts() {
    let tmp = tempfile::tempdir().unwrap();
    let p = brats_case(7, 1, Size::Small);
    p.write(tmp.path()).unwrap();
    let ds = dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::Brats);
    let case = ds.load_case(0).unwrap();
    let names: Vec<&str> = case.images.iter().map(|(m, _)| m.as_str()).collect();
    assert_eq!(names, ["t1", "t1ce", "t2", "flair"]);
    let labels = case.labels.unwrap();
    assert!(
        labels.data == p.labels.data && labels.dims == p.labels.dims,
        "labels read back equal the ground truth"
    );
    let counts = labels.counts();
    for id in [1, 2, 4] {
        assert!(
            counts.get(id).copied().unwrap_or(0) > 0,
            "label {id} present"
        );
    }
    assert_eq!(case.images[0].1.geometry.orientation(), "LPS");
    let img = |m: usize| case.images[m].1.frame_f32(0).unwrap();
    let (t1ce, flair) = (img(1), img(3));
    // Enhancing rim bright on T1ce; edema bright on FLAIR; both above necrosis.
    assert!(mean_where(&t1ce, &labels, 4) > 1.5 * mean_where(&t1ce, &labels, 1));
    assert!(mean_where(&flair, &labels, 2) > 1.3 * mean_where(&flair, &labels, 0));
}

#[test]
fn acdc_phantom_ed_es_are_volume_extremes() {
    for n in [1, 2] {
        let p = acdc_case(11, n, Size::Small);
        let lv: Vec<usize> = p
            .frame_labels
            .iter()
            .map(|l| l.counts().get(3).copied().unwrap_or(0))
            .collect();
        let max_t = (0..lv.len()).max_by_key(|&t| lv[t]).unwrap();
        let min_t = (0..lv.len()).min_by_key(|&t| lv[t]).unwrap();
        assert_eq!(max_t, p.info.ed_index(), "LV largest at ED: {lv:?}");
        assert_eq!(min_t, p.info.es_index(), "LV smallest at ES: {lv:?}");
        assert!(p.info.nb_frame >= 20 && p.cine.frames == p.info.nb_frame);
        let sp = p.cine.spacing_mm();
        assert!(
            (sp[2] - 10.0).abs() < 1e-9 && sp[0] < 5.0,
            "anisotropic spacing {sp:?}"
        );
        // Odd cases are stored oblique, even ones axis-aligned.
        assert_eq!(p.cine.geometry.obliquity_rad() > 0.1, n % 2 == 1);
        for id in [1, 2, 3] {
            assert!(p.frame_labels[p.info.es_index()].counts()[id as usize] > 0);
        }
    }
}

#[test]
fn acdc_layout_round_trip() {
    let tmp = tempfile::tempdir().unwrap();
    generate(Kind::Acdc, Size::Small, 5, 2, tmp.path(), |_, _| {}).unwrap();
    let ds = dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::Acdc);
    assert_eq!(ds.cases.len(), 2);
    let truth = acdc_case(5, 1, Size::Small);
    let case = ds.load_case(0).unwrap();
    let info = case.acdc.clone().unwrap();
    assert_eq!(info, truth.info);
    assert_eq!(case.images[0].1.frames, truth.info.nb_frame);
    let frames: Vec<usize> = case.frame_labels.iter().map(|(t, _)| *t).collect();
    assert_eq!(frames, vec![info.ed_index(), info.es_index()]);
    assert!(case.frame_labels[1].1.data == truth.frame_labels[info.es_index()].data);
}

#[test]
fn totalseg_phantom_masks_merge_to_ground_truth() {
    let tmp = tempfile::tempdir().unwrap();
    generate(Kind::TotalSeg, Size::Small, 9, 2, tmp.path(), |_, _| {}).unwrap();
    let ds = dataset::open(tmp.path()).unwrap();
    assert_eq!(ds.layout, Layout::TotalSegmentator);
    for n in [1, 2] {
        let truth = totalseg_case(9, n, Size::Small);
        let case = ds.load_case(n - 1).unwrap();
        match &ds.cases[n - 1].labels {
            dataset::LabelSource::Masks(m) => assert_eq!(m.len(), 117),
            other => panic!("expected masks, got {other:?}"),
        }
        let labels = case.labels.unwrap();
        assert!(
            labels.data == truth.labels.data,
            "merged masks equal the ground truth"
        );
        let present: Vec<&str> = labels
            .counts()
            .iter()
            .enumerate()
            .filter(|&(id, &c)| id > 0 && c > 0)
            .map(|(id, _)| case.table.name_of(id as u16).unwrap())
            .collect();
        assert!(present.len() >= 10, "{present:?}");
        for name in [
            "liver",
            "spleen",
            "kidney_left",
            "kidney_right",
            "aorta",
            "lung_middle_lobe_right",
            "vertebrae_L1",
        ] {
            assert!(present.contains(&name), "{name} missing from {present:?}");
        }
        // Anatomy is in world space: the liver is on the patient's right
        // (+x in RAS) whether the case is stored LPS (even) or RAS (odd).
        let ct = &case.images[0].1;
        assert_eq!(
            ct.geometry.orientation(),
            if n % 2 == 0 { "LPS" } else { "RAS" }
        );
        let liver = case.table.id_of("liver").unwrap();
        let [nx, ny, nz] = ct.dims;
        let (mut x_sum, mut count) = (0.0, 0);
        for k in 0..nz {
            for j in 0..ny {
                for i in 0..nx {
                    if labels.get(i + nx * (j + ny * k)) == liver {
                        x_sum += ct.geometry.world_from_index([i as f64, j as f64, k as f64])[0];
                        count += 1;
                    }
                }
            }
        }
        assert!(
            x_sum / f64::from(count) > 20.0,
            "liver centroid x = {}",
            x_sum / f64::from(count)
        );
        // HU: lungs dark, liver soft tissue.
        let hu = ct.frame_f32(0).unwrap();
        assert!(
            mean_where(
                &hu,
                &labels,
                case.table.id_of("lung_upper_lobe_left").unwrap()
            ) < -700.0
        );
        assert!((mean_where(&hu, &labels, liver) - 60.0).abs() < 10.0);
    }
}
