//! Phantoms.
