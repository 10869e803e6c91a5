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
    /// The built-in demo: phantoms generated into the cache folder (brain).
    Demo(PathBuf),
    /// The demo's cardiac cine.
    DemoCine(PathBuf),
}

impl LoadRequest {
    /// Paths picked or dropped: one folder is a dataset, else image files.
    pub fn from_paths(paths: Vec<PathBuf>, labels: Option<PathBuf>) -> LoadRequest {
        if paths.len() == 1 && paths[0].is_dir() {
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
            LoadRequest::Folder(p) => Some(super::settings::Recent {
                paths: vec![p.clone()],
                labels: None,
            }),
            LoadRequest::Demo(_) | LoadRequest::DemoCine(_) => None,
        }
    }
}

/// Read a label map and count its ids (a job's body: both grow with the
/// volume).
pub fn load_labels(path: &std::path::Path) -> Result<Labels, String> {
    let l = crate::io::load_labels(path).map_err(|e| e.to_string())?;
    Ok(Labels::single(Arc::new(l)))
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
            if let Some(lp) = labels {
                progress("reading labels".into());
                let l = crate::io::load_labels(lp).map_err(|e| e.to_string())?;
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
                table = LabelTable::generic(
                    (1..counts.len())
                        .filter(|&i| counts[i] > 0)
                        .filter_map(|i| u16::try_from(i).ok()),
                );
                maps.push(None, Arc::new(l));
            }
            let title = paths
                .first()
                .and_then(|p| p.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            let warnings = layers
                .iter()
                .flat_map(|l: &Layer| l.volume.warnings.clone())
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
        LoadRequest::DemoCine(dir) => {
            ensure_demo(dir, progress)?;
            load(
                &LoadRequest::Folder(dir.join("cardiac").join("patient001")),
                progress,
            )
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
