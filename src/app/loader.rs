//! Loading runs on a named background thread: the UI asks, keeps drawing,
//! and picks the result up from a bounded channel in `App::logic`.

use super::document::{Document, Labels, Layer};
use crate::volume::LabelTable;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};

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

/// Messages from the loading thread.
pub enum LoadEvent {
    /// What is happening now.
    Progress(String),
    /// Finished.
    Done(Result<Box<Document>, String>),
}

/// A running load.
pub struct LoadJob {
    /// Events; the last is `Done`.
    pub events: Receiver<LoadEvent>,
    /// What was asked.
    pub request: LoadRequest,
}

/// Start loading on the `ume-load` thread; `wake` is called after each
/// event (the app passes `ctx.request_repaint`).
pub fn spawn(request: LoadRequest, wake: impl Fn() + Send + 'static) -> std::io::Result<LoadJob> {
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let req = request.clone();
    std::thread::Builder::new()
        .name("ume-load".into())
        .spawn(move || {
            let send = |tx: &SyncSender<LoadEvent>, e: LoadEvent| {
                // Progress may be dropped under back-pressure; Done never is.
                match e {
                    LoadEvent::Progress(_) => match tx.try_send(e) {
                        Ok(())
                        | Err(TrySendError::Full(_))
                        | Err(TrySendError::Disconnected(_)) => {}
                    },
                    done => {
                        let _ = tx.send(done);
                    }
                }
                wake();
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                load(&req, &|m| send(&tx, LoadEvent::Progress(m)))
            }))
            .unwrap_or_else(|_| Err("the loader crashed; please report this file".to_string()));
            send(&tx, LoadEvent::Done(result.map(Box::new)));
        })?;
    Ok(LoadJob {
        events: rx,
        request,
    })
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
            let mut doc = Document::new(title, layers, maps, table);
            doc.warnings = doc
                .layers
                .iter()
                .flat_map(|l| l.volume.warnings.clone())
                .collect();
            Ok(doc)
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
            Ok(Document::from_case(case))
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
