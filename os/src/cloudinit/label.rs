//! Filesystem labels of block devices, read from their first sectors: the NoCloud seed is a
//! vfat or iso9660 filesystem labelled `cidata`, the ConfigDrive one `config-2`. Reading two
//! fixed places is all `blkid` would do for these two formats, and it keeps the datasource
//! free of any userland tool.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// A filesystem we can read a seed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsType {
    Vfat,
    Iso9660,
}

impl FsType {
    /// The name `mount(2)` takes.
    pub fn mount_name(self) -> &'static str {
        match self {
            FsType::Vfat => "vfat",
            FsType::Iso9660 => "iso9660",
        }
    }
}

/// The label of a vfat or iso9660 filesystem starting at the beginning of `dev`.
pub fn read_label(dev: &mut (impl Read + Seek)) -> Option<(FsType, String)> {
    // iso9660: the primary volume descriptor at 32 KiB: type 1, "CD001", volume id at +40.
    let mut pvd = [0u8; 72];
    if dev.seek(SeekFrom::Start(32768)).is_ok()
        && dev.read_exact(&mut pvd).is_ok()
        && pvd[0] == 1
        && &pvd[1..6] == b"CD001"
    {
        return Some((FsType::Iso9660, trimmed(&pvd[40..72])));
    }
    // vfat: boot sector signature 0x55AA; the label is at 43 (FAT12/16) or 71 (FAT32, whose
    // 16-bit FAT size field is 0), next to the "FAT" type string.
    let mut bs = [0u8; 512];
    dev.seek(SeekFrom::Start(0)).ok()?;
    dev.read_exact(&mut bs).ok()?;
    if bs[510..512] != [0x55, 0xAA] {
        return None;
    }
    let fat32 = u16::from_le_bytes([bs[22], bs[23]]) == 0;
    let (label, kind) = if fat32 { (71, 82) } else { (43, 54) };
    if &bs[kind..kind + 3] != b"FAT" {
        return None;
    }
    Some((FsType::Vfat, trimmed(&bs[label..label + 11])))
}

fn trimmed(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .trim_end_matches([' ', '\0'])
        .to_string()
}

/// Every whole disk and partition the kernel knows (`/sys/class/block`), as paths under `dev`.
pub fn block_devices(dev: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("/sys/class/block")
        .map(|d| {
            d.flatten()
                .map(|e| dev.join(e.file_name()))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    v.retain(|p| {
        let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
        !name.is_some_and(|n| n.starts_with("loop") || n.starts_with("ram"))
    });
    v.sort();
    v
}

/// The vfat/iso9660 label of the device at `path`; None when it cannot be opened or has none.
pub fn of(path: &Path) -> Option<(FsType, String)> {
    read_label(&mut std::fs::File::open(path).ok()?)
}

/// The first device under `dev` whose vfat/iso9660 label is `label` (case-insensitive, as
/// vfat labels are often upper-cased by the tools that write them).
pub fn find(dev: &Path, label: &str) -> Option<(PathBuf, FsType)> {
    block_devices(dev).into_iter().find_map(|p| match of(&p) {
        Some((fs, l)) if l.eq_ignore_ascii_case(label) => Some((p, fs)),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Cursor;

    /// The first 64 KiB of a vfat filesystem labelled `label` (FAT32 or FAT16 layout).
    pub(crate) fn fat(fat32: bool, label: &[u8; 11]) -> Vec<u8> {
        let mut d = vec![0u8; 64 * 1024];
        d[510] = 0x55;
        d[511] = 0xAA;
        if fat32 {
            d[71..82].copy_from_slice(label);
            d[82..90].copy_from_slice(b"FAT32   ");
        } else {
            d[22] = 9; // sectors per FAT
            d[43..54].copy_from_slice(label);
            d[54..62].copy_from_slice(b"FAT16   ");
        }
        d
    }

    #[test]
    fn vfat_labels_of_both_layouts() {
        assert_eq!(
            read_label(&mut Cursor::new(fat(false, b"cidata     "))),
            Some((FsType::Vfat, "cidata".into()))
        );
        assert_eq!(
            read_label(&mut Cursor::new(fat(true, b"CONFIG-2   "))),
            Some((FsType::Vfat, "CONFIG-2".into()))
        );
    }

    #[test]
    fn iso9660_volume_id() {
        let mut d = vec![0u8; 40 * 1024];
        d[32768] = 1;
        d[32769..32774].copy_from_slice(b"CD001");
        let mut id = [b' '; 32];
        id[..8].copy_from_slice(b"config-2");
        d[32808..32840].copy_from_slice(&id);
        assert_eq!(
            read_label(&mut Cursor::new(d)),
            Some((FsType::Iso9660, "config-2".into()))
        );
    }

    #[test]
    fn blank_and_other_disks_have_no_label() {
        assert_eq!(read_label(&mut Cursor::new(vec![0u8; 64 * 1024])), None);
        let mut ext = vec![0u8; 64 * 1024];
        ext[1024 + 0x38] = 0x53;
        ext[1024 + 0x39] = 0xEF;
        assert_eq!(read_label(&mut Cursor::new(ext)), None);
        assert_eq!(read_label(&mut Cursor::new(vec![0u8; 10])), None);
    }
}
