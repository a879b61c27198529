//! Everything about a directory tree that a write could change: per path, the file type, mode,
//! owner, size, mtime, a symlink's target and a file's bytes. Two snapshots compare equal only
//! if nothing in the tree was created, removed or changed.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One path's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub size: u64,
    pub mtime: (i64, i64),
    pub rdev: u64,
    /// A symlink's target, a regular file's bytes.
    pub content: Vec<u8>,
}

/// A tree, by path.
pub type Snapshot = BTreeMap<PathBuf, Node>;

/// Snapshot `root`, not descending into (nor recording) the paths in `skip`.
pub fn take(root: &Path, skip: &[PathBuf]) -> Snapshot {
    let mut out = Snapshot::new();
    walk(root, skip, &mut out);
    out
}

fn walk(path: &Path, skip: &[PathBuf], out: &mut Snapshot) {
    if skip.iter().any(|s| s == path) {
        return;
    }
    let m = std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("snapshot: {}: {e}", path.display()));
    let ft = m.file_type();
    let content = if ft.is_symlink() {
        std::fs::read_link(path)
            .map(|t| t.into_os_string().into_encoded_bytes())
            .unwrap_or_default()
    } else if ft.is_file() {
        std::fs::read(path).unwrap_or_default()
    } else {
        Vec::new()
    };
    out.insert(
        path.to_path_buf(),
        Node {
            mode: m.mode(),
            uid: m.uid(),
            gid: m.gid(),
            // A directory's size on tmpfs counts its entries: a change shows here too.
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            rdev: m.rdev(),
            content,
        },
    );
    if ft.is_dir() {
        let mut children: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap_or_else(|e| panic!("snapshot: {}: {e}", path.display()))
            .map(|e| e.expect("snapshot: reading a directory").path())
            .collect();
        children.sort();
        for c in children {
            walk(&c, skip, out);
        }
    }
}

/// What differs between two snapshots, one line per path (empty when they are the same).
pub fn diff(before: &Snapshot, after: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    for (p, b) in before {
        match after.get(p) {
            None => out.push(format!("removed {}", p.display())),
            Some(a) if a != b => out.push(format!("changed {}: {b:?} -> {a:?}", p.display())),
            Some(_) => {}
        }
    }
    for (p, a) in after {
        if !before.contains_key(p) {
            out.push(format!("created {}: {a:?}", p.display()));
        }
    }
    out
}
