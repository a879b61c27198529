//! Read-only loop devices over files, for mounting the squashfs images the initrd ships.
//!
//! One `LOOP_CONFIGURE` call (Linux 5.8+) binds the file and sets the flags at once, so no other
//! opener ever sees the device half set up; `LO_FLAGS_AUTOCLEAR` lets the kernel free the
//! device when its last mount goes away, so nothing has to detach it by hand. The structures
//! are `<linux/loop.h>`'s (the libc crate does not carry them).

use anyhow::Context;
use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;
const LOOP_CONFIGURE: libc::c_ulong = 0x4C0A;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_NAME_SIZE: usize = 64;
const LO_KEY_SIZE: usize = 32;

/// `struct loop_info64`.
#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; LO_NAME_SIZE],
    lo_crypt_name: [u8; LO_NAME_SIZE],
    lo_encrypt_key: [u8; LO_KEY_SIZE],
    lo_init: [u64; 2],
}

/// `struct loop_config`.
#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// A read-only loop device over `file`, released by the kernel once nothing holds it (the
/// returned handle and the mounts made from it). Returns the device's path and an open handle:
/// mount the path while the handle is held.
pub fn attach_read_only(file: &Path) -> anyhow::Result<(PathBuf, File)> {
    let backing = File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let control = File::open("/dev/loop-control").context("opening /dev/loop-control")?;
    // Another process may take the free device between asking and configuring it: then the
    // configure fails with EBUSY and we ask again.
    for _ in 0..8 {
        // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
        let n = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("finding a free loop device");
        }
        let path = PathBuf::from(format!("/dev/loop{n}"));
        let dev = OpenOptions::new()
            .read(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let mut name = [0u8; LO_NAME_SIZE];
        let shown = file.as_os_str().as_encoded_bytes();
        let len = shown.len().min(LO_NAME_SIZE - 1);
        name[..len].copy_from_slice(&shown[..len]);
        let config = LoopConfig {
            fd: u32::try_from(backing.as_raw_fd()).context("a file descriptor is not negative")?,
            block_size: 0,
            info: LoopInfo64 {
                lo_device: 0,
                lo_inode: 0,
                lo_rdevice: 0,
                lo_offset: 0,
                lo_sizelimit: 0,
                lo_number: 0,
                lo_encrypt_type: 0,
                lo_encrypt_key_size: 0,
                lo_flags: LO_FLAGS_READ_ONLY | LO_FLAGS_AUTOCLEAR,
                lo_file_name: name,
                lo_crypt_name: [0; LO_NAME_SIZE],
                lo_encrypt_key: [0; LO_KEY_SIZE],
                lo_init: [0; 2],
            },
            reserved: [0; 8],
        };
        // SAFETY: LOOP_CONFIGURE reads one `struct loop_config`, which `config` is (repr(C),
        // the kernel's layout), alive for the whole call.
        let rc = unsafe { libc::ioctl(dev.as_raw_fd(), LOOP_CONFIGURE, &config) };
        if rc == 0 {
            return Ok((path, dev));
        }
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::EBUSY) {
            return Err(err)
                .with_context(|| format!("binding {} to {}", file.display(), path.display()));
        }
    }
    anyhow::bail!(
        "binding {}: every free loop device was taken first, 8 times",
        file.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layouts `<linux/loop.h>` gives (sizes from the kernel's uapi header).
    #[test]
    fn structures_have_the_kernels_sizes() {
        assert_eq!(std::mem::size_of::<LoopInfo64>(), 232);
        assert_eq!(std::mem::size_of::<LoopConfig>(), 304);
    }
}
