//! A newc ("070701") cpio writer: the format the kernel unpacks an initramfs from. Entries are
//! written sorted, with parents before children, owner root and mtime 0, so the same inputs
//! always give the same bytes.

use std::collections::BTreeMap;
use std::io::Write;

/// One entry of the archive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
    Char { mode: u32, major: u32, minor: u32 },
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

    /// Serialize as newc cpio.
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut written = 0usize;
        for (ino, (path, entry)) in self.entries.iter().enumerate() {
            let name = path.trim_start_matches('/');
            let (mode, data, rdev): (u32, &[u8], (u32, u32)) = match entry {
                Entry::Dir { mode } => (S_IFDIR | mode, &[], (0, 0)),
                Entry::File { mode, data } => (S_IFREG | mode, data, (0, 0)),
                Entry::Symlink { target } => (S_IFLNK | 0o777, target.as_bytes(), (0, 0)),
                Entry::Char { mode, major, minor } => (S_IFCHR | mode, &[], (*major, *minor)),
            };
            let nlink = if matches!(entry, Entry::Dir { .. }) {
                2
            } else {
                1
            };
            written += header(out, ino as u32 + 1, mode, nlink, data.len(), rdev, name)?;
            out.write_all(data)?;
            written += data.len();
            written += pad(out, written)?;
        }
        written += header(out, 0, 0, 1, 0, (0, 0), "TRAILER!!!")?;
        pad(out, written)?;
        Ok(())
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
            return; // no cpio on this host: the byte-layout test above still runs
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
    }
}
