//! `write_files`, applied by PID 1: entries without `container` go to the host's filesystem
//! when the configuration is (re)loaded at boot, before the services that may read them start;
//! entries with `container: NAME` go into that system container's root filesystem just before
//! its process starts, so the service finds them at its first read.
//!
//! Each file is written atomically with its mode, then given its owner (`user[:group]`, names
//! looked up in the target root's `/etc/passwd` and `/etc/group`, or numbers). A bad entry is
//! reported and skipped; the others are written.

use crate::config::atomic::write_atomic;
use crate::config::write_files::WriteFile;
use std::path::{Component, Path, PathBuf};

/// `path` inside `root`, refusing `..` (a container's files stay in its root).
fn inside(root: &Path, path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path}: not an absolute path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{path}: \"..\" is not allowed"));
    }
    Ok(root.join(p.strip_prefix("/").unwrap_or(p)))
}

/// A name or number from `root`'s `/etc/passwd` (`file` = "passwd") or `/etc/group`.
fn lookup(root: &Path, file: &str, name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let table = std::fs::read_to_string(root.join("etc").join(file)).unwrap_or_default();
    table
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            (f.next() == Some(name)).then(|| f.nth(1).and_then(|id| id.parse().ok()))?
        })
        .ok_or_else(|| {
            format!(
                "no {} {name:?} in {}",
                if file == "passwd" { "user" } else { "group" },
                root.join("etc").join(file).display()
            )
        })
}

/// `user[:group]` (or `user.group`) → (uid, gid); the group defaults to the user's.
pub fn owner(root: &Path, spec: &str) -> Result<(u32, Option<u32>), String> {
    let (user, group) = match spec.split_once([':', '.']) {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = lookup(root, "passwd", user)?;
    let gid = match group {
        Some(g) if !g.is_empty() => Some(lookup(root, "group", g)?),
        _ => None,
    };
    Ok((uid, gid))
}

/// Write one entry under `root`.
pub fn write_one(root: &Path, f: &WriteFile) -> Result<PathBuf, String> {
    let target = inside(root, &f.path)?;
    let data = f.decoded_content().map_err(|e| e.to_string())?;
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("{}: mkdir {}: {e}", f.path, dir.display()))?;
    }
    write_atomic(&target, &data, f.mode()).map_err(|e| format!("{}: {e}", f.path))?;
    if let Some(o) = &f.owner {
        let (uid, gid) = owner(root, o).map_err(|e| format!("{}: owner {o}: {e}", f.path))?;
        nix::unistd::chown(
            &target,
            Some(nix::unistd::Uid::from_raw(uid)),
            gid.map(nix::unistd::Gid::from_raw),
        )
        .map_err(|e| format!("{}: chown {o}: {e}", f.path))?;
    }
    Ok(target)
}

/// Write every entry whose `container` is `container` under `root`; a line per problem.
pub fn apply(files: &[WriteFile], container: Option<&str>, root: &Path) -> Vec<String> {
    files
        .iter()
        .filter(|f| f.container.as_deref() == container)
        .filter_map(|f| match write_one(root, f) {
            Ok(p) => {
                tracing::info!(path = %p.display(), container = ?container, "write_files: written");
                None
            }
            Err(e) => Some(format!("write_files: {e}")),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wf(yaml: &str) -> WriteFile {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn files_land_in_their_root_with_mode_and_only_theirs() {
        let root = tempfile::tempdir().unwrap();
        let files = vec![
            wf("path: /etc/motd\ncontent: hi\npermissions: '0600'\n"),
            wf("path: /etc/inside\ncontent: x\ncontainer: syslog\n"),
            wf("path: /opt/b64\ncontent: aGVsbG8=\nencoding: b64\n"),
            wf("path: ../escape\ncontent: x\n"),
        ];
        let problems = apply(&files, None, root.path());
        assert_eq!(problems, ["write_files: ../escape: not an absolute path"]);
        use std::os::unix::fs::PermissionsExt;
        let motd = root.path().join("etc/motd");
        assert_eq!(std::fs::read_to_string(&motd).unwrap(), "hi");
        assert_eq!(
            std::fs::metadata(&motd).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("opt/b64")).unwrap(),
            "hello"
        );
        assert!(
            !root.path().join("etc/inside").exists(),
            "that one is syslog's"
        );
        let c = tempfile::tempdir().unwrap();
        assert!(apply(&files, Some("syslog"), c.path()).is_empty());
        assert!(c.path().join("etc/inside").exists());
    }

    #[test]
    fn owners_resolve_in_the_target_root() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc")).unwrap();
        std::fs::write(
            root.path().join("etc/passwd"),
            "root:x:0:0::/root:/bin/sh\nrancher:x:1100:1100::/home/rancher:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            root.path().join("etc/group"),
            "root:x:0:\nrancher:x:1100:\ndocker:x:1101:rancher\n",
        )
        .unwrap();
        assert_eq!(owner(root.path(), "rancher"), Ok((1100, None)));
        assert_eq!(owner(root.path(), "rancher:docker"), Ok((1100, Some(1101))));
        assert_eq!(owner(root.path(), "0:0"), Ok((0, Some(0))));
        assert!(owner(root.path(), "nobody")
            .unwrap_err()
            .contains("no user \"nobody\""));
    }
}
