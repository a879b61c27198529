//! Autoformat: a disk listed in `rancher.state.autoformat` becomes the state partition (ext4,
//! labelled `RANCHER_STATE`) only when its first MiB is all zeros: a disk that holds anything
//! (a partition table, another filesystem, a user's data) is never formatted, and the console
//! says so.

use super::device::BlockDevices;
use std::path::{Path, PathBuf};

/// The label a formatted state partition gets (and the default `rancher.state.dev` looks for).
pub const LABEL: &str = "RANCHER_STATE";
/// How much of a disk must be zeros for it to count as blank.
pub const BLANK_BYTES: usize = 1 << 20;

/// What to do with one autoformat candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Blank: format it.
    Format(PathBuf),
    /// Holds data: leave it alone.
    HoldsData(PathBuf),
    /// Could not be read (the error, for the console).
    Unreadable(PathBuf, String),
}

/// Whether `bytes` is all zeros (a short read counts as not blank: the disk is too small or
/// could not be read whole).
pub fn is_blank(bytes: &[u8]) -> bool {
    bytes.len() >= BLANK_BYTES && bytes.iter().all(|&b| b == 0)
}

/// Judge the disk `dev`.
pub fn judge(devs: &dyn BlockDevices, dev: &Path) -> Verdict {
    match devs.read_at(dev, 0, BLANK_BYTES) {
        Ok(b) if is_blank(&b) => Verdict::Format(dev.to_path_buf()),
        Ok(_) => Verdict::HoldsData(dev.to_path_buf()),
        Err(e) => Verdict::Unreadable(dev.to_path_buf(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::device::fake::Disks;
    use super::*;

    #[test]
    fn only_an_all_zero_first_mib_is_blank() {
        let mut one_byte = vec![0u8; 2 << 20];
        one_byte[BLANK_BYTES - 1] = 1;
        let mut after = vec![0u8; 2 << 20];
        after[BLANK_BYTES] = 1; // past the first MiB: does not count
        let devs = Disks::with(&[
            ("/dev/vda", vec![0u8; 2 << 20]),
            ("/dev/vdb", one_byte),
            ("/dev/vdc", after),
        ]);
        assert_eq!(
            judge(&devs, Path::new("/dev/vda")),
            Verdict::Format("/dev/vda".into())
        );
        assert_eq!(
            judge(&devs, Path::new("/dev/vdb")),
            Verdict::HoldsData("/dev/vdb".into())
        );
        assert_eq!(
            judge(&devs, Path::new("/dev/vdc")),
            Verdict::Format("/dev/vdc".into())
        );
        assert!(matches!(
            judge(&devs, Path::new("/dev/vdz")),
            Verdict::Unreadable(..)
        ));
    }

    #[test]
    fn a_short_read_is_not_blank() {
        assert!(!is_blank(&[0u8; 512]));
        assert!(is_blank(&vec![0u8; BLANK_BYTES]));
    }
}
