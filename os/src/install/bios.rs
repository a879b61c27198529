//! GRUB's BIOS stages placed the way `grub-bios-setup` places them on a GPT disk (and the way
//! `harness/src/diskimage.rs` does for `dist/rancheros.img`): `boot.img`'s code in the MBR,
//! told the sector where `core.img` starts; `core.img` in the BIOS boot partition, its first
//! sector (diskboot.img) told where the rest of it is.

/// `boot.img`'s code area for the MBR, pointing at `core_sector`.
pub fn boot_code(boot_img: &[u8], core_sector: u64) -> [u8; 440] {
    let mut b = [0u8; 440];
    b.copy_from_slice(&boot_img[..440]);
    // GRUB_BOOT_MACHINE_KERNEL_SECTOR: the sector boot.img loads (core.img's first).
    b[0x5c..0x64].copy_from_slice(&core_sector.to_le_bytes());
    b
}

/// `core.img` with its block list (the last 12 bytes of its first sector: start sector and
/// count, grub-mkimage having written the count) pointing at the sector after `core_sector`.
pub fn core_img(core: &[u8], core_sector: u64) -> Vec<u8> {
    let mut c = core.to_vec();
    c[0x200 - 12..0x200 - 4].copy_from_slice(&(core_sector + 1).to_le_bytes());
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stages_point_at_each_other() {
        let code = boot_code(&[0x90; 512], 2048);
        assert_eq!(&code[0x5c..0x64], &2048u64.to_le_bytes());
        assert_eq!(code[0], 0x90);
        let core = core_img(&[0u8; 4096], 2048);
        assert_eq!(&core[0x200 - 12..0x200 - 4], &2049u64.to_le_bytes());
        assert_eq!(core.len(), 4096);
    }
}
