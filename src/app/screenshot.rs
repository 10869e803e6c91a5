//! Screenshots: `ume view … --screenshot OUT.png` (wait until the data has
//! been drawn, save, close) and File → Export window as PNG.

use eframe::egui;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::Receiver;

/// Screenshot progress.
#[derive(Debug, Clone, PartialEq)]
enum Stage {
    Idle,
    /// Frames drawn since the data appeared.
    Waiting(u32),
    Requested,
}

/// A screenshot to take.
pub struct Screenshot {
    stage: Stage,
    rx: Option<Receiver<Arc<egui::ColorImage>>>,
    path: Option<PathBuf>,
    /// Crop to this rectangle (points).
    crop: Option<egui::Rect>,
    /// Close the window afterwards (`--screenshot`).
    exit_after: bool,
}

/// What the screenshot logic reports.
pub enum ShotEvent {
    /// Saved there.
    Saved(PathBuf),
    /// Could not save.
    Failed(String),
}

impl Screenshot {
    /// For `--screenshot PATH` (None: nothing to take).
    pub fn on_start(path: Option<PathBuf>) -> Screenshot {
        Screenshot {
            stage: if path.is_some() {
                Stage::Waiting(0)
            } else {
                Stage::Idle
            },
            rx: None,
            exit_after: path.is_some(),
            path,
            crop: None,
        }
    }

    /// Whether the app closes after the screenshot.
    pub fn exits_after(&self) -> bool {
        self.exit_after
    }

    /// Take one soon, of the window or of `crop`.
    pub fn request(&mut self, path: PathBuf, crop: Option<egui::Rect>) {
        self.crop = crop;
        self.path = Some(path);
        self.stage = Stage::Waiting(3);
    }

    /// Advance: `ready` says the data is drawn and nothing is pending.
    pub fn logic(&mut self, ctx: &egui::Context, ready: bool) -> Option<ShotEvent> {
        let path = self.path.clone()?;
        if let Some(image) = self.rx.as_ref().and_then(|rx| rx.try_recv().ok()) {
            let ppp = ctx.pixels_per_point();
            let event = match save_png(&path, &image, self.crop.take().map(|r| r * ppp)) {
                Ok(()) => ShotEvent::Saved(path),
                Err(e) => ShotEvent::Failed(format!("{e:#}")),
            };
            self.rx = None;
            if self.exit_after {
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            } else {
                self.path = None;
                self.stage = Stage::Idle;
            }
            return Some(event);
        }
        match self.stage {
            Stage::Waiting(n) if ready => {
                if n >= 3 {
                    let (tx, rx) = std::sync::mpsc::sync_channel(1);
                    let wake = ctx.clone();
                    let callback = egui::ScreenshotCallback::new(move |image| {
                        let _ = tx.send(image);
                        wake.request_repaint();
                    });
                    self.rx = Some(rx);
                    ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(callback));
                    self.stage = Stage::Requested;
                } else {
                    self.stage = Stage::Waiting(n + 1);
                }
                ctx.request_repaint();
            }
            _ => ctx.request_repaint_after(std::time::Duration::from_millis(50)),
        }
        None
    }
}

/// Write an egui screenshot (optionally cropped, in pixels) as PNG.
pub fn save_png(
    path: &Path,
    image: &egui::ColorImage,
    crop_px: Option<egui::Rect>,
) -> anyhow::Result<()> {
    let [w, h] = image.size;
    let rgba: Vec<u8> = image
        .pixels
        .iter()
        .flat_map(egui::Color32::to_array)
        .collect();
    let mut img = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| anyhow::anyhow!("screenshot has a wrong size"))?;
    if let Some(r) = crop_px {
        let x = (r.left().max(0.0) as u32).min(w as u32 - 1);
        let y = (r.top().max(0.0) as u32).min(h as u32 - 1);
        let cw = (r.width() as u32).min(w as u32 - x).max(1);
        let ch = (r.height() as u32).min(h as u32 - y).max(1);
        img = image::imageops::crop_imm(&img, x, y, cw, ch).to_image();
    }
    let mut bytes = Vec::new();
    img.write_to(
        &mut std::io::Cursor::new(&mut bytes),
        image::ImageFormat::Png,
    )?;
    crate::io::write_atomic(path, &bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exported_views_are_cropped_from_the_window() {
        let tmp = tempfile::tempdir().unwrap();
        let mut img = egui::ColorImage::filled([40, 30], egui::Color32::BLACK);
        img.pixels[12 * 40 + 21] = egui::Color32::RED; // inside the crop, at (1, 2) of it
        let path = tmp.path().join("view.png");
        save_png(
            &path,
            &img,
            Some(egui::Rect::from_min_size(
                egui::pos2(20.0, 10.0),
                egui::vec2(15.0, 10.0),
            )),
        )
        .unwrap();
        let back = image::open(&path).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), (15, 10));
        assert_eq!(back.get_pixel(1, 2).0, [255, 0, 0, 255]);
        save_png(&path, &img, None).unwrap();
        assert_eq!(
            image::open(&path).unwrap().to_rgba8().dimensions(),
            (40, 30)
        );
    }
}
