//! DICOM conformance. Real files from pydicom's and pydicom-data's test sets
//! (fetched from PyPI into a cache by scripts/fetch_test_data.sh) are read
//! and compared with reference values pydicom made
//! (tests/fixtures/dicom_reference.json, by scripts/dicom_reference.py):
//! shape, affine voxel → RAS mm, value statistics and samples. Refusals are
//! on purpose and named. Series written by UME's own writer give exact
//! ground truth for what the test files do not cover: 4D time points,
//! gantry tilt, uneven spacing and InstanceNumber against position.
#![allow(clippy::unwrap_used, clippy::needless_range_loop)] // tests: a panic is the failure report

use serde_json::Value;
use sha2::Digest;
use std::path::{Path, PathBuf};

#[path = "common/registry.rs"]
mod registry;
use ume::io::dicom::{self, write};
use ume::volume::{Geometry, Volume};

/// The DICOM files of the registry test-file cache.
fn data() -> PathBuf {
    registry::test_data().join("dicom")
}

fn reference() -> Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/dicom_reference.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn sha(p: &Path) -> String {
    let d = sha2::Sha256::digest(std::fs::read(p).unwrap());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn affine_close(v: &Volume, want: &Value) -> bool {
    (0..3).all(|r| {
        (0..4).all(|c| {
            (v.geometry.world_from_voxel[r][c] - want[r][c].as_f64().unwrap()).abs() < 1e-3
        })
    })
}

#[test]
fn every_reference_case_reads_as_pydicom_reads_it() {
    let root = data();
    let refs = reference();
    let mut checked = 0;
    for case in refs["cases"].as_array().unwrap() {
        let rel = case["path"].as_str().unwrap();
        let path = root.join(rel);
        for (name, want) in case["files"].as_object().unwrap() {
            let f = if path.is_dir() {
                path.join(name)
            } else {
                path.clone()
            };
            assert_eq!(&sha(&f), want.as_str().unwrap(), "{rel}: {name} changed");
        }
        let scan = dicom::scan(std::slice::from_ref(&path));
        let tol = case["tolerance"].as_f64().unwrap();
        let wanted = case["series"].as_array().unwrap();
        assert_eq!(
            scan.series.len(),
            wanted.len(),
            "{rel}: series found {:?}",
            scan.series.iter().map(|s| &s.id).collect::<Vec<_>>()
        );
        let mut loaded: Vec<(String, Volume)> = scan
            .series
            .iter()
            .map(|s| {
                let v = dicom::load_series(&path, s).unwrap_or_else(|e| panic!("{rel}: {e}"));
                (s.id.clone(), v)
            })
            .collect();
        for want in wanted {
            // Match by UID, shape, placement and content (parts of one UID
            // differ in orientation or position; one-image series at one
            // place differ in content).
            let uid = want["uid"].as_str().unwrap();
            let mean = want["mean"].as_f64().unwrap();
            let k = loaded
                .iter()
                .position(|(id, v)| {
                    id.split('#').next() == Some(uid)
                        && serde_json::to_value(&v.file_shape).unwrap() == want["shape"]
                        && affine_close(v, &want["affine"])
                        && (v.stats()[0].mean - mean).abs() <= tol + 1e-3 * mean.abs().max(1.0)
                })
                .unwrap_or_else(|| {
                    let got: Vec<_> = loaded
                        .iter()
                        .map(|(id, v)| (id, &v.file_shape, v.geometry.world_from_voxel))
                        .collect();
                    panic!("{rel}: no series like {want} among {got:?}")
                });
            let (_, v) = loaded.remove(k);
            let s = &v.stats()[0];
            let close = |a: f64, b: &Value, what: &str| {
                let b = b.as_f64().unwrap();
                assert!(
                    (a - b).abs() <= tol + 1e-4 * b.abs().max(1.0),
                    "{rel}: {what} {a} vs pydicom {b}"
                );
            };
            close(s.min, &want["min"], "min");
            close(s.max, &want["max"], "max");
            close(s.mean, &want["mean"], "mean");
            for sample in want["samples"].as_array().unwrap() {
                let idx: Vec<usize> = serde_json::from_value(sample["index"].clone()).unwrap();
                let flat = v.flat_index_of(&idx).unwrap();
                close(
                    v.value_at(flat, 0),
                    &sample["value"],
                    &format!("value at {idx:?}"),
                );
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} series checked");
}

#[test]
fn refusals_are_on_purpose_and_name_the_file() {
    let root = data();
    for r in reference()["refusals"].as_array().unwrap() {
        let rel = r["path"].as_str().unwrap();
        let path = root.join(rel);
        assert_eq!(sha(&path), r["sha256"].as_str().unwrap(), "{rel} changed");
        let err = match ume::io::load(&path) {
            Ok(v) => panic!("{rel} loaded as {:?}", v.file_shape),
            Err(e) => e.to_string(),
        };
        let words = r["error_contains"].as_str().unwrap();
        assert!(err.contains(words), "{rel}: {err:?} should say {words:?}");
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        assert!(err.contains(&name), "{rel}: {err:?} should name the file");
    }
}

#[test]
fn a_folder_of_several_series_lists_them_and_sets_a_localizer_apart() {
    let root = data().join("pydicom/dicomdirtests/98892003/MR2");
    let scan = dicom::scan(std::slice::from_ref(&root));
    // 3 UIDs; two of them change orientation image by image (3-plane
    // localizers): every orientation is its own part, never one stack.
    assert_eq!(scan.series.len(), 7);
    assert_eq!(scan.series.iter().filter(|s| s.id.contains('#')).count(), 4);
    assert!(scan.series.iter().all(|s| s.images == 1));
    let err = dicom::load(&root, None).unwrap_err().to_string();
    assert!(
        err.contains("7 series found") && err.contains("--series"),
        "{err}"
    );
    let id = scan.series[0].id.clone();
    assert_eq!(dicom::load(&root, Some(&id)).unwrap().dims, [16, 16, 1]);
}

#[test]
fn a_gap_in_a_real_series_is_warned_and_instance_numbers_do_not_sort() {
    let root = data().join("pydicom/dicomdirtests");
    // CT2: one slice ~200 mm away from three 1.25 mm-spaced ones.
    let v = dicom::load(&root.join("77654033/CT2"), None).unwrap();
    assert!(
        v.warnings
            .iter()
            .any(|w| w.contains("uneven slice spacing")),
        "{:?}",
        v.warnings
    );
    // CT5N: InstanceNumber rises as the position falls; slices still go
    // inferior → superior along +k.
    let v = dicom::load(&root.join("98892001/CT5N"), None).unwrap();
    assert!(v.geometry.world_from_voxel[2][2] > 0.0);
    assert!((v.geometry.world_from_voxel[2][3] - -1.2375).abs() < 1e-3);
}

/// A 4D int16 volume, oblique, with values that say where they are.
fn synthetic(dims: [usize; 3], frames: usize, affine: [[f64; 4]; 4]) -> Volume {
    let n = dims[0] * dims[1] * dims[2] * frames;
    let vals: Vec<i16> = (0..n).map(|i| (i % 2000) as i16 - 1000).collect();
    let mut shape = dims.to_vec();
    if frames > 1 {
        shape.push(frames);
    }
    Volume::from_values(shape, &vals, Geometry::from_affine(affine)).unwrap()
}

fn options(syntax: write::Syntax, reverse: bool) -> write::SeriesOptions {
    write::SeriesOptions {
        uid: "1.2.826.0.1.3680043.10.1234.1".into(),
        modality: "MR".into(),
        reverse_instances: reverse,
        syntax,
    }
}

#[test]
fn written_series_read_back_exactly_4d_rle_and_reversed_instances() {
    let tmp = tempfile::tempdir().unwrap();
    // Coronal slices stepping along the plane normal (DICOM's order).
    let affine = [
        [-0.8, 0.0, 0.0, 40.0],
        [0.0, 0.0, -3.0, -20.0],
        [0.0, -0.9, 0.0, 10.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let v = synthetic([7, 5, 4], 3, affine);
    for (k, syntax) in [write::Syntax::Explicit, write::Syntax::Rle]
        .into_iter()
        .enumerate()
    {
        let dir = tmp.path().join(format!("s{k}"));
        write::write_series(&v, &dir, &options(syntax, true)).unwrap();
        let back = ume::io::load_with(&dir, None).unwrap();
        assert_eq!(back.file_shape, vec![7, 5, 4, 3]);
        assert_eq!(
            back.raw_bytes(),
            v.raw_bytes(),
            "{syntax:?}: voxels in place"
        );
        for r in 0..3 {
            for c in 0..4 {
                let (a, b) = (back.geometry.world_from_voxel[r][c], affine[r][c]);
                assert!(
                    (a - b).abs() < 1e-4,
                    "{syntax:?} affine[{r}][{c}] {a} vs {b}"
                );
            }
        }
    }
}

#[test]
fn gantry_tilt_shears_the_affine_and_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    // Slices step 2 mm in z and 0.5 mm in y: a tilted gantry.
    let affine = [
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.5, 0.0],
        [0.0, 0.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let v = synthetic([6, 6, 5], 1, affine);
    write::write_series(&v, tmp.path(), &options(write::Syntax::Explicit, false)).unwrap();
    let back = dicom::load(tmp.path(), None).unwrap();
    assert!((back.geometry.world_from_voxel[1][2] - 0.5).abs() < 1e-4);
    assert!(
        back.warnings.iter().any(|w| w.contains("gantry tilt")),
        "{:?}",
        back.warnings
    );
}

#[test]
fn broken_series_are_clear_errors_not_panics() {
    let tmp = tempfile::tempdir().unwrap();
    let v = synthetic([8, 8, 3], 1, Geometry::identity().world_from_voxel);
    let files =
        write::write_series(&v, tmp.path(), &options(write::Syntax::Explicit, false)).unwrap();
    // Truncate one file in its pixel data.
    // Truncate one file in its pixel data: the series opens without it and
    // says which file was left out and why.
    let bytes = std::fs::read(&files[1]).unwrap();
    std::fs::write(&files[1], &bytes[..bytes.len() - 40]).unwrap();
    let partial = dicom::load(tmp.path(), None).unwrap();
    assert_eq!(partial.dims[2], 2);
    let w = partial.warnings.join("\n");
    assert!(w.contains("IM00002.dcm") && w.contains("left out"), "{w}");
    // Alone, the truncated file is an error naming it.
    let err = ume::io::load(&files[1]).unwrap_err().to_string();
    assert!(
        err.contains("IM00002.dcm") && err.contains("truncated"),
        "{err}"
    );
    // Garbage with a DICM magic, and a duplicated slice.
    let tmp2 = tempfile::tempdir().unwrap();
    let mut junk = vec![0u8; 128];
    junk.extend_from_slice(b"DICM");
    junk.extend((0..500u32).map(|i| (i * 31 % 251) as u8));
    std::fs::write(tmp2.path().join("junk.dcm"), &junk).unwrap();
    assert!(ume::io::load(&tmp2.path().join("junk.dcm")).is_err());
    write::write_series(
        &v,
        &tmp2.path().join("a"),
        &options(write::Syntax::Explicit, false),
    )
    .unwrap();
    std::fs::copy(files[0].clone(), tmp2.path().join("a/copy.dcm")).unwrap();
    let err = dicom::load(tmp2.path(), None).unwrap_err().to_string();
    assert!(err.contains("not a regular series"), "{err}");
}

fn ume(args: &[&std::ffi::OsStr]) -> (bool, String, String) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_ume"))
        .args(args)
        .output()
        .unwrap();
    (
        o.status.success(),
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    )
}

#[test]
fn cli_lists_series_describes_one_and_converts_it_to_nifti() {
    let tmp = tempfile::tempdir().unwrap();
    let study = tmp.path().join("study");
    let affine = [
        [-0.5, 0.0, 0.0, 12.0],
        [0.0, -0.5, 0.0, 8.0],
        [0.0, 0.0, 1.5, -4.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let v = synthetic([10, 8, 5], 1, affine);
    let mut o = options(write::Syntax::Rle, true);
    write::write_series(&v, &study.join("a"), &o).unwrap();
    o.uid = "1.2.826.0.1.3680043.10.1234.2".into();
    write::write_series(&synthetic([6, 6, 2], 1, affine), &study.join("b"), &o).unwrap();
    let s = study.as_os_str();
    // Two series: the listing (UID, modality, size, slices).
    let (ok, out, err) = ume(&["info".as_ref(), s, "--json".as_ref()]);
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["format"], "dicom");
    let series = j["series"].as_array().unwrap();
    assert_eq!(series.len(), 2);
    assert_eq!(series[0]["uid"], "1.2.826.0.1.3680043.10.1234.1");
    assert_eq!(series[0]["size"], serde_json::json!([10, 8]));
    assert_eq!(series[0]["slices"], 5);
    assert_eq!(series[0]["modality"], "MR");
    // One of them, as for a NIfTI file.
    let uid = "1.2.826.0.1.3680043.10.1234.1";
    let (ok, out, err) = ume(&[
        "info".as_ref(),
        s,
        "--series".as_ref(),
        uid.as_ref(),
        "--json".as_ref(),
        "--at".as_ref(),
        "3,2,4".as_ref(),
    ]);
    assert!(ok, "{err}");
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["format"], "dicom");
    assert_eq!(j["shape"], serde_json::json!([10, 8, 5]));
    assert_eq!(j["affine"][2][2], 1.5);
    let flat = v.flat_index_of(&[3, 2, 4]).unwrap();
    assert_eq!(j["at"][0]["value"].as_f64().unwrap(), v.value_at(flat, 0));
    // Without --series, convert names the choice; with it, NIfTI with the
    // geometry and voxels kept.
    let nii = tmp.path().join("a.nii.gz");
    let (ok, _, err) = ume(&["convert".as_ref(), s, "-o".as_ref(), nii.as_os_str()]);
    assert!(!ok && err.contains("--series"), "{err}");
    let (ok, _, err) = ume(&[
        "convert".as_ref(),
        s,
        "-o".as_ref(),
        nii.as_os_str(),
        "--series".as_ref(),
        uid.as_ref(),
    ]);
    assert!(ok, "{err}");
    let back = ume::io::load(&nii).unwrap();
    assert_eq!(back.raw_bytes(), v.raw_bytes());
    assert_eq!(back.geometry.world_from_voxel, v.geometry.world_from_voxel);
}

/// An enhanced multi-frame file as scanners write cines: 2 slices × 3
/// cardiac phases, frames stored out of order, position per frame and
/// TemporalPositionIndex in the per-frame groups, orientation and spacing
/// in the shared group.
#[test]
fn an_enhanced_multiframe_cine_becomes_4d_in_position_and_phase_order() {
    use dicom_core::value::{DataSetSequence, PrimitiveValue};
    use dicom_core::{DataElement, VR};
    use dicom_dictionary_std::{tags, uids};
    use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
    let obj = |els: Vec<DataElement<InMemDicomObject>>| InMemDicomObject::from_element_iter(els);
    let seq = |tag, item: InMemDicomObject| {
        DataElement::new(tag, VR::SQ, DataSetSequence::from(vec![item]))
    };
    let ds = |tag, s: &str| DataElement::new(tag, VR::DS, PrimitiveValue::from(s));
    // (slice, phase) of each stored frame, out of order.
    let stored = [(1, 2), (0, 0), (1, 0), (0, 2), (0, 1), (1, 1)];
    let (nx, ny) = (4usize, 3usize);
    let mut pixels = Vec::new();
    let per_frame: Vec<InMemDicomObject> = stored
        .iter()
        .map(|&(z, t)| {
            pixels.extend((0..nx * ny).map(|i| (100 * t + 10 * z + i) as u16));
            obj(vec![
                seq(
                    tags::PLANE_POSITION_SEQUENCE,
                    obj(vec![ds(
                        tags::IMAGE_POSITION_PATIENT,
                        &format!("0\\0\\{}", 8 * z),
                    )]),
                ),
                seq(
                    tags::FRAME_CONTENT_SEQUENCE,
                    obj(vec![DataElement::new(
                        tags::TEMPORAL_POSITION_INDEX,
                        VR::UL,
                        PrimitiveValue::from(t as u32 + 1),
                    )]),
                ),
            ])
        })
        .collect();
    let shared = obj(vec![
        seq(
            tags::PLANE_ORIENTATION_SEQUENCE,
            obj(vec![ds(
                tags::IMAGE_ORIENTATION_PATIENT,
                "1\\0\\0\\0\\1\\0",
            )]),
        ),
        seq(
            tags::PIXEL_MEASURES_SEQUENCE,
            obj(vec![
                ds(tags::PIXEL_SPACING, "1.5\\1.25"),
                ds(tags::SLICE_THICKNESS, "8"),
            ]),
        ),
    ]);
    let us = |tag, v: u16| DataElement::new(tag, VR::US, PrimitiveValue::from(v));
    let s = |tag, vr, v: &str| DataElement::new(tag, vr, PrimitiveValue::from(v));
    let file = obj(vec![
        s(tags::SOP_CLASS_UID, VR::UI, uids::ENHANCED_MR_IMAGE_STORAGE),
        s(
            tags::SOP_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.555.1",
        ),
        s(tags::MODALITY, VR::CS, "MR"),
        s(
            tags::SERIES_INSTANCE_UID,
            VR::UI,
            "1.2.826.0.1.3680043.10.555",
        ),
        DataElement::new(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(vec![shared]),
        ),
        DataElement::new(
            tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
            VR::SQ,
            DataSetSequence::from(per_frame),
        ),
        us(tags::SAMPLES_PER_PIXEL, 1),
        s(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "MONOCHROME2"),
        s(tags::NUMBER_OF_FRAMES, VR::IS, "6"),
        us(tags::ROWS, ny as u16),
        us(tags::COLUMNS, nx as u16),
        us(tags::BITS_ALLOCATED, 16),
        us(tags::BITS_STORED, 16),
        us(tags::HIGH_BIT, 15),
        us(tags::PIXEL_REPRESENTATION, 0),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(pixels.into())),
    ])
    .with_exact_meta(
        FileMetaTableBuilder::new()
            .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
            .media_storage_sop_class_uid(uids::ENHANCED_MR_IMAGE_STORAGE)
            .media_storage_sop_instance_uid("1.2.826.0.1.3680043.10.555.1")
            .build()
            .unwrap(),
    );
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("cine.dcm");
    file.write_to_file(&p).unwrap();
    let v = ume::io::load(&p).unwrap();
    assert_eq!(v.file_shape, vec![4, 3, 2, 3]);
    for t in 0..3 {
        for z in 0..2 {
            let flat = v.flat_index_of(&[1, 2, z, t]).unwrap();
            assert_eq!(
                v.value_at(flat, 0),
                (100 * t + 10 * z + 2 * 4 + 1) as f64,
                "z {z} t {t}"
            );
        }
    }
    assert_eq!(v.geometry.world_from_voxel[0][0], -1.25);
    assert_eq!(v.geometry.world_from_voxel[1][1], -1.5);
    assert_eq!(v.geometry.world_from_voxel[2][2], 8.0);
}

#[test]
fn fuzz_found_inputs_are_errors() {
    // Each input once crashed, hung or made dicom-rs allocate gigabytes;
    // now each is an error naming the file and what is wrong with it.
    let cases = [
        // A JPEG 2000 stream that made the codec adapter panic (wider than
        // the header says: now refused before decoding).
        ("dicom_j2k_decoder_panic.dcm", "declares 131136 × 64 pixels"),
        // 9 million × 64 pixels declared for a 64 × 64 image (2.5 GB, 8 s).
        (
            "dicom_j2k_huge_declared_size.dcm",
            "declares 9044032 × 64 pixels",
        ),
        // An implicit-VR sequence whose inner element claims 3.7 GB.
        (
            "dicom_nested_length_oom.dcm",
            "(0012,0000) claims 3758161918 bytes",
        ),
        // An undefined-length OB that is not pixel data: dicom-rs reads it
        // as a sequence of items, one of whose elements claims 3.7 GB.
        ("dicom_undefined_ob_oom.dcm", "claims 3758161918 bytes"),
        // A Modality of VR AT and length 2: dicom-rs reads whole tags only
        // and starts the next header two bytes early, inside a value.
        ("dicom_odd_length_at_oom.dcm", "claims 1398210564 bytes"),
        // An (FFFE,FF0D) in a sequence item: dicom-rs reads any (FFFE,xxxx)
        // other than the item tags as a UN element of its length.
        (
            "dicom_ffe_element_oom.dcm",
            "(FFFE,FF0D) claims 3758292991 bytes",
        ),
    ];
    for (name, want) in cases {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/fuzz")
            .join(name);
        let err = ume::io::load(&p).unwrap_err().to_string();
        assert!(err.contains(name) && err.contains(want), "{name}: {err}");
    }
}

/// Rewrite one element of a written file (to make the oddities scanners
/// produce).
fn patch(path: &Path, tag: dicom_core::Tag, vr: dicom_core::VR, value: &str) {
    let mut obj = dicom_object::open_file(path).unwrap();
    obj.put(dicom_core::DataElement::new(
        tag,
        vr,
        dicom_core::value::PrimitiveValue::from(value),
    ));
    obj.write_to_file(path).unwrap();
}

#[test]
fn rounded_positions_per_slice_rescale_and_a_scout_are_handled_and_said() {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let tmp = tempfile::tempdir().unwrap();
    let affine = [
        [-1.0, 0.0, 0.0, 0.0],
        [0.0, -1.0, 0.0, 0.0],
        [0.0, 0.0, 2.0, 0.0],
        [0.0, 0.0, 0.0, 1.0],
    ];
    let v = synthetic([6, 6, 4], 1, affine);
    let files =
        write::write_series(&v, tmp.path(), &options(write::Syntax::Explicit, false)).unwrap();
    // Slice 1 at z = 2.05 instead of 2 (a position rounded by the scanner),
    // and slice 2 stored with slope 2.
    patch(
        &files[1],
        tags::IMAGE_POSITION_PATIENT,
        VR::DS,
        "0\\0\\2.05",
    );
    patch(&files[2], tags::RESCALE_SLOPE, VR::DS, "2");
    let back = dicom::load(tmp.path(), None).unwrap();
    let w = back.warnings.join("\n");
    assert!(
        w.contains("jitter") && w.contains("mean spacing 2.0000"),
        "{w}"
    );
    assert!((back.geometry.world_from_voxel[2][2] - 2.0).abs() < 1e-9);
    // Rescale differs: values become float32 with each slice's own rescale.
    assert_eq!(back.dtype, ume::volume::DataType::F32);
    assert!(w.contains("float32"), "{w}");
    let at = |z: usize| back.value_at(back.flat_index_of(&[1, 1, z]).unwrap(), 0);
    let raw = |z: usize| v.value_at(v.flat_index_of(&[1, 1, z]).unwrap(), 0);
    assert_eq!(at(1), raw(1));
    assert_eq!(at(2), 2.0 * raw(2));
    // A scout image in the series is set apart, and the main part says so.
    patch(
        &files[3],
        tags::IMAGE_TYPE,
        VR::CS,
        "ORIGINAL\\PRIMARY\\LOCALIZER",
    );
    let scan = dicom::scan(&[tmp.path().to_path_buf()]);
    assert_eq!(scan.series.len(), 2);
    assert_eq!(
        scan.series[1].note.as_deref(),
        Some("localizer (scout) images")
    );
    let main = dicom::load_series(tmp.path(), &scan.series[0]).unwrap();
    assert_eq!(main.dims[2], 3);
    assert!(
        main.warnings.iter().any(|w| w.contains("set apart")),
        "{:?}",
        main.warnings
    );
}
