//! What the fuzz targets share: a private mount namespace to keep a target's writes off the
//! machine (`sandbox`), and a record of a directory tree to prove nothing changed (`snapshot`).

pub mod sandbox;
pub mod snapshot;
