//! Recognising folder layouts by their file names, without reading voxels.
//! A folder may be one case or hold case folders one or two levels down
//! (e.g. `ACDC/training/patient001`).

use super::{CaseSpec, Dataset, DatasetError, LabelSource, Layout};
use crate::volume::LabelTable;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// ACDC `Info.cfg` contents.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AcdcInfo {
    /// End-diastole frame, 1-based as in the file.
    pub ed: usize,
    /// End-systole frame, 1-based as in the file.
    pub es: usize,
    /// Pathology group (NOR, MINF, DCM, HCM, RV).
    pub group: String,
    /// Height in cm.
    pub height_cm: f64,
    /// Weight in kg.
    pub weight_kg: f64,
    /// Number of frames.
    pub nb_frame: usize,
}

impl AcdcInfo {
    /// 0-based ED frame index.
    pub fn ed_index(&self) -> usize {
        self.ed.saturating_sub(1)
    }
    /// 0-based ES frame index.
    pub fn es_index(&self) -> usize {
        self.es.saturating_sub(1)
    }
}

/// Parse ACDC `Info.cfg` ("ED: 1", "ES: 12", "Group: DCM", ...).
pub fn parse_acdc_info(path: &Path, text: &str) -> Result<AcdcInfo, DatasetError> {
    let mut kv = BTreeMap::new();
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(':') {
            kv.insert(k.trim().to_lowercase(), v.trim().to_string());
        }
    }
    let bad = |problem: String| DatasetError::BadMetadata {
        path: path.to_path_buf(),
        problem,
    };
    let get = |k: &str| {
        kv.get(k)
            .ok_or_else(|| bad(format!("missing `{}:` line", k.to_uppercase())))
    };
    let num = |k: &str| -> Result<f64, DatasetError> {
        let v = get(k)?;
        v.parse::<f64>()
            .map_err(|_| bad(format!("{k} = {v:?} is not a number")))
    };
    let frame = |k: &str| -> Result<usize, DatasetError> {
        let v = num(k)?;
        if v < 1.0 || v.fract() != 0.0 {
            return Err(bad(format!(
                "{} = {v} is not a 1-based frame number",
                k.to_uppercase()
            )));
        }
        Ok(v as usize)
    };
    let info = AcdcInfo {
        ed: frame("ed")?,
        es: frame("es")?,
        group: kv.get("group").cloned().unwrap_or_default(),
        height_cm: num("height").unwrap_or(f64::NAN),
        weight_kg: num("weight").unwrap_or(f64::NAN),
        nb_frame: frame("nbframe")?,
    };
    if info.ed > info.nb_frame || info.es > info.nb_frame {
        return Err(bad(format!(
            "ED {} / ES {} beyond NbFrame {}",
            info.ed, info.es, info.nb_frame
        )));
    }
    Ok(info)
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Visible entries of a folder, sorted (skips dot files such as macOS `._x`).
fn list(dir: &Path) -> Result<Vec<PathBuf>, DatasetError> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let p = e.map_err(io_err(dir))?.path();
        if !p
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        {
            out.push(p);
        }
    }
    out.sort();
    Ok(out)
}

/// File name without `.nii.gz` / `.nii`, if it is a NIfTI file.
fn nifti_stem(p: &Path) -> Option<String> {
    let n = p.file_name()?.to_string_lossy().to_string();
    n.strip_suffix(".nii.gz")
        .or_else(|| n.strip_suffix(".nii"))
        .map(str::to_string)
}

pub(super) fn detect(root: &Path) -> Result<Dataset, DatasetError> {
    if root.join("dataset.json").is_file() || root.join("imagesTr").is_dir() {
        return msd_or_nnunet(root);
    }
    // The folder itself as one case, then its sub-folders, then one more level.
    if let Some((layout, case)) = try_case(root)? {
        return Ok(finish(root, layout, vec![case]));
    }
    let mut found: Vec<(Layout, CaseSpec)> = Vec::new();
    let subdirs: Vec<PathBuf> = list(root)?.into_iter().filter(|p| p.is_dir()).collect();
    for d in &subdirs {
        if let Some(c) = try_case(d)? {
            found.push(c);
        }
    }
    if found.is_empty() {
        for d in &subdirs {
            for dd in list(d)?.into_iter().filter(|p| p.is_dir()) {
                if let Some(c) = try_case(&dd)? {
                    found.push(c);
                }
            }
        }
    }
    let Some(layout) = found.first().map(|(l, _)| *l) else {
        return Err(DatasetError::NoLayout {
            path: root.to_path_buf(),
        });
    };
    let cases = found
        .into_iter()
        .filter(|(l, _)| *l == layout)
        .map(|(_, c)| c)
        .collect();
    Ok(finish(root, layout, cases))
}

fn finish(root: &Path, layout: Layout, mut cases: Vec<CaseSpec>) -> Dataset {
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    let brats2023 = cases
        .iter()
        .flat_map(|c| c.images.iter())
        .any(|(_, p)| p.to_string_lossy().contains("-t1n"));
    let table = match layout {
        Layout::Brats if brats2023 => LabelTable::builtin("brats2023"),
        Layout::Brats => LabelTable::builtin("brats"),
        Layout::Acdc => LabelTable::builtin("acdc"),
        Layout::TotalSegmentator => LabelTable::builtin("totalseg"),
        Layout::Msd | Layout::NnUnet => Ok(LabelTable::default()),
    }
    .unwrap_or_default();
    Dataset {
        root: root.to_path_buf(),
        layout,
        cases,
        labels: table,
    }
}

/// Recognise one case folder.
fn try_case(dir: &Path) -> Result<Option<(Layout, CaseSpec)>, DatasetError> {
    let files = list(dir)?;
    let id = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    // TotalSegmentator: ct.nii.gz + segmentations/
    let ct = dir.join("ct.nii.gz");
    if ct.is_file() {
        let seg_dir = dir.join("segmentations");
        let mut masks = Vec::new();
        if seg_dir.is_dir() {
            for p in list(&seg_dir)? {
                if let Some(stem) = nifti_stem(&p) {
                    masks.push((stem, p));
                }
            }
        }
        let labels = if masks.is_empty() {
            LabelSource::None
        } else {
            LabelSource::Masks(masks)
        };
        return Ok(Some((
            Layout::TotalSegmentator,
            CaseSpec {
                id,
                images: vec![("ct".into(), ct)],
                labels,
                acdc: None,
            },
        )));
    }
    // ACDC: Info.cfg + *_4d.nii.gz
    let info_path = dir.join("Info.cfg");
    if let Some(cine) = files
        .iter()
        .find(|p| nifti_stem(p).is_some_and(|s| s.ends_with("_4d")))
    {
        let acdc = if info_path.is_file() {
            let text = std::fs::read_to_string(&info_path).map_err(io_err(&info_path))?;
            Some(parse_acdc_info(&info_path, &text)?)
        } else {
            None
        };
        let mut frames = Vec::new();
        for p in &files {
            let Some(stem) = nifti_stem(p) else { continue };
            let Some(rest) = stem.strip_suffix("_gt") else {
                continue;
            };
            let Some((_, num)) = rest.rsplit_once("_frame") else {
                continue;
            };
            if let Ok(n) = num.parse::<usize>() {
                frames.push((n.saturating_sub(1), p.clone()));
            }
        }
        frames.sort();
        let labels = if frames.is_empty() {
            LabelSource::None
        } else {
            LabelSource::Frames(frames)
        };
        return Ok(Some((
            Layout::Acdc,
            CaseSpec {
                id,
                images: vec![("cine".into(), cine.clone())],
                labels,
                acdc,
            },
        )));
    }
    // BraTS: modality suffixes.
    let mut mods: BTreeMap<usize, (String, PathBuf)> = BTreeMap::new();
    let mut seg = None;
    for p in &files {
        let Some(stem) = nifti_stem(p) else { continue };
        let lower = stem.to_lowercase();
        let Some(pos) = lower.rfind(['_', '-']) else {
            continue;
        };
        let suffix = &lower[pos + 1..];
        let canonical = match suffix {
            "t1" | "t1n" => Some((0, "t1")),
            "t1ce" | "t1c" | "t1gd" => Some((1, "t1ce")),
            "t2" | "t2w" => Some((2, "t2")),
            "flair" | "t2f" => Some((3, "flair")),
            "seg" => {
                seg = Some(p.clone());
                None
            }
            _ => None,
        };
        if let Some((order, name)) = canonical {
            mods.insert(order, (name.to_string(), p.clone()));
        }
    }
    if mods.len() >= 2 {
        return Ok(Some((
            Layout::Brats,
            CaseSpec {
                id,
                images: mods.into_values().collect(),
                labels: seg.map_or(LabelSource::None, LabelSource::File),
                acdc: None,
            },
        )));
    }
    Ok(None)
}

/// MSD (`dataset.json` with `training` pairs and `modality`) or nnU-Net
/// (`channel_names`, `_0000` suffixes in `imagesTr/`).
fn msd_or_nnunet(root: &Path) -> Result<Dataset, DatasetError> {
    let json_path = root.join("dataset.json");
    let meta: serde_json::Value = if json_path.is_file() {
        let text = std::fs::read_to_string(&json_path).map_err(io_err(&json_path))?;
        serde_json::from_str(&text).map_err(|e| DatasetError::BadMetadata {
            path: json_path.clone(),
            problem: format!("not valid JSON: {e}"),
        })?
    } else {
        serde_json::Value::Null
    };
    let images_dir = root.join("imagesTr");
    let labels_dir = root.join("labelsTr");
    let channel_names: Vec<String> = {
        let obj = meta.get("channel_names").or_else(|| meta.get("modality"));
        let mut v: Vec<(usize, String)> = obj
            .and_then(|o| o.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v.into_iter().map(|(_, n)| n).collect()
    };
    let table = label_table_from_json(&meta);
    let files = if images_dir.is_dir() {
        list(&images_dir)?
    } else {
        Vec::new()
    };
    let nnunet = files
        .iter()
        .any(|p| nifti_stem(p).is_some_and(|s| s.ends_with("_0000")));
    let mut cases = Vec::new();
    if nnunet {
        let mut by_case: BTreeMap<String, Vec<(usize, PathBuf)>> = BTreeMap::new();
        for p in &files {
            let Some(stem) = nifti_stem(p) else { continue };
            let Some((case, ch)) = stem.rsplit_once('_') else {
                continue;
            };
            if let Ok(ch) = ch.parse::<usize>() {
                by_case
                    .entry(case.to_string())
                    .or_default()
                    .push((ch, p.clone()));
            }
        }
        for (case, mut chans) in by_case {
            chans.sort();
            let images = chans
                .into_iter()
                .map(|(ch, p)| {
                    (
                        channel_names
                            .get(ch)
                            .cloned()
                            .unwrap_or_else(|| format!("{ch:04}")),
                        p,
                    )
                })
                .collect();
            cases.push(CaseSpec {
                labels: find_label(&labels_dir, &case),
                id: case,
                images,
                acdc: None,
            });
        }
    } else if let Some(training) = meta.get("training").and_then(|t| t.as_array()) {
        for item in training {
            let Some(image) = item.get("image").and_then(|v| v.as_str()) else {
                continue;
            };
            let image = root.join(image.trim_start_matches("./"));
            let id = nifti_stem(&image).unwrap_or_default();
            let labels = item
                .get("label")
                .and_then(|v| v.as_str())
                .map_or(LabelSource::None, |l| {
                    LabelSource::File(root.join(l.trim_start_matches("./")))
                });
            let name = if channel_names.len() == 1 {
                channel_names[0].clone()
            } else {
                "image".into()
            };
            cases.push(CaseSpec {
                id,
                images: vec![(name, image)],
                labels,
                acdc: None,
            });
        }
    } else {
        for p in &files {
            let Some(stem) = nifti_stem(p) else { continue };
            cases.push(CaseSpec {
                labels: find_label(&labels_dir, &stem),
                id: stem,
                images: vec![("image".into(), p.clone())],
                acdc: None,
            });
        }
    }
    if cases.is_empty() {
        return Err(DatasetError::NoLayout {
            path: root.to_path_buf(),
        });
    }
    cases.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(Dataset {
        root: root.to_path_buf(),
        layout: if nnunet { Layout::NnUnet } else { Layout::Msd },
        cases,
        labels: table,
    })
}

fn find_label(labels_dir: &Path, case: &str) -> LabelSource {
    ["nii.gz", "nii"]
        .iter()
        .map(|e| labels_dir.join(format!("{case}.{e}")))
        .find(|p| p.is_file())
        .map_or(LabelSource::None, LabelSource::File)
}

/// `labels` of MSD (`{"0": "background", "1": "edema"}`) or nnU-Net v2
/// (`{"background": 0, "liver": 1}`).
fn label_table_from_json(meta: &serde_json::Value) -> LabelTable {
    let mut entries = Vec::new();
    if let Some(obj) = meta.get("labels").and_then(|v| v.as_object()) {
        for (k, v) in obj {
            let (id, name) = match (k.parse::<u16>(), v.as_u64(), v.as_str()) {
                (Ok(id), _, Some(name)) => (id, name.to_string()),
                (_, Some(id), _) => (u16::try_from(id).unwrap_or(0), k.clone()),
                _ => continue,
            };
            if id != 0 {
                entries.push(crate::volume::LabelEntry {
                    id,
                    name,
                    color: crate::volume::palette(id),
                });
            }
        }
    }
    entries.sort_by_key(|e| e.id);
    LabelTable {
        name: meta
            .get("name")
            .and_then(|v| v.as_str())
            .unwrap_or("dataset")
            .to_string(),
        labels: entries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acdc_info_parses_and_validates() {
        let text = "ED: 1\nES: 12\nGroup: DCM\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n";
        let info = parse_acdc_info(Path::new("Info.cfg"), text).unwrap();
        assert_eq!((info.ed, info.es, info.nb_frame), (1, 12, 30));
        assert_eq!((info.ed_index(), info.es_index()), (0, 11));
        assert_eq!(info.group, "DCM");
        let e = parse_acdc_info(Path::new("x/Info.cfg"), "ED: 1\nES: 40\nNbFrame: 30").unwrap_err();
        assert!(e.to_string().contains("x/Info.cfg"), "{e}");
        assert!(parse_acdc_info(Path::new("Info.cfg"), "ES: 3\nNbFrame: 30").is_err());
    }

    #[test]
    fn label_tables_from_msd_and_nnunet_json() {
        let msd: serde_json::Value =
            serde_json::from_str(r#"{"labels": {"0": "background", "1": "edema", "2": "tumour"}}"#)
                .unwrap();
        let t = label_table_from_json(&msd);
        assert_eq!(
            (t.name_of(1), t.name_of(2)),
            (Some("edema"), Some("tumour"))
        );
        let nn: serde_json::Value =
            serde_json::from_str(r#"{"labels": {"background": 0, "liver": 1}}"#).unwrap();
        assert_eq!(label_table_from_json(&nn).name_of(1), Some("liver"));
    }
}
