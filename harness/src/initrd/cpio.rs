//! A newc ("070701") cpio writer: the format the kernel unpacks an initramfs from. Entries are
//! written sorted, with parents before children, owner root and mtime 0, so the same inputs
//! always give the same bytes.
//!
//! A hard link ([`Entry::HardLink`]) names a file of the archive: both entries are written with
//! one inode number and `nlink` ≥ 2, the data with the first of them in archive order and none
//! with the others, which is how the kernel's unpacker (`init/initramfs.c`, `maybe_link`) and GNU
//! cpio make one file of them. Why: a file the initramfs needs twice (busybox at `/bin/busybox`
//! and in the system store's busybox layer) is stored, unpacked and held in RAM once.

use std::collections::BTreeMap;
use std::io::Write;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir {
        mode: u32,
    },
    File {
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        target: String,
    },
    Char {
        mode: u32,
        major: u32,
        minor: u32,
    },
    /// Another name of the regular file at `target` (an absolute archive path).
    HardLink {
        target: String,
    },
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

/// An archive being assembled: path (absolute, `/`-separated) → entry.
#[derive(Debug, Default)]
pub struct Archive {
    entries: BTreeMap<String, Entry>,
}

impl Entry {
    /// A directory with the mode its path calls for: `/tmp` sticky and world-writable, `/root`
    /// private, the rest 0755.
    pub fn dir_for(path: &str) -> Entry {
        let mode = match path.trim_end_matches('/') {
            "/tmp" => 0o1777,
            "/root" => 0o700,
            _ => 0o755,
        };
        Entry::Dir { mode }
    }
}

impl Archive {
    /// Add (or replace) `path`, creating its parent directories.
    pub fn add(&mut self, path: &str, entry: Entry) {
        let path = normalize(path);
        let mut parent = String::new();
        for part in path
            .split('/')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .split_last()
            .map(|(_, p)| p.to_vec())
            .unwrap_or_default()
        {
            parent.push('/');
            parent.push_str(part);
            self.entries
                .entry(parent.clone())
                .or_insert(Entry::Dir { mode: 0o755 });
        }
        self.entries.insert(path, entry);
    }

    /// Whether `path` is in the archive.
    pub fn contains(&self, path: &str) -> bool {
        self.entries.contains_key(&normalize(path))
    }

    /// Entries in archive order (parents before children).
    pub fn iter(&self) -> impl Iterator<Item = (&String, &Entry)> {
        self.entries.iter()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The regular file a path names: itself, or the target of its hard link.
    pub fn file(&self, path: &str) -> Option<(u32, &[u8])> {
        match self.entries.get(&normalize(path))? {
            Entry::File { mode, data } => Some((*mode, data)),
            Entry::HardLink { target } => match self.entries.get(&normalize(target))? {
                Entry::File { mode, data } => Some((*mode, data)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Serialize as newc cpio. Fails when a hard link's target is not a regular file of the
    /// archive (a link to a link included).
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let links = self.link_groups()?;
        let mut written = 0usize;
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.trim_start_matches('/');
            let mut ino = ino as u32 + 1;
            let (mode, mut data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir { mode } => (S_IFDIR | mode, &[], (0, 0)),
                Entry::File { mode, data } => (S_IFREG | mode, data, (0, 0)),
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
                Entry::Char { mode, major, minor } => (S_IFCHR | mode, &[], (*major, *minor)),
                Entry::HardLink { target } => {
                    let (mode, data) = self.file(target).unwrap_or((0, &[]));
                    (S_IFREG | mode, data, (0, 0))
                }
            };
            let mut nlink = if matches!(entry, Entry::Dir { .. }) {
                2
            } else {
                1
            };
            let file = match entry {
                Entry::HardLink { target } => Some(normalize(target)),
                Entry::File { .. } => Some(path.clone()),
                _ => None,
            };
            if let Some(group) = file.and_then(|f| links.get(&f)) {
                ino = group.ino;
                nlink = group.nlink;
                if *path != group.first {
                    data = &[];
                }
            }
            written += header(out, ino, mode, nlink, data.len(), rdev, name)?;
            out.write_all(data)?;
            written += data.len();
            written += pad(out, written)?;
        }
        written += header(out, 0, 0, 1, 0, (0, 0), "TRAILER!!!")?;
        pad(out, written)?;
        Ok(())
    }
}

/// One file with hard links: the inode number all its names share, how many names it has, and
/// the first of them in archive order (the one written with the data).
struct LinkGroup {
    ino: u32,
    nlink: u32,
    first: String,
}

impl Archive {
    /// The files with hard links, by the file's own path.
    fn link_groups(&self) -> std::io::Result<BTreeMap<String, LinkGroup>> {
        let mut groups: BTreeMap<String, LinkGroup> = BTreeMap::new();
        for (path, entry) in &self.entries {
            let Entry::HardLink { target } = entry else {
                continue;
            };
            let target = normalize(target);
            let Some(Entry::File { .. }) = self.entries.get(&target) else {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!("{path}: hard link to {target}, which is not a file of the archive"),
                ));
            };
            let ino = self.entries.keys().position(|k| *k == target).unwrap_or(0) as u32 + 1;
            let g = groups.entry(target.clone()).or_insert(LinkGroup {
                ino,
                nlink: 1,
                first: target.clone(),
            });
            g.nlink += 1;
            if *path < g.first {
                g.first = path.clone();
            }
        }
        Ok(groups)
    }
}

fn normalize(path: &str) -> String {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    format!("/{}", parts.join("/"))
}

fn header(
    out: &mut impl Write,
    ino: u32,
    mode: u32,
    nlink: u32,
    size: usize,
    rdev: (u32, u32),
    name: &str,
) -> std::io::Result<usize> {
    let namesize = name.len() + 1;
    let fields = [
        ino,
        mode,
        0,
        0,
        nlink,
        0,
        size as u32,
        0,
        0,
        rdev.0,
        rdev.1,
        namesize as u32,
        0,
    ];
    let mut h = String::from("070701");
    for f in fields {
        h.push_str(&format!("{f:08x}"));
    }
    out.write_all(h.as_bytes())?;
    out.write_all(name.as_bytes())?;
    out.write_all(&[0])?;
    let n = h.len() + namesize;
    Ok(n + pad(out, n)?)
}

/// Pad to a 4-byte boundary given `written` bytes so far; returns the padding written.
fn pad(out: &mut impl Write, written: usize) -> std::io::Result<usize> {
    let p = (4 - written % 4) % 4;
    out.write_all(&[0u8; 3][..p])?;
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_come_first_and_layout_is_aligned() {
        let mut a = Archive::default();
        a.add(
            "/usr/bin/x",
            Entry::File {
                mode: 0o755,
                data: b"hello".to_vec(),
            },
        );
        a.add(
            "dev/console",
            Entry::Char {
                mode: 0o600,
                major: 5,
                minor: 1,
            },
        );
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        assert_eq!(buf.len() % 4, 0);
        let text = String::from_utf8_lossy(&buf);
        let usr = text.find("usr\0").unwrap();
        let bin = text.find("usr/bin\0").unwrap();
        let x = text.find("usr/bin/x\0").unwrap();
        assert!(usr < bin && bin < x);
        assert!(text.ends_with("TRAILER!!!\0\0\0\0") || text.contains("TRAILER!!!"));
    }

    #[test]
    fn host_cpio_reads_it() {
        if std::process::Command::new("cpio")
            .arg("--version")
            .output()
            .is_err()
        {
            return crate::setup::tool_missing("cpio");
        }
        let mut a = Archive::default();
        a.add(
            "/a/b",
            Entry::File {
                mode: 0o644,
                data: b"abc".to_vec(),
            },
        );
        a.add("/a/l", Entry::Symlink { target: "b".into() });
        a.add(
            "/z/h",
            Entry::HardLink {
                target: "/a/b".into(),
            },
        );
        a.add(
            "/0/h",
            Entry::HardLink {
                target: "/a/b".into(),
            },
        );
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut child = std::process::Command::new("cpio")
            .args(["-id", "--quiet", "--no-absolute-filenames"])
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&buf).unwrap();
        assert!(child.wait().unwrap().success());
        assert_eq!(std::fs::read(dir.path().join("a/b")).unwrap(), b"abc");
        assert_eq!(
            std::fs::read_link(dir.path().join("a/l")).unwrap().to_str(),
            Some("b")
        );
        use std::os::unix::fs::MetadataExt;
        let b = std::fs::metadata(dir.path().join("a/b")).unwrap();
        assert_eq!(b.nlink(), 3, "one file, three names");
        for h in ["z/h", "0/h"] {
            let m = std::fs::metadata(dir.path().join(h)).unwrap();
            assert_eq!((m.ino(), m.mode() & 0o7777), (b.ino(), 0o644), "{h}");
        }
        assert_eq!(std::fs::read(dir.path().join("0/h")).unwrap(), b"abc");
    }

    /// The fields of every header, by name: (ino, nlink, filesize).
    fn headers(buf: &[u8]) -> Vec<(String, u32, u32, u32)> {
        let mut out = Vec::new();
        let mut at = 0;
        loop {
            let h = std::str::from_utf8(&buf[at..at + 110]).unwrap();
            assert_eq!(&h[..6], "070701");
            let field = |i: usize| u32::from_str_radix(&h[6 + 8 * i..14 + 8 * i], 16).unwrap();
            let (namesize, size) = (field(11) as usize, field(6) as usize);
            let name = std::str::from_utf8(&buf[at + 110..at + 110 + namesize - 1]).unwrap();
            if name == "TRAILER!!!" {
                return out;
            }
            out.push((name.to_string(), field(0), field(4), field(6)));
            at += (110 + namesize).div_ceil(4) * 4;
            at += size.div_ceil(4) * 4;
        }
    }

    #[test]
    fn a_hard_link_shares_the_inode_and_the_first_name_carries_the_data() {
        let mut a = Archive::default();
        a.add(
            "/m/file",
            Entry::File {
                mode: 0o755,
                data: b"12345".to_vec(),
            },
        );
        a.add(
            "/a/first",
            Entry::HardLink {
                target: "/m/file".into(),
            },
        );
        a.add(
            "/z/last",
            Entry::HardLink {
                target: "m/file".into(),
            },
        );
        a.add(
            "/m/other",
            Entry::File {
                mode: 0o644,
                data: b"x".to_vec(),
            },
        );
        assert_eq!(a.file("/z/last"), Some((0o755, &b"12345"[..])));
        let mut buf = Vec::new();
        a.write_to(&mut buf).unwrap();
        let h = headers(&buf);
        let get = |n: &str| h.iter().find(|e| e.0 == n).unwrap().clone();
        let (first, file, last, other) =
            (get("a/first"), get("m/file"), get("z/last"), get("m/other"));
        assert_eq!(
            (first.1, first.2, first.3),
            (file.1, 3, 5),
            "data with the first name"
        );
        assert_eq!((file.2, file.3), (3, 0));
        assert_eq!((last.1, last.2, last.3), (file.1, 3, 0));
        assert_eq!(
            (other.2, other.3),
            (1, 1),
            "other files keep their own inode"
        );
        assert_ne!(other.1, file.1);
    }

    #[test]
    fn a_hard_link_to_no_file_is_an_error_naming_it() {
        let mut a = Archive::default();
        a.add("/d", Entry::Dir { mode: 0o755 });
        a.add(
            "/l",
            Entry::HardLink {
                target: "/d".into(),
            },
        );
        let err = a.write_to(&mut Vec::new()).unwrap_err().to_string();
        assert!(err.contains("/l") && err.contains("/d"), "{err}");
    }
}
