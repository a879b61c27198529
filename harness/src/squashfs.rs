//! A read-only squashfs image of file trees, made with Debian's `mksquashfs` (squashfs-tools).
//!
//! Why: the system images' layers, unpacked as plain files in the initramfs, sit in RAM
//! uncompressed for as long as the machine runs (9.8 MB of 24.8 MB in RAM at boot; `-m 64`
//! did not even unpack the initrd). In one squashfs image they stay compressed in RAM, and only
//! the pages a program touches are decompressed, into the page cache, which the kernel can drop
//! again under pressure. PID 1 mounts the image and binds each layer's tree where the image
//! store expects it (`os/src/init/system_layers.rs`).
//!
//! The trees come from [`Archive`]s (no hard links, no xattrs: the kernel is built without
//! `SQUASHFS_XATTR`), written to a scratch directory with their exact modes; character devices
//! (overlayfs whiteouts) are pseudo definitions, so no device node is made on the host. Owners
//! are root, every time is 0 and mksquashfs is reproducible by default: the same trees give the
//! same image, byte for byte.

use crate::initrd::cpio::{Archive, Entry};
use anyhow::{bail, Context};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

/// How the image is compressed (`initrd.yml`, `images.squashfs`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Options {
    /// `zstd`, `xz` or `gzip` (the kernel decompresses zstd, xz and zlib squashfs).
    pub compression: String,
    /// The compressor's level, if it takes one (zstd 1–22, gzip 1–9).
    pub level: Option<u32>,
    /// Data block size in bytes: a power of two from 4 KiB to 1 MiB. Larger compresses better;
    /// smaller decompresses less for each page read.
    pub block_size: u32,
    /// xz only: also try the x86 branch filter on each block (smaller for machine code).
    #[serde(default)]
    pub x86_filter: bool,
}

/// The squashfs image whose root holds each of `trees` under its name.
pub fn build(trees: &BTreeMap<String, &Archive>, opts: &Options) -> anyhow::Result<Vec<u8>> {
    if !matches!(opts.compression.as_str(), "zstd" | "xz" | "gzip") {
        bail!(
            "squashfs compression {:?}: expected zstd, xz or gzip",
            opts.compression
        );
    }
    if !opts.block_size.is_power_of_two() || !(4096..=1 << 20).contains(&opts.block_size) {
        bail!(
            "squashfs block_size {}: expected a power of two from 4096 to 1048576",
            opts.block_size
        );
    }
    if opts.x86_filter && opts.compression != "xz" {
        bail!("squashfs x86_filter: only with xz compression");
    }
    let scratch = tempfile::tempdir().context("creating a scratch directory for mksquashfs")?;
    let src = scratch.path().join("root");
    std::fs::create_dir(&src).with_context(|| format!("creating {}", src.display()))?;
    let mut pseudo = Vec::new();
    let mut dir_modes = Vec::new();
    for (name, archive) in trees {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            bail!("squashfs tree name {name:?}: expected one plain path component");
        }
        let top = src.join(name);
        std::fs::create_dir(&top).with_context(|| format!("creating {}", top.display()))?;
        dir_modes.push((top.clone(), 0o755));
        for (path, entry) in archive.iter() {
            let rel = path.trim_start_matches('/');
            if rel.is_empty()
                || rel
                    .split('/')
                    .any(|c| c.is_empty() || c == "." || c == "..")
            {
                bail!("squashfs tree {name}: path {path:?} is not a plain relative path");
            }
            let at = top.join(rel);
            let mkdir = |p: &Path| {
                std::fs::create_dir_all(p).with_context(|| format!("creating {}", p.display()))
            };
            match entry {
                Entry::Dir { mode } => {
                    mkdir(&at)?;
                    dir_modes.push((at, *mode));
                }
                Entry::File { mode, data } => {
                    mkdir(at.parent().context("a file has a parent")?)?;
                    std::fs::write(&at, data)
                        .with_context(|| format!("writing {}", at.display()))?;
                    std::fs::set_permissions(&at, std::fs::Permissions::from_mode(*mode))
                        .with_context(|| format!("chmod {}", at.display()))?;
                }
                Entry::Symlink { target } => {
                    mkdir(at.parent().context("a link has a parent")?)?;
                    std::os::unix::fs::symlink(target, &at)
                        .with_context(|| format!("linking {}", at.display()))?;
                }
                Entry::Char { mode, major, minor } => {
                    mkdir(at.parent().context("a device has a parent")?)?;
                    if rel.contains(char::is_whitespace) || name.contains(char::is_whitespace) {
                        bail!("squashfs tree {name}: device {path:?} has a space in its name");
                    }
                    pseudo.push(format!(
                        "{name}/{rel} c {:o} 0 0 {major} {minor}",
                        mode & 0o7777
                    ));
                }
                Entry::HardLink { .. } => {
                    bail!("squashfs tree {name}: {path:?} is a hard link; the trees have none")
                }
            }
        }
    }
    // Modes last, deepest first: a read-only directory must not stop its own filling.
    dir_modes.sort_by_key(|(p, _)| std::cmp::Reverse(p.components().count()));
    for (p, mode) in dir_modes {
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", p.display()))?;
    }
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("chmod {}", src.display()))?;
    let pseudo_file = scratch.path().join("pseudo");
    std::fs::write(&pseudo_file, pseudo.join("\n") + "\n")
        .with_context(|| format!("writing {}", pseudo_file.display()))?;
    let out = scratch.path().join("image.squashfs");
    let mut cmd = Command::new("mksquashfs");
    cmd.arg(&src)
        .arg(&out)
        .args(["-comp", &opts.compression])
        .args(["-b", &opts.block_size.to_string()]);
    if let Some(level) = opts.level {
        cmd.args(["-Xcompression-level", &level.to_string()]);
    }
    if opts.x86_filter {
        cmd.args(["-Xbcj", "x86"]);
    }
    cmd.args([
        "-all-root",
        "-all-time",
        "0",
        "-mkfs-time",
        "0",
        "-no-xattrs",
        "-noappend",
        "-no-progress",
        "-quiet",
    ]);
    if !pseudo.is_empty() {
        cmd.arg("-pf").arg(&pseudo_file);
    }
    let output = cmd
        .output()
        .context("running mksquashfs (from Debian's squashfs-tools: `cargo harness setup`)")?;
    if !output.status.success() {
        bail!(
            "mksquashfs failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    std::fs::read(&out).with_context(|| format!("reading {}", out.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        Options {
            compression: "zstd".into(),
            level: Some(3),
            block_size: 131072,
            x86_filter: false,
        }
    }

    fn tree() -> Archive {
        let mut a = Archive::default();
        a.add(
            "/usr/bin/sudo",
            Entry::File {
                mode: 0o4755,
                data: b"#!".to_vec(),
            },
        );
        a.add("/etc/ro", Entry::Dir { mode: 0o555 });
        a.add(
            "/etc/ro/f",
            Entry::File {
                mode: 0o600,
                data: vec![7; 100_000],
            },
        );
        a.add(
            "/lib64",
            Entry::Symlink {
                target: "usr/lib".into(),
            },
        );
        a.add(
            "/gone",
            Entry::Char {
                mode: 0,
                major: 0,
                minor: 0,
            },
        );
        a
    }

    /// Modes, links and whiteouts come through, and the same trees give the same bytes.
    #[test]
    fn trees_come_through_and_the_image_is_reproducible() {
        let a = tree();
        let trees = BTreeMap::from([("abc".to_string(), &a)]);
        let one = build(&trees, &opts()).unwrap();
        let two = build(&trees, &opts()).unwrap();
        assert_eq!(one, two, "same trees, same image");
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("i.squashfs");
        std::fs::write(&img, &one).unwrap();
        let out = Command::new("unsquashfs")
            .args(["-lls", "-d", "/r"])
            .arg(&img)
            .output()
            .expect("unsquashfs (squashfs-tools, from `cargo harness setup`)");
        assert!(out.status.success(), "{out:?}");
        let listing = String::from_utf8_lossy(&out.stdout);
        for want in [
            "-rwsr-xr-x root/root                 2 1970-01-01 00:00 /r/abc/usr/bin/sudo",
            "dr-xr-xr-x root/root",
            "-rw------- root/root            100000 1970-01-01 00:00 /r/abc/etc/ro/f",
            "/r/abc/lib64 -> usr/lib",
            "c--------- root/root             0,  0 1970-01-01 00:00 /r/abc/gone",
        ] {
            assert!(listing.contains(want), "{want:?} not in\n{listing}");
        }
    }

    #[test]
    fn bad_options_and_names_are_refused() {
        let a = tree();
        let trees = BTreeMap::from([("abc".to_string(), &a)]);
        let mut o = opts();
        o.block_size = 1000;
        let e = build(&trees, &o).unwrap_err().to_string();
        assert!(e.contains("block_size 1000"), "{e}");
        let mut o = opts();
        o.compression = "lz4".into();
        assert!(build(&trees, &o).unwrap_err().to_string().contains("lz4"));
        let bad = BTreeMap::from([("../x".to_string(), &a)]);
        assert!(build(&bad, &opts())
            .unwrap_err()
            .to_string()
            .contains("../x"));
    }
}
