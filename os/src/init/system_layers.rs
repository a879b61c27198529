//! The system images' layers, which the initrd ships as one squashfs image in the system store
//! (`layers.squashfs`, one top-level directory per layer, named by its diff_id's hex) beside
//! the store's index and each layer's empty `diff/` and `complete` marker.
//!
//! Why: unpacked in the initramfs, the layers sit uncompressed in RAM for as long as the
//! machine runs. Mounted from a squashfs image they stay compressed, and only what a program
//! touches is decompressed, into page cache that the kernel may drop under pressure. That is
//! what lets the system boot in 64 MB (`cargo harness bench ram`).
//!
//! The image is mounted read-only at `<store>/.squashfs` (inside the store's 0700 root: it
//! holds setuid programs), and each layer is bound onto `<store>/layers/<hex>/diff`, where the
//! store and the runtime (overlayfs lower directories) find it. The store knows nothing of
//! this: to it they are unpacked, complete layers. A layer in the image without its directory in
//! the store is named in the error (the build writes both); a store layer missing from the
//! image is not looked for here: the build makes the image's trees and the store's layer
//! directories from one list (`harness/src/images.rs`, `add_store_to`). Such a layer is one the
//! build kept in the initramfs: the busybox layer, whose busybox is a hard link to the
//! initramfs's own `/bin/busybox` (stored, unpacked and held in RAM once).

use anyhow::Context;
use nix::mount::{mount, MsFlags};
use std::path::Path;

/// The image's file name in the store's root.
pub const IMAGE: &str = "layers.squashfs";
/// Where the image is mounted, in the store's root.
const MOUNT_DIR: &str = ".squashfs";
/// `statfs`'s `f_type` of a squashfs mount (`<linux/magic.h>`; nix does not name it).
const SQUASHFS_MAGIC: libc::c_long = 0x7371_7368;

/// Mount `<store>/layers.squashfs` and bind its layers into the store. Returns how many layers
/// were bound; 0 when the store has no such image (a build that ships the trees themselves).
/// Running it again when it is mounted already does nothing.
pub fn mount_into(store: &Path) -> anyhow::Result<usize> {
    let image = store.join(IMAGE);
    if !image.exists() {
        return Ok(0);
    }
    let mnt = store.join(MOUNT_DIR);
    std::fs::create_dir_all(&mnt).with_context(|| format!("creating {}", mnt.display()))?;
    let mounted = nix::sys::statfs::statfs(&mnt)
        .map(|s| s.filesystem_type().0 == SQUASHFS_MAGIC)
        .unwrap_or(false);
    if !mounted {
        let (dev, _held) = super::loopdev::attach_read_only(&image)?;
        mount(
            Some(&dev),
            &mnt,
            Some("squashfs"),
            MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
            None::<&str>,
        )
        .with_context(|| {
            format!(
                "mounting {} ({}) on {}",
                image.display(),
                dev.display(),
                mnt.display()
            )
        })?;
    }
    let layers = store.join("layers");
    let mut bound = 0;
    let listing = std::fs::read_dir(&mnt).with_context(|| format!("listing {}", mnt.display()))?;
    for entry in listing {
        let entry = entry.with_context(|| format!("listing {}", mnt.display()))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let is_hex = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_hex {
            anyhow::bail!("{}: {name:?} is not a layer's diff_id", image.display());
        }
        let diff = layers.join(&*name).join(crate::engine::store::layers::DIFF);
        if !diff.is_dir() {
            anyhow::bail!(
                "{}: layer {name} has no {} in the store",
                image.display(),
                diff.display()
            );
        }
        let bound_already = crate::engine::store::sys::is_mount_point(&diff)
            .with_context(|| format!("inspecting {}", diff.display()))?;
        if bound_already {
            bound += 1;
            continue;
        }
        mount(
            Some(&entry.path()),
            &diff,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("binding {} on {}", entry.path().display(), diff.display()))?;
        bound += 1;
    }
    Ok(bound)
}

/// Files the boot's containers run, read ahead in this order (see [`read_ahead`]), each in
/// whichever layer of the image has it: the console's SSH server and what it loads. (Busybox,
/// which most services run, is the initramfs's own file: nothing to decompress.)
const READ_AHEAD: &[&str] = &[
    "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "lib/x86_64-linux-gnu/libc.so.6",
    "usr/sbin/dropbear",
];

/// In the library directories (`lib/x86_64-linux-gnu`, `usr/lib/x86_64-linux-gnu`), the files
/// whose names begin so are read after [`READ_AHEAD`]: dropbear's libraries (`ldd`).
const READ_AHEAD_LIBS: &[&str] = &[
    "libcrypt.so",
    "libz.so",
    "libtomcrypt.so",
    "libtommath.so",
    "libgmp.so",
];

/// Read the files of [`READ_AHEAD`] of every layer in the mounted image, on a thread of its
/// own, so that their decompression (slow under TCG, zstd or not) happens on the other CPU
/// while PID 1 and the system engine start, not in the first container that runs them.
pub fn read_ahead(store: &Path) {
    let mnt = store.join(MOUNT_DIR);
    let spawned = std::thread::Builder::new()
        .name("read-ahead".into())
        .spawn(move || {
            // Beside the boot, not before it: at a lower priority than PID 1 and the services.
            if let Err(e) = crate::priority::set_idle() {
                tracing::debug!(error = %e, "read-ahead at the usual priority");
            }
            let t = std::time::Instant::now();
            let mut bytes = 0u64;
            let layers: Vec<_> = std::fs::read_dir(&mnt)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .collect();
            let mut read = |path: &Path| {
                if let Ok(mut f) = std::fs::File::open(path) {
                    bytes += std::io::copy(&mut f, &mut std::io::sink()).unwrap_or(0);
                }
            };
            for rel in READ_AHEAD {
                for layer in &layers {
                    read(&layer.join(rel));
                }
            }
            for layer in &layers {
                for dir in ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"] {
                    for e in std::fs::read_dir(layer.join(dir))
                        .into_iter()
                        .flatten()
                        .flatten()
                    {
                        let name = e.file_name();
                        let wanted = READ_AHEAD_LIBS
                            .iter()
                            .any(|p| name.to_string_lossy().starts_with(p));
                        if wanted && e.file_type().is_ok_and(|t| t.is_file()) {
                            read(&e.path());
                        }
                    }
                }
            }
            tracing::info!(bytes, ms = t.elapsed().as_millis() as u64, "read ahead");
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no read-ahead thread");
    }
}
