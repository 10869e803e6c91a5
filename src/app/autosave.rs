//! Autosave and crash recovery of the labels.
//!
//! While labels are unsaved, the app writes them every minute (a job) into
//! the cache folder, under a key made from the image's source paths:
//! `~/.cache/ume/autosave/<key>/`. Each autosave writes its maps under a
//! new generation number, then `meta.json` (atomically) naming that
//! generation, then removes older generations. So `meta.json` always names
//! complete files: a process killed in the middle of an autosave leaves
//! the previous one restorable. Opening the same image again finds the
//! folder and offers to restore; saving the labels or discarding removes
//! it.

use crate::volume::{Geometry, LabelTable, LabelVolume};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What `meta.json` records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// The image files (or dataset folder) the labels belong to.
    pub sources: Vec<PathBuf>,
    /// Seconds since the Unix epoch when written.
    pub saved_at_secs: u64,
    /// The generation whose files are complete.
    pub generation: u64,
    /// The maps: (frame they are for, `None` = every frame; file name).
    pub maps: Vec<(Option<usize>, String)>,
    /// The label table.
    pub table: LabelTable,
    /// Per map, its labelled slices when partly labelled (see
    /// [`crate::annotation::slices`]); empty in autosaves from before.
    #[serde(default)]
    pub slices: Vec<Option<Vec<usize>>>,
}

/// A restorable autosave.
pub struct Recovered {
    /// What was written.
    pub meta: Meta,
    /// The maps, read back.
    pub maps: Vec<(Option<usize>, LabelVolume)>,
}

/// The autosave root: `$XDG_CACHE_HOME/ume/autosave` (or `~/.cache/…`).
pub fn root() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("ume").join("autosave"))
}

/// A stable key for a set of source paths (FNV-1a of their canonical
/// forms; std's hasher may change between Rust releases).
pub fn key(sources: &[PathBuf]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in sources {
        let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        for b in p.to_string_lossy().bytes().chain(std::iter::once(0)) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

/// The folder for these sources under `root`.
pub fn folder(root: &Path, sources: &[PathBuf]) -> PathBuf {
    root.join(key(sources))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

/// Write an autosave of `maps` (on the image's `geometry`) into `dir`;
/// `cancelled` is asked before `meta.json` names the new files (a save or
/// a discard meanwhile means this autosave must not appear).
pub fn write(
    dir: &Path,
    sources: &[PathBuf],
    maps: &[(Option<usize>, Arc<LabelVolume>)],
    slices: &[Option<Vec<usize>>],
    geometry: &Geometry,
    table: &LabelTable,
    cancelled: &dyn Fn() -> bool,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    let generation = read_meta(dir).map_or(1, |m| m.generation + 1);
    let mut names = Vec::new();
    for (i, (frame, map)) in maps.iter().enumerate() {
        let name = format!("labels-{generation}-{i}.nii.gz");
        crate::io::save_label_map(map, geometry, &dir.join(&name)).map_err(|e| e.to_string())?;
        names.push((*frame, name));
    }
    let meta = Meta {
        sources: sources.to_vec(),
        saved_at_secs: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        generation,
        maps: names,
        table: table.clone(),
        slices: slices.to_vec(),
    };
    if cancelled() {
        for (_, n) in &meta.maps {
            let _ = std::fs::remove_file(dir.join(n));
        }
        return Err("autosave cancelled".into());
    }
    let path = dir.join("meta.json");
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| io_err(&path, e))?;
    crate::io::write_atomic(&path, &text).map_err(|e| e.to_string())?;
    // Older generations are no longer named: remove them.
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let current = meta.maps.iter().any(|(_, n)| *n == name);
            if name.starts_with("labels-") && !current {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn read_meta(dir: &Path) -> Option<Meta> {
    let text = std::fs::read_to_string(dir.join("meta.json")).ok()?;
    serde_json::from_str(&text).ok()
}

/// The autosave in `dir`, if there is a complete one.
pub fn find(dir: &Path) -> Option<Meta> {
    read_meta(dir).filter(|m| m.maps.iter().all(|(_, n)| dir.join(n).is_file()))
}

/// Read the autosave in `dir` back (a job's body: it grows with the
/// volume).
pub fn read(dir: &Path) -> Result<Recovered, String> {
    let meta = find(dir).ok_or_else(|| format!("{}: no complete autosave", dir.display()))?;
    let maps = meta
        .maps
        .iter()
        .map(|(f, n)| {
            crate::io::load_labels(&dir.join(n))
                .map(|l| (*f, l))
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Recovered { meta, maps })
}

/// Remove an autosave (after a save, or when the user discards it).
pub fn discard(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_labelled_slices_of_each_map_are_autosaved() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = folder(tmp.path(), &[PathBuf::from("/data/cine.nii.gz")]);
        let g = Geometry::identity();
        let a = Arc::new(LabelVolume::zeros([3, 2, 4], 1, g.clone()));
        let maps = [(Some(0), a.clone()), (Some(5), a)];
        let lists = [None, Some(vec![1, 3])];
        write(
            &dir,
            &[],
            &maps,
            &lists,
            &g,
            &LabelTable::default(),
            &|| false,
        )
        .unwrap();
        assert_eq!(read(&dir).unwrap().meta.slices, lists.to_vec());
    }

    #[test]
    fn a_new_generation_replaces_the_old_only_once_complete() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = folder(tmp.path(), &[PathBuf::from("/data/brain.nii.gz")]);
        let g = Geometry::identity();
        let mut a = LabelVolume::zeros([3, 2, 2], 1, g.clone());
        a.set(1, 7);
        let table = LabelTable::generic([7]);
        write(
            &dir,
            &[],
            &[(None, Arc::new(a.clone()))],
            &[],
            &g,
            &table,
            &|| false,
        )
        .unwrap();
        let first = find(&dir).unwrap();
        assert_eq!(first.generation, 1);
        // A second autosave interrupted before its meta.json: the first is
        // still what is found, complete.
        std::fs::write(dir.join("labels-2-0.nii.gz"), b"half a file").unwrap();
        let back = read(&dir).unwrap();
        assert_eq!(back.maps[0].1.data, a.compacted().data);
        a.set(2, 9);
        write(
            &dir,
            &[],
            &[(Some(3), Arc::new(a.clone()))],
            &[],
            &g,
            &table,
            &|| false,
        )
        .unwrap();
        let m = find(&dir).unwrap();
        assert!(m.generation >= 2);
        let files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|n| n.starts_with("labels-"))
            .collect();
        assert_eq!(files.len(), 1, "old generations removed: {files:?}");
        assert_eq!(read(&dir).unwrap().maps[0].0, Some(3));
        discard(&dir);
        assert!(find(&dir).is_none());
        assert_ne!(
            key(&[PathBuf::from("/a.nii")]),
            key(&[PathBuf::from("/b.nii")])
        );
    }
}
