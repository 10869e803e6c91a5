//! UME: a viewer, evaluator and trainer for 3D/4D medical scans.
//!
//! The library holds everything; the `ume` binary is a thin shell over
//! [`cli`]. Core modules (`volume`, `io`, `dataset`, `phantom`) never depend
//! on GUI or ML crates, so `cargo test --no-default-features` builds and
//! tests the core and the CLI alone.

pub mod annotation;
pub mod cli;
pub mod dataset;
pub mod demo;
pub mod io;
pub mod keyframes;
pub mod metrics;
#[cfg(feature = "ml")]
pub mod models;
pub mod phantom;
#[cfg(feature = "ml")]
pub mod training;
pub mod viewmath;
pub mod volume;

#[cfg(feature = "gui")]
pub mod app;
#[cfg(feature = "gui")]
pub mod render;
