//! The disk an install is aimed at, looked at before anything is written: a whole disk (not a
//! partition), writable, of 512-byte sectors, big enough, nothing of it mounted, and either
//! blank or given up with `-f` — in which case the user is told what it holds, partition by
//! partition, before it is gone.

use std::path::{Path, PathBuf};

/// What an install needs to know of its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub dev: PathBuf,
    /// The kernel's name (`vdb`, `nvme0n1`).
    pub name: String,
    pub bytes: u64,
    /// Its partitions, as the kernel sees them now: `(name, bytes, what it holds)`.
    pub partitions: Vec<(String, u64, String)>,
    /// Where the disk or one of its partitions is mounted (source → mount point).
    pub mounted: Vec<String>,
    /// The first MiB is all zeros and there are no partitions.
    pub blank: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("{0}: {1}")]
    Bad(String, String),
    #[error("{dev}: {what}: {source}")]
    Io {
        dev: String,
        what: String,
        source: std::io::Error,
    },
}

fn sys(name: &str, file: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/sys/class/block").join(name).join(file))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Look at `dev` (`/dev/vdb`). `describe` says what a partition holds (its file system and
/// label), for the message that lists them.
pub fn inspect(dev: &Path, describe: &dyn Fn(&Path) -> String) -> Result<Disk, DiskError> {
    let d = dev.display().to_string();
    let bad = |why: String| DiskError::Bad(d.clone(), why);
    let name = dev
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| dev.parent() == Some(Path::new("/dev")) && !n.is_empty())
        .ok_or_else(|| bad("not a device under /dev".into()))?;
    if sys(&name, "dev").is_none() {
        return Err(bad("no such block device".into()));
    }
    if sys(&name, "partition").is_some() {
        return Err(bad(
            "a partition: an install takes a whole disk (it writes its own partition table)".into(),
        ));
    }
    if sys(&name, "ro").as_deref() == Some("1") {
        return Err(bad("read-only".into()));
    }
    let sector = sys(&name, "queue/logical_block_size").unwrap_or_else(|| "512".into());
    if sector != "512" {
        return Err(bad(format!(
            "{sector}-byte sectors: only 512-byte sector disks are supported"
        )));
    }
    let bytes = sys(&name, "size")
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| bad("its size is unknown".into()))?
        * 512;
    let mut partitions = Vec::new();
    if let Ok(rd) = std::fs::read_dir(Path::new("/sys/class/block").join(&name)) {
        for e in rd.flatten() {
            let part = e.file_name().to_string_lossy().into_owned();
            if !part.starts_with(&name) || sys(&part, "partition").is_none() {
                continue;
            }
            let size = sys(&part, "size")
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0)
                * 512;
            let what = describe(&Path::new("/dev").join(&part));
            partitions.push((part, size, what));
        }
    }
    partitions.sort();
    let mut mounted = Vec::new();
    for table in ["/proc/self/mounts", "/proc/1/mounts"] {
        for line in std::fs::read_to_string(table).unwrap_or_default().lines() {
            let mut f = line.split_whitespace();
            let (Some(src), Some(at)) = (f.next(), f.next()) else {
                continue;
            };
            let ours = src == d
                || partitions
                    .iter()
                    .any(|(p, _, _)| src == format!("/dev/{p}"));
            let m = format!("{src} on {at}");
            if ours && !mounted.contains(&m) {
                mounted.push(m);
            }
        }
    }
    let first = read_at(dev, 0, 1 << 20).map_err(|source| DiskError::Io {
        dev: d.clone(),
        what: "reading its first MiB".into(),
        source,
    })?;
    let blank = partitions.is_empty() && first.iter().all(|b| *b == 0);
    Ok(Disk {
        dev: dev.to_path_buf(),
        name,
        bytes,
        partitions,
        mounted,
        blank,
    })
}

fn read_at(dev: &Path, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::open(dev)?;
    let mut buf = vec![0u8; len];
    let n = f.read_at(&mut buf, offset)?;
    buf.truncate(n);
    Ok(buf)
}

impl Disk {
    /// What an install would erase, in words: one line per partition, or the raw data.
    pub fn holds(&self) -> String {
        if self.partitions.is_empty() {
            return "data in its first MiB (no partition table the kernel reads)".into();
        }
        self.partitions
            .iter()
            .map(|(p, size, what)| {
                format!(
                    "/dev/{p} ({} MiB{}{what})",
                    size >> 20,
                    if what.is_empty() { "" } else { ", " }
                )
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether an install may go on, and if not, why (`force`: `-f` was given).
    pub fn check(&self, force: bool) -> Result<(), DiskError> {
        let d = self.dev.display().to_string();
        if !self.mounted.is_empty() {
            return Err(DiskError::Bad(
                d,
                format!("in use: {} (unmount it first)", self.mounted.join(", ")),
            ));
        }
        if !self.blank && !force {
            return Err(DiskError::Bad(
                d,
                format!(
                    "holds {}; an install erases all of it: give -f to do that",
                    self.holds()
                ),
            ));
        }
        Ok(())
    }

    /// The node of partition `n` (`/dev/vdb3`, `/dev/nvme0n1p3`), as the kernel named it.
    pub fn partition(&self, n: u32) -> Option<PathBuf> {
        let rd = std::fs::read_dir(Path::new("/sys/class/block").join(&self.name)).ok()?;
        rd.flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|p| p.starts_with(&self.name))
            .find(|p| sys(p, "partition").as_deref() == Some(&n.to_string()))
            .map(|p| Path::new("/dev").join(p))
            .filter(|p| p.exists())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn disk(blank: bool, mounted: &[&str]) -> Disk {
        Disk {
            dev: "/dev/vdb".into(),
            name: "vdb".into(),
            bytes: 2 << 30,
            partitions: if blank {
                vec![]
            } else {
                vec![("vdb1".into(), 64 << 20, "vfat \"DATA\"".into())]
            },
            mounted: mounted.iter().map(|s| s.to_string()).collect(),
            blank,
        }
    }

    #[test]
    fn a_disk_with_data_is_given_up_only_with_force_and_never_while_mounted() {
        assert!(disk(true, &[]).check(false).is_ok());
        let e = disk(false, &[]).check(false).unwrap_err().to_string();
        assert_eq!(
            e,
            "/dev/vdb: holds /dev/vdb1 (64 MiB, vfat \"DATA\"); an install erases all of it: give -f to do that"
        );
        assert!(disk(false, &[]).check(true).is_ok());
        let e = disk(false, &["/dev/vdb1 on /mnt/state"])
            .check(true)
            .unwrap_err()
            .to_string();
        assert!(e.contains("in use: /dev/vdb1 on /mnt/state"), "{e}");
    }
}
