//! What can be opened and how it is read (the body of the app's load job;
//! tests call [`load`] directly).

use super::document::{Document, Labels, Layer, Sources};
use crate::volume::LabelTable;
use std::path::PathBuf;
use std::sync::Arc;

/// What to open.
#[derive(Debug, Clone, PartialEq)]
pub enum LoadRequest {
    /// Image files (shown as layers) and an optional label file.
    Files {
        /// Images.
        paths: Vec<PathBuf>,
        /// Label map.
        labels: Option<PathBuf>,
    },
    /// A dataset folder (first case) or a case folder.
    Folder(PathBuf),
    /// A folder of DICOM files and the series to open (asked for when the
    /// folder holds several), or one DICOM file (its series is opened).
    Dicom {
        /// The folder, or a file of the series.
        path: PathBuf,
        /// A series id as `ume info` lists them.
        series: Option<String>,
    },
    /// The built-in demo: a real T1 brain with tissue labels
    /// ([`crate::demo`]), written into the cache folder on first use.
    DemoBrain(PathBuf),
    /// The brain tumour phantom, generated into the cache folder.
    Demo(PathBuf),
    /// The demo's cardiac cine.
    DemoCine(PathBuf),
}

impl LoadRequest {
    /// Paths picked or dropped: one folder is a DICOM folder or a dataset,
    /// else image files.
    pub fn from_paths(paths: Vec<PathBuf>, labels: Option<PathBuf>) -> LoadRequest {
        if paths.len() == 1 && labels.is_none() && crate::io::dicom::is_dicom_file(&paths[0]) {
            // One DICOM file: open the series it belongs to.
            return LoadRequest::Dicom {
                path: paths[0].clone(),
                series: None,
            };
        }
        if paths.len() == 1 && paths[0].is_dir() {
            if crate::io::dicom::folder_has_dicom(&paths[0]) {
                return LoadRequest::Dicom {
                    path: paths[0].clone(),
                    series: None,
                };
            }
            LoadRequest::Folder(paths[0].clone())
        } else {
            LoadRequest::Files { paths, labels }
        }
    }

    /// What to remember in the recent list (none for the demos).
    pub fn recent(&self) -> Option<super::settings::Recent> {
        match self {
            LoadRequest::Files { paths, labels } => Some(super::settings::Recent {
                paths: paths.clone(),
                labels: labels.clone(),
            }),
            LoadRequest::Folder(p) | LoadRequest::Dicom { path: p, .. } => {
                Some(super::settings::Recent {
                    paths: vec![p.clone()],
                    labels: None,
                })
            }
            LoadRequest::Demo(_) | LoadRequest::DemoCine(_) | LoadRequest::DemoBrain(_) => None,
        }
    }
}

/// Read a label map and count its ids (a job's body: both grow with the
/// volume), with the table when the file names its labels (`.seg.nrrd`).
pub fn load_labels(path: &std::path::Path) -> Result<(Labels, Option<LabelTable>), String> {
    let (l, table) = crate::io::load_labels_and_table(path).map_err(|e| e.to_string())?;
    let (listed, _) = slice_list_or_none(path, l.dims[2]);
    Ok((Labels::single(Arc::new(l)).with_listed(0, listed), table))
}

/// The labelled slices beside a label map. A list that cannot be used
/// (malformed, past the map) does not stop the labels from opening: the
/// map then counts as labelled on no slice — the safe reading, since
/// training would otherwise take unlabelled slices for background — and
/// the note says why.
fn slice_list_or_none(path: &std::path::Path, nz: usize) -> (Option<Vec<usize>>, Option<String>) {
    match crate::annotation::slices::for_labels(path, nz) {
        Ok(listed) => (listed, None),
        Err(e) => (
            Some(Vec::new()),
            Some(format!("{e}; no slice of these labels counts as labelled")),
        ),
    }
}

/// The label table saved beside a label map (`seg_labels.json`, UME's, or
/// `seg_labels.txt`, ITK-SNAP's label description), if there is one that
/// parses.
pub fn table_beside(labels: &std::path::Path) -> Option<LabelTable> {
    let (txt, json) = crate::io::label_table_paths(labels);
    let read = |p: &std::path::Path| std::fs::read_to_string(p).ok();
    read(&json)
        .and_then(|t| LabelTable::from_json(&t).ok())
        .or_else(|| read(&txt).and_then(|t| LabelTable::from_itksnap(&t).ok()))
        .filter(|t| !t.labels.is_empty())
}

/// What a load job ends with: a case, or a DICOM folder's series to choose
/// from.
pub enum Loaded {
    /// The case.
    Doc(Box<Document>),
    /// Several series: the user picks one.
    PickSeries {
        /// The folder.
        path: PathBuf,
        /// Its series: id and a line describing it.
        series: Vec<(String, String)>,
    },
}

/// The load job's body: a DICOM folder with several series and none chosen
/// ends with the list to choose from (its headers only were read).
pub fn load_or_pick(request: &LoadRequest, progress: &dyn Fn(String)) -> Result<Loaded, String> {
    if let LoadRequest::Dicom { path, series: None } = request {
        progress("reading DICOM headers".into());
        let (scan, of_file) = dicom_scan(path);
        if of_file.is_none() && scan.series.len() > 1 {
            let series = scan
                .series
                .iter()
                .map(|s| {
                    let shape = s
                        .shape()
                        .map_or_else(|e| e, |(shape, _)| format!("{shape:?}"));
                    let note = s
                        .note
                        .as_deref()
                        .map(|n| format!(" — {n}"))
                        .unwrap_or_default();
                    // Series number and the UID's tail tell apart
                    // series that share a description (three localizers).
                    let number = s.number.map(|n| format!("#{n} ")).unwrap_or_default();
                    let uid_tail = s.id.rsplit('.').next().unwrap_or(&s.id);
                    let images = super::notify::count(s.images, "image");
                    (
                        s.id.clone(),
                        format!(
                            "{number}{} {} {shape}, {images} (UID …{uid_tail}){note}",
                            s.modality, s.description
                        ),
                    )
                })
                .collect();
            return Ok(Loaded::PickSeries {
                path: path.clone(),
                series,
            });
        }
        return dicom_doc(path, &scan, of_file.as_deref(), progress)
            .map(|d| Loaded::Doc(Box::new(d)));
    }
    load(request, progress).map(|d| Loaded::Doc(Box::new(d)))
}

/// The series of a DICOM folder, or those beside a DICOM file with the id
/// of the file's own.
fn dicom_scan(path: &std::path::Path) -> (crate::io::dicom::Scan, Option<String>) {
    if path.is_file() {
        crate::io::dicom::scan_beside(path)
    } else {
        (crate::io::dicom::scan(&[path.to_path_buf()]), None)
    }
}

/// A document of one DICOM series.
fn dicom_doc(
    path: &std::path::Path,
    scan: &crate::io::dicom::Scan,
    id: Option<&str>,
    progress: &dyn Fn(String),
) -> Result<Document, String> {
    let s = scan.pick(path, id).map_err(|e| e.to_string())?;
    progress(format!("reading {} DICOM images", s.images));
    let v = crate::io::dicom::load_series(path, s).map_err(|e| e.to_string())?;
    let title = match s.description.as_str() {
        "" => path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default(),
        d => d.to_string(),
    };
    let warnings = v.warnings.clone();
    Ok(Document::new(
        title.clone(),
        vec![Layer::new(title, Arc::new(v))],
        Labels::default(),
        LabelTable::default(),
    )
    .with_warnings(warnings)
    .with_sources(Sources {
        images: vec![path.to_path_buf()],
        folder: None,
        labels: None,
    }))
}

/// Load synchronously (the thread body; also used by tests).
pub fn load(request: &LoadRequest, progress: &dyn Fn(String)) -> Result<Document, String> {
    match request {
        LoadRequest::Files { paths, labels } => {
            progress(format!("reading {} file(s)", paths.len()));
            let mut layers = Vec::new();
            for (p, v) in paths.iter().zip(crate::io::load_many(paths)) {
                let v = v.map_err(|e| e.to_string())?;
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                if let Some(first) = layers.first() {
                    let first: &Layer = first;
                    crate::dataset::check_same_grid(
                        &paths[0],
                        first.volume.dims,
                        &first.volume.geometry,
                        p,
                        v.dims,
                        &v.geometry,
                    )
                    .map_err(|e| e.to_string())?;
                }
                layers.push(Layer::new(name, Arc::new(v)));
            }
            let mut maps = Labels::default();
            let mut table = LabelTable::default();
            let mut notes = Vec::new();
            if let Some(lp) = labels {
                progress("reading labels".into());
                let (l, named) = crate::io::load_labels_and_table(lp).map_err(|e| e.to_string())?;
                if let Some(first) = layers.first() {
                    crate::dataset::check_same_grid(
                        &paths[0],
                        first.volume.dims,
                        &first.volume.geometry,
                        lp,
                        l.dims,
                        &l.geometry,
                    )
                    .map_err(|e| e.to_string())?;
                }
                let counts = l.counts();
                table = named.or_else(|| table_beside(lp)).unwrap_or_else(|| {
                    LabelTable::generic(
                        (1..counts.len())
                            .filter(|&i| counts[i] > 0)
                            .filter_map(|i| u16::try_from(i).ok()),
                    )
                });
                let (listed, note) = slice_list_or_none(lp, l.dims[2]);
                notes.extend(note);
                maps.push(None, Arc::new(l));
                maps = maps.with_listed(0, listed);
            }
            let title = paths
                .first()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let warnings = layers
                .iter()
                .flat_map(|l: &Layer| {
                    let c = l.volume.components;
                    let vector = (c > 1).then(|| {
                        format!(
                            "{}: {c} components per voxel (a vector image); the views show the first",
                            l.name
                        )
                    });
                    l.volume.warnings.iter().cloned().chain(vector)
                })
                .chain(notes)
                .collect();
            Ok(Document::new(title, layers, maps, table)
                .with_warnings(warnings)
                .with_sources(Sources {
                    images: paths.clone(),
                    folder: None,
                    labels: labels.clone(),
                }))
        }
        LoadRequest::Folder(dir) => {
            progress(format!("detecting the layout of {}", dir.display()));
            let ds = crate::dataset::open(dir).map_err(|e| e.to_string())?;
            progress(format!(
                "loading case {} ({})",
                ds.cases.first().map_or("", |c| c.id.as_str()),
                ds.layout.as_str()
            ));
            let case = ds.load_case(0).map_err(|e| e.to_string())?;
            Ok(Document::from_case(case, Some(dir.clone())))
        }
        LoadRequest::Dicom { path, series } => {
            progress("reading DICOM headers".into());
            let (scan, of_file) = dicom_scan(path);
            dicom_doc(
                path,
                &scan,
                series.as_deref().or(of_file.as_deref()),
                progress,
            )
        }
        LoadRequest::DemoCine(dir) => {
            ensure_demo(dir, progress)?;
            load(
                &LoadRequest::Folder(dir.join("cardiac").join("patient001")),
                progress,
            )
        }
        LoadRequest::DemoBrain(dir) => {
            progress("writing the demo brain".into());
            let (t1, tissue) = crate::demo::brain(dir).map_err(|e| e.to_string())?;
            let loaded = load(
                &LoadRequest::Files {
                    paths: vec![t1],
                    labels: Some(tissue),
                },
                progress,
            )?;
            // The demo's labels live in the cache: Save asks where rather
            // than writing over them.
            let mut sources = loaded.sources().clone();
            sources.labels = None;
            Ok(loaded.with_sources(sources))
        }
        LoadRequest::Demo(dir) => {
            ensure_demo(dir, progress)?;
            load(
                &LoadRequest::Folder(dir.join("BraTS20_Training_001")),
                progress,
            )
        }
    }
}

/// Generate the demo phantoms on first use: a brain tumour case and a
/// cardiac cine, small enough to appear in about a second.
fn ensure_demo(dir: &std::path::Path, progress: &dyn Fn(String)) -> Result<(), String> {
    use crate::phantom::{Kind, Size, generate};
    if !dir.join("BraTS20_Training_001").is_dir() {
        progress("generating the demo brain phantom".into());
        generate(Kind::Brats, Size::Small, 0, 1, dir, |_, _| {}).map_err(|e| e.to_string())?;
    }
    if !dir.join("cardiac").join("patient001").is_dir() {
        progress("generating the demo cardiac cine".into());
        generate(
            Kind::Acdc,
            Size::Small,
            0,
            1,
            &dir.join("cardiac"),
            |_, _| {},
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}
