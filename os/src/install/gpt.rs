//! The installed disk's partition table, written by us rather than by `sgdisk` (which the
//! system does not carry): a protective MBR (whose code area receives GRUB's `boot.img`), the
//! primary GPT header and entries at the start, the backup entries and header at the end, every
//! CRC32 as UEFI 2.10 §5.3 defines it. The layout is the one `harness build` gives
//! `dist/rancheros.img` (see `harness/src/diskimage.rs`), with bigger slots and the state
//! partition taking the rest of the disk.

/// Bytes per sector this table is written for (the disk's logical block size must match).
pub const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// 128 entries of 128 bytes: 32 sectors.
const ENTRIES: usize = 128;
const ENTRY_SIZE: usize = 128;
const ENTRY_SECTORS: u64 = (ENTRIES * ENTRY_SIZE) as u64 / SECTOR;

/// GPT partition type GUIDs.
const BIOS_BOOT: &str = "21686148-6449-6E6F-744E-656564454649";
const ESP: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_DATA: &str = "0FC63DAF-8483-4772-8E79-3D69D8477DE4";

/// One partition: its name (also its file system's label), GPT type, first and last sector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    pub name: &'static str,
    type_guid: &'static str,
    pub first: u64,
    pub last: u64,
}

impl Part {
    pub fn offset(&self) -> u64 {
        self.first * SECTOR
    }
    pub fn bytes(&self) -> u64 {
        (self.last - self.first + 1) * SECTOR
    }
}

/// Sizes of the fixed partitions, in MiB: BIOS boot, ESP, each slot.
pub const BIOS_MIB: u64 = 1;
pub const ESP_MIB: u64 = 64;
pub const SLOT_MIB: u64 = 256;
/// The least the state partition may have.
pub const MIN_STATE_MIB: u64 = 512;

/// The smallest disk an install takes.
pub const fn min_disk_bytes() -> u64 {
    (1 + BIOS_MIB + ESP_MIB + 2 * SLOT_MIB + MIN_STATE_MIB + 1) * MIB
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum GptError {
    #[error("the disk has {have} bytes; an install needs at least {need} ({} MiB)", need >> 20)]
    TooSmall { have: u64, need: u64 },
}

/// The partitions of a disk of `bytes` bytes, 1 MiB aligned: 1 `BIOS`, 2 `EFI`, 3 `SLOT_A`,
/// 4 `SLOT_B`, 5 `RANCHER_STATE` (to the last whole MiB before the backup table).
pub fn layout(bytes: u64) -> Result<Vec<Part>, GptError> {
    let need = min_disk_bytes();
    if bytes < need {
        return Err(GptError::TooSmall { have: bytes, need });
    }
    let mut parts = Vec::new();
    let mut at = MIB;
    for (name, type_guid, mib) in [
        ("BIOS", BIOS_BOOT, BIOS_MIB),
        ("EFI", ESP, ESP_MIB),
        ("SLOT_A", LINUX_DATA, SLOT_MIB),
        ("SLOT_B", LINUX_DATA, SLOT_MIB),
    ] {
        parts.push(Part {
            name,
            type_guid,
            first: at / SECTOR,
            last: (at + mib * MIB) / SECTOR - 1,
        });
        at += mib * MIB;
    }
    // The state partition ends on a MiB boundary at least 1 MiB before the end (the backup
    // entries and header take the last 33 sectors).
    let end = (bytes / MIB - 1) * MIB;
    parts.push(Part {
        name: "RANCHER_STATE",
        type_guid: LINUX_DATA,
        first: at / SECTOR,
        last: end / SECTOR - 1,
    });
    Ok(parts)
}

/// A GUID as text → its 16 bytes on disk (the first three fields little-endian).
fn guid_bytes(text: &str) -> [u8; 16] {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let mut b = [0u8; 16];
    for (i, byte) in b.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).expect("a GUID constant");
    }
    b[0..4].reverse();
    b[4..6].reverse();
    b[6..8].reverse();
    b
}

/// 16 random bytes as a version-4 GUID.
pub fn random_guid(random: [u8; 16]) -> [u8; 16] {
    let mut g = random;
    // Version 4 in the on-disk little-endian third field; the variant in byte 8.
    g[7] = (g[7] & 0x0f) | 0x40;
    g[8] = (g[8] & 0x3f) | 0x80;
    g
}

/// What goes on the disk: bytes and where.
#[derive(Debug, Clone)]
pub struct Table {
    /// Sectors 0..34: protective MBR, primary header, primary entries.
    pub head: Vec<u8>,
    /// Where [`Table::tail`] goes (byte offset): the last 33 sectors.
    pub tail_offset: u64,
    /// Backup entries, then the backup header.
    pub tail: Vec<u8>,
}

/// The table for `parts` on a disk of `bytes` bytes. `boot_code` is the MBR's code area (440
/// bytes of GRUB's `boot.img`); `guids` gives the disk's and each partition's GUID, in order.
pub fn table(parts: &[Part], bytes: u64, boot_code: &[u8; 440], guids: &[[u8; 16]]) -> Table {
    assert_eq!(
        guids.len(),
        parts.len() + 1,
        "a GUID for the disk and each partition"
    );
    let last_lba = bytes / SECTOR - 1;
    let mut entries = vec![0u8; ENTRIES * ENTRY_SIZE];
    for (i, p) in parts.iter().enumerate() {
        let e = &mut entries[i * ENTRY_SIZE..(i + 1) * ENTRY_SIZE];
        e[0..16].copy_from_slice(&guid_bytes(p.type_guid));
        e[16..32].copy_from_slice(&guids[i + 1]);
        e[32..40].copy_from_slice(&p.first.to_le_bytes());
        e[40..48].copy_from_slice(&p.last.to_le_bytes());
        for (j, unit) in p.name.encode_utf16().take(36).enumerate() {
            e[56 + 2 * j..58 + 2 * j].copy_from_slice(&unit.to_le_bytes());
        }
    }
    let entries_crc = crc32fast::hash(&entries);
    let header = |my_lba: u64, alternate: u64, entries_lba: u64| -> Vec<u8> {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + ENTRY_SECTORS).to_le_bytes());
        h[48..56].copy_from_slice(&(last_lba - 1 - ENTRY_SECTORS).to_le_bytes());
        h[56..72].copy_from_slice(&guids[0]);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&(ENTRIES as u32).to_le_bytes());
        h[84..88].copy_from_slice(&(ENTRY_SIZE as u32).to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let mut mbr = vec![0u8; SECTOR as usize];
    mbr[..440].copy_from_slice(boot_code);
    mbr[440..444].copy_from_slice(&guids[0][..4]);
    // One partition of type 0xEE over the whole disk (or as much of it as 32 bits say).
    let p = &mut mbr[446..462];
    p[1..4].copy_from_slice(&[0x00, 0x02, 0x00]);
    p[4] = 0xee;
    p[5..8].copy_from_slice(&[0xff, 0xff, 0xff]);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    p[12..16].copy_from_slice(&(last_lba.min(u32::MAX as u64) as u32).to_le_bytes());
    mbr[510] = 0x55;
    mbr[511] = 0xaa;
    let mut head = mbr;
    head.extend(header(1, last_lba, 2));
    head.extend(&entries);
    let mut tail = entries;
    tail.extend(header(last_lba, 1, last_lba - ENTRY_SECTORS));
    Table {
        head,
        tail_offset: (last_lba - ENTRY_SECTORS) * SECTOR,
        tail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_fills_the_disk_on_mib_boundaries() {
        let parts = layout(4 << 30).unwrap();
        let names: Vec<&str> = parts.iter().map(|p| p.name).collect();
        assert_eq!(names, ["BIOS", "EFI", "SLOT_A", "SLOT_B", "RANCHER_STATE"]);
        assert_eq!(parts[0].offset(), MIB);
        for w in parts.windows(2) {
            assert_eq!(w[0].last + 1, w[1].first);
        }
        for p in &parts {
            assert_eq!(p.offset() % MIB, 0, "{}", p.name);
            assert_eq!(p.bytes() % MIB, 0, "{}", p.name);
        }
        assert_eq!(parts[4].last * SECTOR + SECTOR, (4 << 30) - MIB);
        assert_eq!(
            layout(1 << 30).unwrap_err(),
            GptError::TooSmall {
                have: 1 << 30,
                need: min_disk_bytes()
            }
        );
    }

    /// `sgdisk -v` (gdisk, from `harness setup`) finds nothing wrong with the table, and
    /// reads back the names and bounds written.
    #[test]
    fn sgdisk_reads_the_table_back() {
        let bytes: u64 = 2 << 30;
        let parts = layout(bytes).unwrap();
        let guids: Vec<[u8; 16]> = (0..6).map(|i| random_guid([i as u8 * 17; 16])).collect();
        let t = table(&parts, bytes, &[0x90; 440], &guids);
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("disk.img");
        let f = std::fs::File::create(&img).unwrap();
        f.set_len(bytes).unwrap();
        use std::os::unix::fs::FileExt;
        f.write_all_at(&t.head, 0).unwrap();
        f.write_all_at(&t.tail, t.tail_offset).unwrap();
        drop(f);
        let run = |args: &[&str]| -> Option<String> {
            let out = std::process::Command::new("sgdisk")
                .args(args)
                .arg(&img)
                .output()
                .ok()?;
            Some(String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let Some(verify) = run(&["-v"]) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "sgdisk missing under CI: `cargo harness setup` installs gdisk"
            );
            eprintln!("sgdisk not on this host: skipped");
            return;
        };
        assert!(verify.contains("No problems found"), "{verify}");
        let listed = run(&["-p"]).unwrap();
        for p in &parts {
            assert!(
                listed.contains(&format!("{}", p.first)) && listed.contains(p.name),
                "{}: {listed}",
                p.name
            );
        }
        let info = run(&["-i", "2"]).unwrap();
        assert!(
            info.contains("C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
            "{info}"
        );
    }
}
