//! Per-test disks: qcow2 images under `target/disks/`, blank or with given bytes at given
//! offsets (written into a sparse raw file, then converted with `qemu-img`). After a VM ran,
//! [`Disk::read`] reads bytes back and [`Disk::fsck`] checks the filesystem on it with the
//! host's `e2fsck -fn` (read-only), both through a raw copy.

use crate::vm::Drive;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::Command;

/// One qcow2 disk.
#[derive(Debug, Clone)]
pub struct Disk {
    pub path: PathBuf,
}

fn qemu_img(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .context("running qemu-img (is qemu-utils installed?)")?;
    if !out.status.success() {
        bail!(
            "qemu-img {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

impl Disk {
    fn path_for(name: &str) -> anyhow::Result<PathBuf> {
        let dir = crate::paths::repo_root().join("target/disks");
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        Ok(dir.join(format!("{name}.qcow2")))
    }

    /// A blank (all zeros) disk of `mib` MiB.
    pub fn blank(name: &str, mib: u64) -> anyhow::Result<Disk> {
        let path = Disk::path_for(name)?;
        let _ = std::fs::remove_file(&path);
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &path.display().to_string(),
            &format!("{mib}M"),
        ])?;
        Ok(Disk { path })
    }

    /// A disk of `mib` MiB holding `writes` (offset, bytes) and zeros elsewhere.
    pub fn with_bytes(name: &str, mib: u64, writes: &[(u64, &[u8])]) -> anyhow::Result<Disk> {
        use std::io::{Seek, SeekFrom, Write};
        let raw = tempfile::NamedTempFile::new().context("temp raw disk")?;
        let mut f = raw.as_file();
        f.set_len(mib << 20)?;
        for (off, bytes) in writes {
            f.seek(SeekFrom::Start(*off))?;
            f.write_all(bytes)?;
        }
        f.sync_all()?;
        Disk::from_raw(name, raw.path())
    }

    /// A disk made from the raw image `raw` (converted to qcow2).
    pub fn from_raw(name: &str, raw: &Path) -> anyhow::Result<Disk> {
        let path = Disk::path_for(name)?;
        let _ = std::fs::remove_file(&path);
        qemu_img(&[
            "convert",
            "-q",
            "-f",
            "raw",
            "-O",
            "qcow2",
            &raw.display().to_string(),
            &path.display().to_string(),
        ])?;
        Ok(Disk { path })
    }

    /// The drive for [`crate::vm::VmOptions::drive`].
    pub fn drive(&self) -> Drive {
        Drive {
            path: self.path.clone(),
            format: "qcow2".into(),
            read_only: false,
        }
    }

    /// A raw copy of the disk, for reading on the host.
    fn raw(&self) -> anyhow::Result<tempfile::NamedTempFile> {
        let raw = tempfile::NamedTempFile::new().context("temp raw disk")?;
        qemu_img(&[
            "convert",
            "-q",
            "-U",
            "-f",
            "qcow2",
            "-O",
            "raw",
            &self.path.display().to_string(),
            &raw.path().display().to_string(),
        ])?;
        Ok(raw)
    }

    /// `len` bytes at `offset`.
    pub fn read(&self, offset: u64, len: usize) -> anyhow::Result<Vec<u8>> {
        use std::io::{Read, Seek, SeekFrom};
        let raw = self.raw()?;
        let mut f = raw.reopen()?;
        f.seek(SeekFrom::Start(offset))?;
        let mut buf = vec![0u8; len];
        f.read_exact(&mut buf)?;
        Ok(buf)
    }

    /// `e2fsck -fn` on the disk (read-only, forced): its exit code (0: clean) and output.
    pub fn fsck(&self) -> anyhow::Result<(i32, String)> {
        let raw = self.raw()?;
        let out = Command::new(e2fsck())
            .args(["-f", "-n"])
            .arg(raw.path())
            .output()
            .context("running e2fsck (is e2fsprogs installed?)")?;
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        Ok((out.status.code().unwrap_or(-1), text))
    }

    /// The filesystem label (`e2label`-like: the superblock's volume name), if ext.
    pub fn ext_label(&self) -> anyhow::Result<Option<String>> {
        let sb = self.read(1024, 0x88)?;
        if sb[0x38..0x3a] != [0x53, 0xef] {
            return Ok(None);
        }
        let raw = &sb[0x78..0x88];
        let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
        Ok(Some(String::from_utf8_lossy(&raw[..end]).into_owned()))
    }
}

/// e2fsck lives in /sbin, which a non-root PATH may lack.
fn e2fsck() -> &'static str {
    ["/usr/sbin/e2fsck", "/sbin/e2fsck"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("e2fsck")
}
