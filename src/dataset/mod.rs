//! Dataset layouts.
