//! The ext2/3/4 superblock, read just far enough to find a filesystem by `LABEL=` or `UUID=`
//! without blkid (which is a C library and a dynamically linked tool we do not want in PID 1).
//!
//! The superblock starts 1024 bytes into the device; inside it, the magic `0xEF53` (little
//! endian) is at 0x38, the 16-byte UUID at 0x68 and the 16-byte volume name at 0x78.

/// Where the superblock starts on the device.
pub const OFFSET: u64 = 1024;
/// How many bytes of it [`parse`] needs.
pub const LEN: usize = 0x88;

const MAGIC_AT: usize = 0x38;
const MAGIC: u16 = 0xEF53;
const UUID_AT: usize = 0x68;
const LABEL_AT: usize = 0x78;

/// What identifies an ext filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Superblock {
    /// The volume name (`e2label`), without its NUL padding.
    pub label: String,
    pub uuid: [u8; 16],
}

impl Superblock {
    /// The UUID in its usual text form, lower case (`1b4e28ba-2fa1-11d2-883f-0016d3cca427`).
    pub fn uuid_string(&self) -> String {
        let h = |r: std::ops::Range<usize>| -> String {
            self.uuid[r].iter().map(|b| format!("{b:02x}")).collect()
        };
        format!(
            "{}-{}-{}-{}-{}",
            h(0..4),
            h(4..6),
            h(6..8),
            h(8..10),
            h(10..16)
        )
    }
}

/// Parse the superblock bytes (read from [`OFFSET`]); None when they are not an ext filesystem.
pub fn parse(sb: &[u8]) -> Option<Superblock> {
    if sb.len() < LEN {
        return None;
    }
    let magic = u16::from_le_bytes([sb[MAGIC_AT], sb[MAGIC_AT + 1]]);
    if magic != MAGIC {
        return None;
    }
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&sb[UUID_AT..UUID_AT + 16]);
    let raw = &sb[LABEL_AT..LABEL_AT + 16];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    let label = String::from_utf8_lossy(&raw[..end]).into_owned();
    Some(Superblock { label, uuid })
}

#[cfg(test)]
pub(crate) fn fake(label: &str, uuid: [u8; 16]) -> Vec<u8> {
    let mut sb = vec![0u8; LEN];
    sb[MAGIC_AT..MAGIC_AT + 2].copy_from_slice(&MAGIC.to_le_bytes());
    sb[UUID_AT..UUID_AT + 16].copy_from_slice(&uuid);
    sb[LABEL_AT..LABEL_AT + label.len()].copy_from_slice(label.as_bytes());
    sb
}

#[cfg(test)]
mod tests {
    use super::*;

    const UUID: [u8; 16] = [
        0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2, 0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0xa4,
        0x27,
    ];

    #[test]
    fn reads_label_and_uuid() {
        let sb = parse(&fake("RANCHER_STATE", UUID)).unwrap();
        assert_eq!(sb.label, "RANCHER_STATE");
        assert_eq!(sb.uuid_string(), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    }

    #[test]
    fn a_full_16_byte_label_has_no_nul() {
        let sb = parse(&fake("ABCDEFGHIJKLMNOP", UUID)).unwrap();
        assert_eq!(sb.label, "ABCDEFGHIJKLMNOP");
    }

    #[test]
    fn no_magic_or_too_short_is_not_ext() {
        assert_eq!(parse(&[0u8; LEN]), None);
        assert_eq!(parse(&fake("X", UUID)[..LEN - 1]), None);
    }

    /// A real superblock made by mke2fs (first bytes from 1024, as `mkfs.ext4 -L RANCHER_STATE
    /// -U 1b4e28ba-2fa1-11d2-883f-0016d3cca427` wrote them), checked against the parser when the
    /// host has mkfs.ext4.
    #[test]
    fn matches_what_mke2fs_writes() {
        let dir = tempfile::tempdir().unwrap();
        let img = dir.path().join("fs.img");
        std::fs::write(&img, vec![0u8; 4 << 20]).unwrap();
        let made = std::process::Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "RANCHER_STATE", "-U"])
            .arg("1b4e28ba-2fa1-11d2-883f-0016d3cca427")
            .arg(&img)
            .status();
        let Ok(st) = made else {
            eprintln!("mkfs.ext4 not on this host: skipped");
            return;
        };
        assert!(st.success());
        let bytes = std::fs::read(&img).unwrap();
        let sb = parse(&bytes[OFFSET as usize..]).unwrap();
        assert_eq!(sb.label, "RANCHER_STATE");
        assert_eq!(sb.uuid_string(), "1b4e28ba-2fa1-11d2-883f-0016d3cca427");
    }
}
