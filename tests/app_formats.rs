//! The app opens what Slicer and scanner users have: a DICOM folder (with a
//! series picker when it holds several) and a Slicer `.seg.nrrd` on its
//! image, whose segment names and colours become the label table; Save
//! labels as `.seg.nrrd` writes them back.
#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

mod common;

use eframe::egui;
use egui_kittest::kittest::Queryable;
use ume::app::{LoadRequest, UmeApp, ViewOptions};
use ume::io::dicom::write;
use ume::volume::{Geometry, LabelEntry, LabelTable, LabelVolume, Volume};

fn series(dir: &std::path::Path, uid: &str, z: usize) -> Volume {
    let g = Geometry::from_affine([
        [-0.7, 0.0, 0.0, 30.0],
        [0.0, -0.7, 0.0, 20.0],
        [0.0, 0.0, 2.0, -10.0],
        [0.0, 0.0, 0.0, 1.0],
    ]);
    let vals: Vec<i16> = (0..24 * 20 * z).map(|i| (i % 300) as i16).collect();
    let v = Volume::from_values(vec![24, 20, z], &vals, g).unwrap();
    let o = write::SeriesOptions {
        uid: uid.into(),
        modality: "CT".into(),
        reverse_instances: false,
        syntax: write::Syntax::Explicit,
    };
    write::write_series(&v, dir, &o).unwrap();
    v
}

#[test]
fn a_dicom_folder_opens_through_the_series_picker_and_a_seg_nrrd_on_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("study");
    let v = series(&dir.join("a"), "1.2.826.0.1.3680043.10.99.1", 6);
    series(&dir.join("b"), "1.2.826.0.1.3680043.10.99.2", 3);
    let app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
    let mut h = common::settled(app);
    let ctx = h.ctx.clone();
    let req = LoadRequest::from_paths(vec![dir.clone()], None);
    assert!(matches!(req, LoadRequest::Dicom { .. }), "{req:?}");
    h.state_mut().open(&ctx, req);
    common::settle(&mut h);
    // Two series: the picker lists them and nothing is open yet.
    assert_eq!(h.state().series_choice().unwrap().len(), 2);
    assert!(h.state().doc.is_none());
    h.get_by_label_contains("[24, 20, 6]").click();
    common::settle(&mut h);
    let doc = h.state().doc.as_ref().expect("the chosen series opened");
    let img = doc.layers()[0].volume.clone();
    assert_eq!(img.file_shape, vec![24, 20, 6]);
    assert_eq!(img.raw_bytes(), v.raw_bytes());
    assert!(h.state().series_choice().is_none());

    // One file of a series opens the whole series (as in ITK-SNAP).
    let one = dir.join("a").join("IM00003.dcm");
    let req = LoadRequest::from_paths(vec![one], None);
    h.state_mut().open(&ctx, req);
    common::settle(&mut h);
    assert!(h.state().series_choice().is_none());
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(doc.layers()[0].volume.file_shape, vec![24, 20, 6]);

    // A Slicer segmentation on that image: names and colours arrive.
    let mut l = LabelVolume::zeros([24, 20, 6], 1, img.geometry.clone());
    l.set(5, 2);
    l.set(100, 7);
    let table = LabelTable {
        name: "seg".into(),
        labels: vec![
            LabelEntry {
                id: 2,
                name: "liver".into(),
                color: [200, 100, 50],
            },
            LabelEntry {
                id: 7,
                name: "spleen".into(),
                color: [10, 220, 30],
            },
        ],
    };
    let seg = tmp.path().join("case.seg.nrrd");
    ume::io::segnrrd::save(&l, &img.geometry, &table, &seg).unwrap();
    h.state_mut().load_labels(&ctx, seg);
    common::settle(&mut h);
    assert!(h.state().notes.errors().next().is_none());
    let doc = h.state().doc.as_ref().unwrap();
    assert_eq!(doc.table().name_of(2), Some("liver"));
    assert_eq!(
        doc.table().labels.iter().find(|e| e.id == 7).unwrap().color,
        [10, 220, 30]
    );
    let map = doc.labels().at_frame(0).unwrap();
    assert_eq!((map.get(5), map.get(100), map.get(6)), (2, 7, 0));

    // Save labels as .seg.nrrd writes the table inside, no side files.
    let out = tmp.path().join("again.seg.nrrd");
    let maps: Vec<_> = doc.labels().maps().map(|(f, m)| (f, m.clone())).collect();
    ume::app::files::write_labels(&maps, &[], &img.geometry, doc.table(), &out).unwrap();
    let (back, t, notes) = ume::io::segnrrd::load(&out).unwrap();
    assert!(notes.is_empty());
    assert_eq!(back.get(100), 7);
    assert_eq!(t.name_of(7), Some("spleen"));
    assert!(!tmp.path().join("again.seg.nrrd_labels.txt").exists());
}

#[test]
fn the_first_start_demo_is_a_real_brain_with_its_tissues_and_notices() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ViewOptions {
        demo_dir: Some(tmp.path().to_path_buf()),
        ..ViewOptions::default()
    };
    let request = options.request().unwrap();
    assert!(matches!(request, LoadRequest::DemoBrain(_)), "{request:?}");
    let doc = ume::app::loader::load(&request, &|_| {}).unwrap();
    assert_eq!(doc.layers().len(), 1, "one T1");
    let names: Vec<&str> = doc.table().labels.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        ["grey matter", "white matter"],
        "the table beside the labels"
    );
    assert!(
        doc.label_counts(0)[1] > 300_000,
        "grey matter, in mL by the thousand voxels"
    );
    let mut app = UmeApp::new(&egui::Context::default(), None, &options);
    app.set_document(doc);
    #[cfg(feature = "ml")]
    assert_eq!(
        app.ai.model, "demo-brain",
        "a single MR image gets the brain model"
    );
    app.show_about = true;
    let mut h = common::settled(app);
    h.step();
    h.get(egui_kittest::kittest::By::new().label_contains("Louis Collins"));
    h.get(egui_kittest::kittest::By::new().label_contains("nilearn developers"));
}

#[test]
fn a_broken_slice_list_opens_the_labels_with_a_warning_and_no_labelled_slice() {
    let tmp = tempfile::tempdir().unwrap();
    let g = Geometry::identity();
    let v = Volume::from_values(vec![6, 5, 4], &[1.0f32; 120], g.clone()).unwrap();
    let image = tmp.path().join("img.nii.gz");
    ume::io::save_volume(&v, &image).unwrap();
    let mut l = LabelVolume::zeros([6, 5, 4], 1, g);
    l.set(7, 1);
    let labels = tmp.path().join("seg.nii.gz");
    ume::io::save_labels(&l, &labels).unwrap();
    std::fs::write(ume::annotation::slices::sidecar_path(&labels), "[1, 99]").unwrap();
    let doc = ume::app::loader::load(
        &LoadRequest::Files {
            paths: vec![image],
            labels: Some(labels),
        },
        &|_| {},
    )
    .unwrap();
    assert!(
        doc.warnings()
            .iter()
            .any(|w| w.contains("slices.json") && w.contains("99")),
        "{:?}",
        doc.warnings()
    );
    assert_eq!(doc.labelled_slices(0), Vec::<usize>::new());
    assert!(doc.is_partly_labelled());
}

#[test]
fn a_vector_metaimage_opens_showing_its_first_component_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let n = 12 * 10 * 4;
    let values: Vec<f32> = (0..n * 3)
        .map(|i| (i / n) as f32 * 100.0 + (i % n) as f32)
        .collect();
    let v = Volume::from_values(vec![12, 10, 4, 1, 3], &values, Geometry::identity()).unwrap();
    let path = tmp.path().join("field.mha");
    ume::io::save_any(&v, &path).unwrap();
    let app = UmeApp::new(&egui::Context::default(), None, &ViewOptions::default());
    let mut h = common::settled(app);
    let ctx = h.ctx.clone();
    h.state_mut()
        .open(&ctx, LoadRequest::from_paths(vec![path], None));
    common::settle(&mut h);
    assert!(h.state().notes.errors().next().is_none());
    let doc = h.state().doc.as_ref().expect("the vector image opened");
    let img = &doc.layers()[0].volume;
    assert_eq!((img.dims, img.components), ([12, 10, 4], 3));
    assert_eq!(img.raw_bytes(), v.raw_bytes());
    let said: Vec<&String> = doc.warnings().iter().collect();
    assert!(
        said.iter()
            .any(|w| w.contains("3 components") && w.contains("first")),
        "{said:?}"
    );
    // And the views draw frames of it.
    h.run();
    assert!(h.state().notes.errors().next().is_none());
}
