//! `write_files`, applied by PID 1: entries without `container` go to the host's filesystem
//! when the configuration is (re)loaded at boot, before the services that may read them start;
//! entries with `container: NAME` go into that system container's root filesystem just before
//! its process starts, so the service finds them at its first read.
//!
//! Each file is written atomically with its mode, then given its owner (`user[:group]`, names
//! looked up in the target root's `/etc/passwd` and `/etc/group`, or numbers). A bad entry is
//! reported and skipped; the others are written.
//!
//! A container's root is the image's: its symlinks are the image author's, and following them
//! from the host is how `docker cp` escaped into the host (CVE-2018-15664). So the path, the
//! directories made for it and the owner tables are resolved with `pathrs` as the container
//! would see them (`RESOLVE_IN_ROOT`, no magic links): a symlink `/etc -> /host-etc` or
//! `../../..` in the container stays in the container's root. The file itself is written
//! relative to the descriptor of its directory: a temporary file made there (`O_EXCL`, never
//! through a symlink), its mode and owner set on its descriptor, fsync, `renameat` over the
//! name (a symlink there is replaced, not followed), fsync of the directory.

use crate::config::write_files::WriteFile;
use crate::dirfd::{self, Dir};
use pathrs::flags::OpenFlags;
use std::ffi::OsStr;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

/// `path` relative to the root it is written in, refusing `..` and relative paths.
fn inside(path: &str) -> Result<PathBuf, String> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(format!("{path}: not an absolute path"));
    }
    if p.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!("{path}: \"..\" is not allowed"));
    }
    let rel: PathBuf = p
        .components()
        .filter(|c| matches!(c, Component::Normal(_)))
        .collect();
    if rel.file_name().is_none() {
        return Err(format!("{path}: no file name"));
    }
    Ok(rel)
}

/// A pathrs error with its causes (its own message alone often omits the errno).
fn chain(e: &pathrs::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cur {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cur = c.source();
    }
    out
}

fn open_root(root: &Path) -> Result<pathrs::Root, String> {
    pathrs::Root::open(root).map_err(|e| format!("opening root {}: {}", root.display(), chain(&e)))
}

/// A name or number from `root`'s `/etc/passwd` (`file` = "passwd") or `/etc/group`, both
/// read as the container would (resolved inside its root).
fn lookup(root: &pathrs::Root, shown: &Path, file: &str, name: &str) -> Result<u32, String> {
    if let Ok(n) = name.parse() {
        return Ok(n);
    }
    let table_path = Path::new("/etc").join(file);
    let mut table = String::new();
    // A missing table is no table: the name is then not found.
    if let Ok(handle) = root.resolve(&table_path) {
        if let Ok(mut f) = handle.reopen(OpenFlags::O_RDONLY) {
            let _ = f.read_to_string(&mut table);
        }
    }
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
                shown.join("etc").join(file).display()
            )
        })
}

/// A container's `user:` (`name`, `uid`, `name:group`, `uid:gid`) as (uid, gid), resolved in
/// `root` the way Docker does: without a group, the user's primary group from `/etc/passwd`,
/// and gid 0 for a uid that has no entry there.
pub fn user_ids(root: &Path, spec: &str) -> Result<(u32, u32), String> {
    let r = open_root(root)?;
    let (uid, gid) = owner_in(&r, root, spec)?;
    if let Some(g) = gid {
        return Ok((uid, g));
    }
    let mut passwd = String::new();
    if let Ok(handle) = r.resolve(Path::new("/etc/passwd")) {
        if let Ok(mut f) = handle.reopen(OpenFlags::O_RDONLY) {
            let _ = f.read_to_string(&mut passwd);
        }
    }
    let primary = passwd.lines().find_map(|l| {
        let f: Vec<&str> = l.split(':').collect();
        (f.len() > 3 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[3].parse().ok())?
    });
    Ok((uid, primary.unwrap_or(0)))
}

fn owner_in(root: &pathrs::Root, shown: &Path, spec: &str) -> Result<(u32, Option<u32>), String> {
    let (user, group) = match spec.split_once([':', '.']) {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let uid = lookup(root, shown, "passwd", user)?;
    let gid = match group {
        Some(g) if !g.is_empty() => Some(lookup(root, shown, "group", g)?),
        _ => None,
    };
    Ok((uid, gid))
}

/// `user[:group]` (or `user.group`) → (uid, gid); the group defaults to the user's.
pub fn owner(root: &Path, spec: &str) -> Result<(u32, Option<u32>), String> {
    owner_in(&open_root(root)?, root, spec)
}

/// Write one entry under `root`; the path written (for messages) is returned.
pub fn write_one(root: &Path, f: &WriteFile) -> Result<PathBuf, String> {
    let rel = inside(&f.path)?;
    let shown = root.join(&rel);
    let data = f.decoded_content().map_err(|e| e.to_string())?;
    let r = open_root(root).map_err(|e| format!("{}: {e}", f.path))?;
    let owner = match &f.owner {
        Some(o) => Some(owner_in(&r, root, o).map_err(|e| format!("{}: owner {o}: {e}", f.path))?),
        None => None,
    };
    let parent = Path::new("/").join(rel.parent().unwrap_or(Path::new("")));
    let handle = r
        .mkdir_all(&parent, &std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("{}: mkdir {}: {}", f.path, parent.display(), chain(&e)))?;
    // pathrs hands back an O_PATH descriptor: reopen it readable, for fsync.
    let dir = Dir::from_fd(handle.into())
        .reopen()
        .map_err(|e| format!("{}: opening {}: {e}", f.path, parent.display()))?;
    let name = rel.file_name().unwrap_or(OsStr::new(""));
    write_atomic_at(&dir, name, &data, f.mode(), owner).map_err(|e| format!("{}: {e}", f.path))?;
    Ok(shown)
}

/// Replace `name` in `dir` with a file holding `data`, mode `mode` and owner `owner`, all at
/// once: a temporary file beside it, synced, renamed over it, and the directory synced.
fn write_atomic_at(
    dir: &Dir,
    name: &OsStr,
    data: &[u8],
    mode: u32,
    owner: Option<(u32, Option<u32>)>,
) -> std::io::Result<()> {
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    // A leftover of a crashed writer with the same pid.
    match dir.unlink(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let result = (|| {
        let mut file = dir.create_new(&tmp, 0o600)?;
        file.write_all(data)?;
        if let Some((uid, gid)) = owner {
            // Before chmod: chown clears setuid/setgid bits.
            dirfd::set_file_owner(&file, uid, gid)?;
        }
        file.set_permissions(std::fs::Permissions::from_mode(mode))?;
        file.sync_all()?;
        drop(file);
        dir.rename(&tmp, name)?;
        dir.sync()
    })();
    if result.is_err() {
        let _ = dir.unlink(&tmp);
    }
    result
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
        // A container's user: the primary group by default, gid 0 for an unknown uid.
        assert_eq!(user_ids(root.path(), "rancher"), Ok((1100, 1100)));
        assert_eq!(user_ids(root.path(), "1100"), Ok((1100, 1100)));
        assert_eq!(user_ids(root.path(), "rancher:docker"), Ok((1100, 1101)));
        assert_eq!(user_ids(root.path(), "4242"), Ok((4242, 0)));
        assert!(user_ids(root.path(), "nobody").is_err());
    }

    /// Kind, mode, owner, mtime and content of everything under `root`.
    fn snapshot(root: &Path) -> Vec<(PathBuf, u32, u32, i64, i64, String)> {
        use std::os::unix::fs::MetadataExt;
        let mut out = Vec::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let m = std::fs::symlink_metadata(&p).unwrap();
            let body = if m.file_type().is_symlink() {
                std::fs::read_link(&p).unwrap().display().to_string()
            } else if m.is_file() {
                std::fs::read_to_string(&p).unwrap()
            } else {
                for e in std::fs::read_dir(&p).unwrap() {
                    stack.push(e.unwrap().path());
                }
                String::new()
            };
            out.push((p, m.mode(), m.uid(), m.mtime(), m.mtime_nsec(), body));
        }
        out.sort();
        out
    }

    #[test]
    fn a_containers_symlinks_keep_writes_and_owner_lookups_in_its_root() {
        use std::os::unix::fs::symlink;
        let tmp = tempfile::tempdir().unwrap();
        let canary = tmp.path().join("canary");
        std::fs::create_dir_all(canary.join("etc")).unwrap();
        std::fs::write(canary.join("file"), "canary").unwrap();
        std::fs::write(canary.join("etc/passwd"), "evil:x:4242:4242::/:/bin/sh\n").unwrap();
        let before = snapshot(&canary);
        let c = canary.to_str().unwrap();

        let root = tmp.path().join("rootfs");
        std::fs::create_dir_all(root.join("var")).unwrap();
        std::fs::create_dir_all(root.join("srv/etc")).unwrap();
        symlink("/srv/etc", root.join("etc2")).unwrap();
        // The image's hostile symlinks: absolute and relative ways out, at a parent and at the
        // file itself, a magic link, a loop.
        symlink(format!("{c}/etc"), root.join("etc")).unwrap();
        symlink("../../../../../..", root.join("var/up")).unwrap();
        symlink(format!("{c}/file"), root.join("var/file")).unwrap();
        symlink("/proc/self/root/tmp", root.join("magic")).unwrap();
        symlink("/loop", root.join("loop")).unwrap();

        let files = vec![
            wf("path: /etc/motd\ncontent: dangling in the root\ncontainer: x\n"),
            wf("path: /etc2/motd\ncontent: in-root\ncontainer: x\n"),
            wf("path: /var/up/escaped\ncontent: up\ncontainer: x\n"),
            wf("path: /var/file\ncontent: replaced\ncontainer: x\npermissions: '0640'\n"),
            wf("path: /magic/m\ncontent: m\ncontainer: x\n"),
            wf("path: /loop/l\ncontent: l\ncontainer: x\n"),
            wf("path: /var/owned\ncontent: o\ncontainer: x\nowner: evil\n"),
        ];
        let problems = apply(&files, Some("x"), &root);
        // Through a symlink that leads nowhere inside the root (whatever it means on the host):
        // refused, as a loop is.
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(
            problems[0].starts_with("write_files: /etc/motd: mkdir /etc"),
            "{problems:?}"
        );
        assert!(
            problems[1].starts_with("write_files: /magic/m: mkdir /magic"),
            "{problems:?}"
        );
        assert!(
            problems[2].starts_with("write_files: /loop/l: mkdir /loop"),
            "{problems:?}"
        );
        assert!(
            problems[3].contains("/var/owned: owner evil: no user \"evil\""),
            "the host's canary passwd is not the container's: {problems:?}"
        );
        assert_eq!(snapshot(&canary), before, "the canary changed");

        // Each write landed where the container itself would find it.
        let in_root = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(in_root("srv/etc/motd"), "in-root");
        assert_eq!(in_root("escaped"), "up");
        assert!(!canary.join("etc/motd").exists());
        let replaced = std::fs::symlink_metadata(root.join("var/file")).unwrap();
        assert!(replaced.is_file(), "the symlink was replaced, not followed");
        assert_eq!(replaced.permissions().mode() & 0o777, 0o640);
        assert_eq!(in_root("var/file"), "replaced");
        assert!(
            std::fs::read_dir(root.join("var")).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")),
            "no temporary file left"
        );

        // Owner names come from the container's passwd, as the container resolves it: here
        // through its /etc symlink, inside its root.
        let etc_in_root = root.join(c.trim_start_matches('/')).join("etc");
        std::fs::create_dir_all(&etc_in_root).unwrap();
        std::fs::write(etc_in_root.join("passwd"), "svc:x:1234:1234::/:/bin/sh\n").unwrap();
        assert_eq!(owner(&root, "svc"), Ok((1234, None)));
        assert!(owner(&root, "evil").is_err());
        let owned = wf("path: /var/svc\ncontent: s\ncontainer: x\nowner: svc\n");
        assert!(apply(&[owned], Some("x"), &root).is_empty());
        use std::os::unix::fs::MetadataExt;
        assert_eq!(std::fs::metadata(root.join("var/svc")).unwrap().uid(), 1234);
        assert_eq!(snapshot(&canary), before, "the canary changed");
    }
}
