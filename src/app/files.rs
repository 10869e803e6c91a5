//! Choosing files and writing them: the native dialog (on its own job, it
//! blocks) or, where no dialog can appear, UME's own browser, for opening
//! and for saving; what each pick is for; and the save jobs (labels with
//! their table, a prediction, a model copy). Saving never writes where the
//! user did not say: a pick, `--save-labels-to`, or the file the labels
//! came from.

use super::browser::{Browser, BrowserResult};
use super::jobs::Job;
use super::{LoadRequest, UmeApp};
use crate::volume::{Geometry, LabelTable, LabelVolume};
use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Metrics export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// One row per structure.
    Csv,
    /// The evaluation as JSON.
    Json,
}

/// What a file pick is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Image files to open.
    Open,
    /// A dataset or case folder to open.
    OpenFolder,
    /// A label map for the open image.
    Labels,
    /// A prediction for the open case.
    Prediction,
    /// Where to save the labels.
    SaveLabels,
    /// Where to save the prediction.
    SavePrediction,
    /// A folder to copy the fine-tuned model into.
    SaveModel,
    /// Where to save a PNG of the window.
    ExportWindow,
    /// Where to save the metrics.
    ExportMetrics(MetricsFormat),
    /// A label table to read.
    ImportTable,
    /// Where to write the label table.
    ExportTable,
}

impl Pick {
    /// Whether the pick names a new file.
    pub fn is_save(self) -> bool {
        matches!(
            self,
            Pick::SaveLabels
                | Pick::SavePrediction
                | Pick::SaveModel
                | Pick::ExportWindow
                | Pick::ExportMetrics(_)
                | Pick::ExportTable
        )
    }

    /// Whether the pick is a folder.
    pub fn is_folder(self) -> bool {
        matches!(self, Pick::OpenFolder | Pick::SaveModel)
    }

    /// The dialog's title.
    pub fn title(self) -> &'static str {
        match self {
            Pick::Open => "Open images",
            Pick::OpenFolder => "Open a dataset folder",
            Pick::Labels => "Open labels",
            Pick::Prediction => "Open a prediction",
            Pick::SaveLabels => "Save labels as",
            Pick::SavePrediction => "Save prediction as",
            Pick::SaveModel => "Save model as (a new folder)",
            Pick::ExportWindow => "Export window as PNG",
            Pick::ExportMetrics(_) => "Export metrics",
            Pick::ImportTable => "Import a label table",
            Pick::ExportTable => "Export the label table",
        }
    }

    fn extensions(self) -> &'static [&'static str] {
        match self {
            Pick::ExportWindow => &["png"],
            Pick::ExportMetrics(MetricsFormat::Csv) => &["csv"],
            Pick::ExportMetrics(MetricsFormat::Json) => &["json"],
            Pick::OpenFolder | Pick::SaveModel => &[],
            Pick::ImportTable | Pick::ExportTable => &["txt", "json"],
            // NIfTI, NRRD (and Slicer's .seg.nrrd), MetaImage, DICOM.
            _ => &[
                "nii", "gz", "hdr", "img", "nrrd", "nhdr", "mha", "mhd", "dcm",
            ],
        }
    }
}

/// A file name for a save pick, from the case's title.
pub fn default_name(pick: Pick, title: &str) -> String {
    let base: String = title
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let base = base
        .trim_end_matches("_nii_gz")
        .trim_end_matches("_nii")
        .to_string();
    match pick {
        Pick::SaveLabels => format!("{base}_labels.nii.gz"),
        Pick::SavePrediction => format!("{base}_prediction.nii.gz"),
        Pick::SaveModel => format!("{base}_model"),
        Pick::ExportWindow => format!("{base}.png"),
        Pick::ExportMetrics(MetricsFormat::Csv) => format!("{base}_metrics.csv"),
        Pick::ExportMetrics(MetricsFormat::Json) => format!("{base}_metrics.json"),
        Pick::ExportTable => format!("{base}_labels.txt"),
        _ => String::new(),
    }
}

/// Whether a native dialog can appear: rfd needs an XDG desktop portal
/// (on the session bus) or zenity; without them it silently returns None.
pub fn native_dialog_available() -> bool {
    let bus = std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some();
    let zenity = std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("zenity").is_file()));
    bus || zenity
}

/// Run the native dialog for `pick` (blocks: call from a job).
fn native_dialog(pick: Pick, folder: Option<PathBuf>, name: String) -> Option<Vec<PathBuf>> {
    let mut dialog = rfd::FileDialog::new().set_title(pick.title());
    if let Some(f) = folder {
        dialog = dialog.set_directory(f);
    }
    let ext = pick.extensions();
    if !ext.is_empty() {
        dialog = dialog.add_filter(pick.title(), ext);
    }
    match pick {
        Pick::OpenFolder => dialog.pick_folder().map(|p| vec![p]),
        Pick::Open => dialog.pick_files(),
        Pick::Labels | Pick::Prediction | Pick::ImportTable => dialog.pick_file().map(|p| vec![p]),
        _ => dialog.set_file_name(name).save_file().map(|p| vec![p]),
    }
}

/// The open file pick: a native dialog job or UME's browser.
pub struct Picker {
    dialog: Option<(Pick, Job<Option<Vec<PathBuf>>>)>,
    browser: Option<Browser>,
    /// Use the native dialog (where one can appear); tests turn it off to
    /// drive UME's own browser.
    pub native: bool,
}

impl Default for Picker {
    fn default() -> Picker {
        Picker {
            dialog: None,
            browser: None,
            native: native_dialog_available(),
        }
    }
}

impl Picker {
    /// Whether a pick is open.
    pub fn is_open(&self) -> bool {
        self.dialog.is_some() || self.browser.is_some()
    }

    /// The browser, when it is what is shown.
    pub fn browser(&self) -> Option<&Browser> {
        self.browser.as_ref()
    }
}

impl UmeApp {
    /// Ask the user for a file or folder for `pick`.
    pub fn pick(&mut self, ctx: &egui::Context, pick: Pick) {
        let title = self.doc.as_ref().map_or("ume", |d| d.title()).to_string();
        let name = default_name(pick, &title);
        let folder = self.start_folder(pick);
        if self.picker.native {
            let wake = ctx.clone();
            let job = Job::spawn(
                "dialog",
                0,
                move || wake.request_repaint(),
                move |_| Ok(native_dialog(pick, folder, name)),
            );
            self.picker.dialog = Some((pick, job));
        } else {
            self.picker.browser = Some(Browser::new(pick, folder, name));
        }
    }

    /// Where a pick starts: the open case's own folder for what belongs to
    /// it (its labels, prediction, metrics, label table, so they are not
    /// saved beside another patient's), else the last folder used.
    fn start_folder(&self, pick: Pick) -> Option<PathBuf> {
        let own = matches!(pick, Pick::Labels | Pick::Prediction | Pick::ImportTable)
            || pick.is_save() && pick != Pick::SaveModel && pick != Pick::ExportWindow;
        let case = self.doc.as_ref().filter(|_| own).and_then(|d| {
            let s = d.sources();
            s.labels
                .as_deref()
                .or(s.images.first().map(PathBuf::as_path))
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .or_else(|| s.folder.clone())
        });
        case.filter(|f| f.is_dir())
            .or_else(|| self.settings.last_folder.clone())
    }

    /// Collect a finished pick (called from `logic`) and show the browser.
    pub(super) fn picker_logic(&mut self, ctx: &egui::Context) {
        if let Some((pick, job)) = &mut self.picker.dialog
            && let Some(r) = job.poll()
        {
            let pick = *pick;
            self.picker.dialog = None;
            match r {
                Ok(Some(paths)) if !paths.is_empty() => self.picked(ctx, pick, paths),
                Ok(_) => self.after_save = None,
                // No dialog could be shown: use ours.
                Err(_) => {
                    let name = default_name(pick, self.doc.as_ref().map_or("ume", |d| d.title()));
                    self.picker.browser = Some(Browser::new(pick, self.start_folder(pick), name));
                }
            }
        }
        if let Some(b) = &mut self.picker.browser {
            match b.ui(ctx) {
                BrowserResult::Picked(paths) => {
                    let pick = b.pick;
                    self.picker.browser = None;
                    self.picked(ctx, pick, paths);
                }
                BrowserResult::Close => {
                    self.picker.browser = None;
                    self.after_save = None;
                }
                BrowserResult::Stay => {}
            }
        }
    }

    /// Do what a pick was for.
    pub fn picked(&mut self, ctx: &egui::Context, pick: Pick, paths: Vec<PathBuf>) {
        let Some(first) = paths.first().cloned() else {
            return;
        };
        let folder = if pick.is_folder() && !pick.is_save() {
            Some(first.clone())
        } else {
            first.parent().map(Path::to_path_buf)
        };
        self.settings.last_folder = folder;
        match pick {
            Pick::Open | Pick::OpenFolder => self.open(ctx, LoadRequest::from_paths(paths, None)),
            Pick::Labels => self.load_labels(ctx, first),
            Pick::Prediction => self.load_prediction(ctx, first),
            Pick::SaveLabels => self.save_labels_to(ctx, first),
            Pick::SavePrediction => self.save_prediction_to(ctx, first),
            #[cfg(feature = "ml")]
            Pick::SaveModel => super::ai::save_model_to(self, ctx, first),
            #[cfg(not(feature = "ml"))]
            Pick::SaveModel => {}
            Pick::ExportWindow => self.request_export(ctx, first, None),
            Pick::ExportMetrics(format) => self.export_metrics(&first, format),
            Pick::ImportTable => self.import_table(&first),
            Pick::ExportTable => self.export_table(&first),
        }
    }

    /// Read a label table (ITK-SNAP label description, or JSON when the
    /// name ends in `.json`) as one undoable step. Small: read here.
    pub fn import_table(&mut self, path: &Path) {
        let table = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                if path
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json"))
                {
                    LabelTable::from_json(&text).map_err(|e| e.to_string())
                } else {
                    LabelTable::from_itksnap(&text).map_err(|e| e.to_string())
                }
            });
        match (table, &mut self.doc) {
            (Ok(t), Some(doc)) => {
                let n = t.labels.len();
                doc.edit_table(t);
                self.notes.info(format!(
                    "label table read from {} ({n} labels)",
                    path.display()
                ));
            }
            (Err(e), _) => self.notes.error(format!("{}: {e}", path.display())),
            (Ok(_), None) => {}
        }
    }

    /// Write the label table: JSON when the name ends in `.json`, else an
    /// ITK-SNAP label description file.
    pub fn export_table(&mut self, path: &Path) {
        let Some(doc) = &self.doc else { return };
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        let bytes = if json {
            serde_json::to_vec_pretty(doc.table()).unwrap_or_default()
        } else {
            doc.table().to_itksnap().into_bytes()
        };
        match crate::io::write_atomic(path, &bytes) {
            Ok(()) => self.notes.info(format!("saved {}", path.display())),
            Err(e) => self.notes.error(e.to_string()),
        }
    }

    /// Write the labels to `path` in the background: NIfTI on the image's
    /// header geometry, the table beside it. On success Save writes there.
    pub fn save_labels_to(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let Some(image) = doc.layer(0) else { return };
        if doc.labels().is_empty() {
            self.notes
                .error("there are no labels to save: open or paint labels first");
            return;
        }
        let maps: Vec<(Option<usize>, Arc<LabelVolume>)> =
            doc.labels().maps().map(|(f, l)| (f, l.clone())).collect();
        let geometry = image.volume.geometry.clone();
        let table = doc.table().clone();
        let slices = doc.slice_lists();
        let id = super::tools::labels_state(doc);
        let wake = ctx.clone();
        let job = Job::spawn(
            "save",
            id,
            move || wake.request_repaint(),
            move |ctx| {
                ctx.message(format!("saving {}", path.display()));
                let files = write_labels(&maps, &slices, &geometry, &table, &path)?;
                Ok((path, files))
            },
        );
        self.save_job.start(job);
    }

    /// Write the prediction to `path` in the background.
    pub fn save_prediction_to(&mut self, ctx: &egui::Context, path: PathBuf) {
        let Some(doc) = &self.doc else { return };
        let (Some(image), Some(pred)) = (doc.layer(0), doc.prediction()) else {
            self.notes.error("there is no prediction to save");
            return;
        };
        let maps = vec![(None, pred.labels.clone())];
        let geometry = image.volume.geometry.clone();
        let table = doc.table().clone();
        let wake = ctx.clone();
        let job = Job::spawn(
            "save-prediction",
            0,
            move || wake.request_repaint(),
            move |_| {
                write_labels(&maps, &[], &geometry, &table, &path)?;
                Ok(path)
            },
        );
        self.save_prediction_job.start(job);
    }

    fn export_metrics(&mut self, path: &Path, format: MetricsFormat) {
        let (Some(doc), Some(result)) = (&self.doc, &self.eval.result) else {
            self.notes.error("no metrics to export yet");
            return;
        };
        let bytes = match format {
            MetricsFormat::Csv => crate::metrics::csv(&[(doc.title(), result)]).into_bytes(),
            MetricsFormat::Json => match crate::metrics::to_json(result) {
                Ok(b) => b,
                Err(e) => {
                    self.notes.error(format!("{}: {e}", path.display()));
                    return;
                }
            },
        };
        match crate::io::write_atomic(path, &bytes) {
            Ok(()) => self.notes.info(format!("saved {}", path.display())),
            Err(e) => self.notes.error(e.to_string()),
        }
    }
}

/// Write label maps with the table beside them (NIfTI, NRRD, MetaImage), or
/// as Slicer segmentations with the table inside (`.seg.nrrd`): one map as
/// `path`; per-frame maps (a cine labelled at some frames, as ACDC ships)
/// as `<stem>_frameNN<ext>`, NN the 1-based frame as in ACDC's names.
/// Returns the label map files written.
pub fn write_labels(
    maps: &[(Option<usize>, Arc<LabelVolume>)],
    slices: &[Option<Vec<usize>>],
    geometry: &Geometry,
    table: &LabelTable,
    path: &Path,
) -> Result<Vec<PathBuf>, String> {
    let seg_nrrd = crate::io::segnrrd::is_seg_nrrd(&path.to_string_lossy().to_lowercase());
    let mut written = Vec::with_capacity(maps.len());
    for (i, (frame, map)) in maps.iter().enumerate() {
        let target = match frame {
            Some(t) if maps.len() > 1 || maps[0].0.is_some() => frame_path(path, *t),
            _ => path.to_path_buf(),
        };
        if seg_nrrd {
            // Slicer's segmentation carries the names and colours itself.
            crate::io::segnrrd::save(map, geometry, table, &target)
                .map_err(|e| format!("{}: {e}", target.display()))?;
        } else {
            crate::io::save_label_map(map, geometry, &target).map_err(|e| e.to_string())?;
        }
        write_slice_list(&target, slices.get(i).and_then(Option::as_ref))?;
        written.push(target);
    }
    if !seg_nrrd {
        crate::io::save_label_table(table, path).map_err(|e| e.to_string())?;
    }
    Ok(written)
}

/// What a save wrote, for the status line: the file, or the per-frame
/// files (a cine labelled at some frames) when the name given is not
/// itself a file on disk.
pub fn saved_message(path: &Path, files: &[PathBuf]) -> String {
    match files {
        [one] if one == path => format!("saved labels to {}", path.display()),
        _ => {
            let mut names: Vec<String> = files
                .iter()
                .filter_map(|f| f.file_name())
                .map(|n| n.to_string_lossy().to_string())
                .collect();
            names.sort();
            let files = super::notify::count(names.len(), "file");
            format!(
                "saved labels as {files}, one per labelled frame, in {}: {}",
                path.parent().unwrap_or(path).display(),
                names.join(", ")
            )
        }
    }
}

/// Beside a label map just written: its labelled slices when it is partly
/// labelled; no list (of either name form) when it is whole, so a stale
/// one from an earlier save cannot limit it later.
fn write_slice_list(target: &Path, slices: Option<&Vec<usize>>) -> Result<(), String> {
    use crate::annotation::slices;
    let remove = |p: &Path| match std::fs::remove_file(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(format!("{}: {e}", p.display())),
        _ => Ok(()),
    };
    match slices {
        Some(ks) => {
            crate::io::write_atomic(&slices::sidecar_path(target), &slices::to_json(ks))
                .map_err(|e| e.to_string())?;
            remove(&slices::stem_sidecar_path(target))?;
        }
        None => {
            remove(&slices::sidecar_path(target))?;
            remove(&slices::stem_sidecar_path(target))?;
        }
    }
    Ok(())
}

/// `seg.nii.gz`, frame 0 → `seg_frame01.nii.gz`.
pub fn frame_path(path: &Path, frame: usize) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let (stem, ext) = match name.find('.') {
        Some(i) => name.split_at(i),
        None => (name.as_str(), ""),
    };
    path.with_file_name(format!("{stem}_frame{:02}{ext}", frame + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partly_labelled_map_saves_its_slices_and_a_whole_one_leaves_no_stale_list() {
        use crate::annotation::slices;
        use crate::volume::{Geometry, LabelVolume};
        let tmp = tempfile::tempdir().unwrap();
        let g = Geometry::identity();
        let mut map = LabelVolume::zeros([4, 3, 5], 1, g.clone());
        map.set(13, 2);
        let maps = vec![(None, Arc::new(map))];
        let table = LabelTable::generic([2]);
        let path = tmp.path().join("seg.nii.gz");
        write_labels(&maps, &[Some(vec![1, 4])], &g, &table, &path).unwrap();
        assert_eq!(slices::for_labels(&path, 5).unwrap(), Some(vec![1, 4]));
        // A stem-form list from elsewhere must not survive a whole save.
        std::fs::write(slices::stem_sidecar_path(&path), "[0]").unwrap();
        write_labels(&maps, &[None], &g, &table, &path).unwrap();
        assert_eq!(slices::for_labels(&path, 5).unwrap(), None);
        assert!(!slices::sidecar_path(&path).exists());
    }

    #[test]
    fn per_frame_maps_save_as_frame_files_and_a_4d_map_as_one() {
        use crate::volume::{Geometry, LabelVolume};
        let tmp = tempfile::tempdir().unwrap();
        let g = Geometry::identity();
        let mut ed = LabelVolume::zeros([4, 3, 2], 1, g.clone());
        ed.set(0, 3);
        let mut es = LabelVolume::zeros([4, 3, 2], 1, g.clone());
        es.set(5, 1);
        let table = LabelTable::generic([1, 3]);
        let path = tmp.path().join("p001.nii.gz");
        let maps = vec![
            (Some(0), Arc::new(ed.clone())),
            (Some(11), Arc::new(es.clone())),
        ];
        let files = write_labels(&maps, &[], &g, &table, &path).unwrap();
        assert_eq!(
            saved_message(&path, &files),
            format!(
                "saved labels as 2 files, one per labelled frame, in {}: p001_frame01.nii.gz, p001_frame12.nii.gz",
                tmp.path().display()
            ),
            "the status names the files written, not the name given"
        );
        let back = |n: &str| crate::io::load_labels(&tmp.path().join(n)).unwrap();
        assert_eq!(back("p001_frame01.nii.gz").data, ed.data);
        assert_eq!(back("p001_frame12.nii.gz").data, es.data);
        assert!(tmp.path().join("p001_labels.txt").is_file());
        // One map for every frame (a 4D map) is one file.
        let four_d = LabelVolume::zeros([4, 3, 2], 5, g.clone());
        let path = tmp.path().join("cine.nii.gz");
        let files = write_labels(&[(None, Arc::new(four_d))], &[], &g, &table, &path).unwrap();
        assert_eq!(crate::io::load_labels(&path).unwrap().frames, 5);
        assert_eq!(
            saved_message(&path, &files),
            format!("saved labels to {}", path.display())
        );
    }

    #[test]
    fn per_frame_maps_get_acdc_style_names() {
        assert_eq!(
            frame_path(Path::new("/d/seg.nii.gz"), 0),
            PathBuf::from("/d/seg_frame01.nii.gz")
        );
        assert_eq!(
            frame_path(Path::new("p001"), 11),
            PathBuf::from("p001_frame12")
        );
        assert_eq!(
            default_name(Pick::SaveLabels, "brain.nii.gz"),
            "brain_labels.nii.gz"
        );
    }
}
