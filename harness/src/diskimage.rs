//! `dist/rancheros.img`: a disk that boots by itself (SeaBIOS or UEFI → GRUB → slot A), built without
//! loop devices or mounts: `sgdisk` writes the GPT into a sparse file, `mkfs.vfat --offset` and
//! `mkfs.ext4 -E offset=… -d DIR` make each file system in place, `mcopy -i IMG@@OFFSET` fills
//! the ESP, and GRUB's BIOS stages are placed by hand the way `grub-bios-setup` does: `boot.img`'s
//! code in the MBR (pointing at the BIOS boot partition), `core.img` from `grub-mkimage` in that
//! partition (pointing at its own second sector).
//!
//! UEFI firmware finds GRUB at the ESP's removable-media path (`EFI/BOOT/BOOTX64.EFI`, from
//! `grub-mkimage -O x86_64-efi`), which reads the same `grub.cfg`.
//!
//! Layout (GPT, 1 MiB aligned): 1 `BIOS` (BIOS boot, 1 MiB) · 2 `EFI` (ESP, FAT32, 64 MiB:
//! `grub/grub.cfg` and the boot state `grub/grubenv`) · 3 `SLOT_A` and 4 `SLOT_B` (ext4,
//! 64 MiB each: `vmlinuz`, `initrd.img`, `manifest.json`) · 5 `RANCHER_STATE` (ext4, found by
//! its label at boot). Kernels never live on FAT. Slot B starts empty; the boot state's `ORDER`
//! names the slots GRUB tries, and a slot is booted only if its `*_OK` says so.

use anyhow::{bail, Context};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

const SECTOR: u64 = 512;
const MIB: u64 = 1 << 20;
/// GRUB's i386-pc files (Debian's `grub-pc-bin`).
pub const GRUB_PC: &str = "/usr/lib/grub/i386-pc";
/// GRUB's x86_64-efi files (Debian's `grub-efi-amd64-bin`).
pub const GRUB_EFI: &str = "/usr/lib/grub/x86_64-efi";
/// What GRUB needs built in to read the ESP and the slots and run `grub.cfg`.
const GRUB_MODULES: &[&str] = &[
    "part_gpt",
    "fat",
    "ext2",
    "normal",
    "configfile",
    "linux",
    "echo",
    "test",
    "loadenv",
    "search",
    "search_label",
    "regexp",
    "serial",
    "terminal",
];

/// One partition: GPT type code, name (and file-system label), size in MiB.
struct Part {
    type_code: &'static str,
    name: &'static str,
    mib: u64,
}

const PARTS: &[Part] = &[
    Part {
        type_code: "EF02",
        name: "BIOS",
        mib: 1,
    },
    Part {
        type_code: "EF00",
        name: "EFI",
        mib: 64,
    },
    Part {
        type_code: "8300",
        name: "SLOT_A",
        mib: 64,
    },
    Part {
        type_code: "8300",
        name: "SLOT_B",
        mib: 64,
    },
    Part {
        type_code: "8300",
        name: "RANCHER_STATE",
        mib: 256,
    },
];

/// Where the ESP starts in the image (bytes): after the GPT's MiB and the BIOS boot partition.
pub fn esp_offset() -> u64 {
    MIB + PARTS[0].mib * MIB
}

/// Where partition `name` (`EFI`, `SLOT_A`, …, `RANCHER_STATE`) lies in the image: offset and
/// length in bytes.
pub fn partition(name: &str) -> Option<(u64, u64)> {
    let mut at = MIB;
    for p in PARTS {
        if p.name == name {
            return Some((at, p.mib * MIB));
        }
        at += p.mib * MIB;
    }
    None
}

/// What was built.
#[derive(Debug, Clone)]
pub struct DiskImage {
    pub path: PathBuf,
    pub version: String,
}

/// The version a build names: `RANCHEROS_VERSION`, else the workspace's.
pub fn version() -> String {
    std::env::var("RANCHEROS_VERSION")
        .ok()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| env!("CARGO_PKG_VERSION").to_string())
}

/// The kernel command line GRUB gives every slot.
pub const CMDLINE: &str = "console=tty0 console=ttyS0 panic=10";
/// What GRUB adds on a trial boot: the watchdog runs from boot and resets the machine unless
/// the health gate has it within 3 minutes. The same words as the os crate's
/// `bootstate::watchdog::KERNEL_ARGS`, which the gate looks for.
pub const TRIAL_ARGS: &str = "softdog.soft_active_on_boot=1 softdog.soft_margin=180";

/// The boot state GRUB reads and writes: a GRUB environment block of one sector, so that
/// GRUB's `save_env` (which rewrites the file's blocks in place) and the system's own writes
/// each change one sector.
pub fn grubenv(vars: &[(&str, &str)]) -> Vec<u8> {
    let mut s = String::from("# GRUB Environment Block\n");
    for (k, v) in vars {
        s.push_str(&format!("{k}={v}\n"));
    }
    let mut b = s.into_bytes();
    assert!(b.len() <= 512, "the boot state outgrew its sector");
    b.resize(512, b'#');
    b
}

/// GRUB's configuration: walk `ORDER`; a slot whose `*_OK` is 1 boots; else one whose `*_TRY`
/// is above 0 boots only once its decremented count is saved (a trial: if it never marks
/// itself good, its tries run out and the next boot is another slot, with no hand on it). A
/// slot that does not load (a kernel GRUB cannot read) falls back to the first good one at
/// once; a boot state that does not load (zeroed, truncated) gives way to `goodenv`'s
/// known-good slot (`GOOD`, with its arguments), as does a walk that finds no slot to boot. Each slot's own
/// kernel arguments (`A_APPEND`, `B_APPEND`: `rancherctl install --append`, carried by every
/// upgrade) follow the built-in ones; GRUB splits the unquoted `$append` into words. A trial
/// boot also gets [`TRIAL_ARGS`], so an init or gate that hangs resets the machine.
pub fn grub_cfg() -> String {
    let mut try_slot = String::new();
    for (slot, label) in [("A", "SLOT_A"), ("B", "SLOT_B")] {
        try_slot.push_str(&format!(
            r#"  if [ "$slot" = {slot} ]; then
    if [ "${slot}_OK" = 1 ]; then set boot={label}; break; fi
    if [ "${slot}_TRY" = 3 ]; then set {slot}_TRY=2
    elif [ "${slot}_TRY" = 2 ]; then set {slot}_TRY=1
    elif [ "${slot}_TRY" = 1 ]; then set {slot}_TRY=0
    else continue; fi
    if save_env {slot}_TRY; then set boot={label}; set trial=1; break; fi
    echo "boot state not saved: no trial of slot {slot}"
  fi
"#
        ));
    }
    format!(
        r#"# RancherOS-rs boot: the slots in ORDER (written by harness build; see harness/src/diskimage.rs).
set timeout=0
set gfxpayload=text
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set ORDER="A B"
set A_OK=1
set A_TRY=0
set B_OK=0
set B_TRY=0
set A_APPEND=""
set B_APPEND=""
set GOOD=A
set GOOD_APPEND=""
# The disk GRUB was loaded from (its prefix is "(,gpt2)/grub": the boot disk, whatever the
# firmware numbers it), so the slots are this disk's, not the first with their label.
regexp --set=1:bootdisk '^([^,]+),' "$root"
function slot_root {{
  if [ -z "$bootdisk" ]; then search --no-floppy --label --set=root $1
  elif [ "$1" = SLOT_B ]; then set root="$bootdisk,gpt4"
  else set root="$bootdisk,gpt3"; fi
}}
if ! load_env -f $prefix/goodenv GOOD GOOD_APPEND; then
  echo "known-good slot unreadable: A"
fi
if ! load_env ORDER A_OK A_TRY B_OK B_TRY A_APPEND B_APPEND; then
  echo "boot state unreadable: booting the known-good slot $GOOD"
  if [ "$GOOD" = B ]; then
    set ORDER=B; set B_OK=1; set B_APPEND="$GOOD_APPEND"
  else
    set ORDER=A; set A_OK=1; set A_APPEND="$GOOD_APPEND"
  fi
fi
set boot=""
set trial=0
for slot in $ORDER; do
{try_slot}done
if [ -z "$boot" ]; then
  if [ "$GOOD" = B ]; then set boot=SLOT_B; else set boot=SLOT_A; fi
fi
if [ "$boot" = SLOT_B ]; then set append="$B_APPEND"; else set append="$A_APPEND"; fi
if [ "$trial" = 1 ]; then set watchdog="{TRIAL_ARGS}"; else set watchdog=""; fi
echo "booting $boot (trial $trial)"
slot_root $boot
linux /vmlinuz {CMDLINE} rancher.boot.slot=$boot $append $watchdog
initrd /initrd.img
boot
echo "$boot did not load: falling back to a good slot"
for slot in $ORDER; do
  if [ "$slot" = A -a "$A_OK" = 1 ]; then set boot=SLOT_A; break; fi
  if [ "$slot" = B -a "$B_OK" = 1 ]; then set boot=SLOT_B; break; fi
done
if [ "$boot" = SLOT_B ]; then set append="$B_APPEND"; else set append="$A_APPEND"; fi
echo "booting $boot (fallback)"
slot_root $boot
linux /vmlinuz {CMDLINE} rancher.boot.slot=$boot $append
initrd /initrd.img
boot
"#
    )
}

/// What goes in a slot.
#[derive(Debug, Clone)]
pub struct Slot {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub version: String,
}

/// A whole disk: slot A, optionally slot B, and the boot state.
#[derive(Debug, Clone)]
pub struct Spec {
    pub a: Slot,
    pub b: Option<Slot>,
    /// `ORDER`, `A_OK`, `A_TRY`, `B_OK`, `B_TRY`.
    pub boot_state: Vec<(String, String)>,
}

impl Spec {
    /// The known-good slot (`goodenv`): the first in `ORDER` whose `*_OK` is 1, else A.
    pub fn good(&self) -> &'static str {
        let get = |k: &str| {
            self.boot_state
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        for slot in get("ORDER").unwrap_or("A").split_whitespace() {
            match slot {
                "A" if get("A_OK") == Some("1") => return "A",
                "B" if get("B_OK") == Some("1") => return "B",
                _ => {}
            }
        }
        "A"
    }

    /// Slot A alone, good; slot B empty.
    pub fn slot_a(kernel: &Path, initrd: &Path, version: &str) -> Spec {
        Spec {
            a: Slot {
                kernel: kernel.into(),
                initrd: initrd.into(),
                version: version.into(),
            },
            b: None,
            boot_state: [
                ("ORDER", "A B"),
                ("A_OK", "1"),
                ("A_TRY", "0"),
                ("B_OK", "0"),
                ("B_TRY", "0"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }
}

/// Build `out` with `kernel` and `initrd` in slot A, naming the version `version`.
pub fn build(kernel: &Path, initrd: &Path, version: &str, out: &Path) -> anyhow::Result<DiskImage> {
    build_spec(&Spec::slot_a(kernel, initrd, version), out)
}

/// Build `out` as `spec` says.
pub fn build_spec(spec: &Spec, out: &Path) -> anyhow::Result<DiskImage> {
    for tool in [
        "sgdisk",
        "grub-mkimage",
        "mkfs.ext4",
        "mkfs.vfat",
        "mcopy",
        "mmd",
    ] {
        if which(tool).is_none() {
            bail!("{tool} is missing: `cargo harness setup` installs gdisk, grub-common, grub-pc-bin, grub-efi-amd64-bin, e2fsprogs, dosfstools and mtools");
        }
    }
    let work = tempfile::tempdir()?;
    let tmp = out.with_extension("img.tmp");
    let _ = std::fs::remove_file(&tmp);
    // Offsets: 1 MiB for the GPT, then each partition; 1 MiB at the end for the backup GPT.
    let mut offsets = Vec::new();
    let mut at = MIB;
    for p in PARTS {
        offsets.push(at);
        at += p.mib * MIB;
    }
    let total = at + MIB;
    std::fs::File::create(&tmp)?.set_len(total)?;
    let mut sgdisk = Command::new("sgdisk");
    sgdisk.arg("-o");
    for (i, (p, off)) in PARTS.iter().zip(&offsets).enumerate() {
        let n = i + 1;
        let first = off / SECTOR;
        let last = first + p.mib * MIB / SECTOR - 1;
        sgdisk.args([
            format!("-n{n}:{first}:{last}"),
            format!("-t{n}:{}", p.type_code),
            format!("-c{n}:{}", p.name),
        ]);
    }
    run(sgdisk.arg(&tmp))?;

    // ESP: FAT32 with GRUB's configuration and the boot state.
    let esp = offsets[1];
    run(Command::new("mkfs.vfat")
        .args(["-F", "32", "-s", "1", "-n", "EFI", "--offset"])
        .arg((esp / SECTOR).to_string())
        .arg(&tmp)
        .arg((PARTS[1].mib * MIB / 1024).to_string()))?;
    let cfg = work.path().join("grub.cfg");
    std::fs::write(&cfg, grub_cfg())?;
    let env = work.path().join("grubenv");
    let vars: Vec<(&str, &str)> = spec
        .boot_state
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    std::fs::write(&env, grubenv(&vars))?;
    let img_at = format!("{}@@{}", tmp.display(), esp);
    run(Command::new("mmd").args(["-i", &img_at, "::/grub", "::/EFI", "::/EFI/BOOT"]))?;
    // GRUB for UEFI: the removable-media path, so no firmware entry is needed.
    let grub = GrubImages::build(work.path())?;
    let efi = &grub.efi;
    run(Command::new("mcopy")
        .args(["-i", &img_at])
        .arg(efi)
        .arg("::/EFI/BOOT/BOOTX64.EFI"))?;
    run(Command::new("mcopy")
        .args(["-i", &img_at])
        .arg(&cfg)
        .arg("::/grub/grub.cfg"))?;
    run(Command::new("mcopy")
        .args(["-i", &img_at])
        .arg(&env)
        .arg("::/grub/grubenv"))?;
    let good_key = spec.good();
    let good = work.path().join("goodenv");
    std::fs::write(&good, grubenv(&[("GOOD", good_key), ("GOOD_APPEND", "")]))?;
    run(Command::new("mcopy")
        .args(["-i", &img_at])
        .arg(&good)
        .arg("::/grub/goodenv"))?;

    // The slots: the kernel, the initrd and what they are (slot B may be empty).
    for (i, (label, slot)) in [("SLOT_A", Some(&spec.a)), ("SLOT_B", spec.b.as_ref())]
        .into_iter()
        .enumerate()
    {
        let Some(slot) = slot else {
            mkfs_ext4(&tmp, offsets[2 + i], PARTS[2 + i].mib, label, None)?;
            continue;
        };
        let dir = work.path().join(label);
        std::fs::create_dir(&dir)?;
        std::fs::copy(&slot.kernel, dir.join("vmlinuz"))?;
        std::fs::copy(&slot.initrd, dir.join("initrd.img"))?;
        std::fs::write(
            dir.join("manifest.json"),
            serde_json::to_vec_pretty(&serde_json::json!({ "version": slot.version }))?,
        )?;
        mkfs_ext4(&tmp, offsets[2 + i], PARTS[2 + i].mib, label, Some(&dir))?;
    }
    mkfs_ext4(&tmp, offsets[4], PARTS[4].mib, "RANCHER_STATE", None)?;

    // GRUB for BIOS: core.img into the BIOS boot partition, boot.img's code into the MBR.
    let mut core_img = std::fs::read(&grub.core)?;
    let bios = offsets[0];
    if core_img.len() as u64 > PARTS[0].mib * MIB {
        bail!(
            "core.img ({} bytes) does not fit the BIOS boot partition",
            core_img.len()
        );
    }
    // diskboot.img's block list (the last 12 bytes of core.img's first sector): where the rest
    // of core.img starts. grub-mkimage already wrote its length.
    let second = bios / SECTOR + 1;
    core_img[0x200 - 12..0x200 - 4].copy_from_slice(&second.to_le_bytes());
    let mut boot = std::fs::read(&grub.boot)?;
    if boot.len() != 512 {
        bail!("{GRUB_PC}/boot.img is {} bytes, not 512", boot.len());
    }
    // GRUB_BOOT_MACHINE_KERNEL_SECTOR: the sector boot.img loads (core.img's first).
    boot[0x5c..0x64].copy_from_slice(&(bios / SECTOR).to_le_bytes());
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&tmp)?;
    let mut mbr = [0u8; 512];
    f.read_exact(&mut mbr)?;
    // The code area only: the protective MBR's disk signature, table and 0x55AA stay.
    mbr[..440].copy_from_slice(&boot[..440]);
    f.seek(SeekFrom::Start(0))?;
    f.write_all(&mbr)?;
    f.seek(SeekFrom::Start(bios))?;
    f.write_all(&core_img)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, out).with_context(|| format!("renaming to {}", out.display()))?;
    Ok(DiskImage {
        path: out.to_path_buf(),
        version: spec.a.version.clone(),
    })
}

/// GRUB's images, as `grub-mkimage` makes them (not yet placed on a disk): the BIOS stages
/// (`boot.img` for the MBR, `core.img` for the BIOS boot partition) and the UEFI application.
/// Both read `grub.cfg` and the boot state from the ESP, the disk's second partition. The OS
/// image carries the same files, so that `rancherctl install` places them the same way.
pub struct GrubImages {
    pub boot: PathBuf,
    pub core: PathBuf,
    pub efi: PathBuf,
}

impl GrubImages {
    /// Make them in `dir`.
    pub fn build(dir: &Path) -> anyhow::Result<GrubImages> {
        let efi = dir.join("BOOTX64.EFI");
        run(Command::new("grub-mkimage")
            .args(["-O", "x86_64-efi", "-d", GRUB_EFI, "-o"])
            .arg(&efi)
            .args(["-p", "(,gpt2)/grub"])
            .args(GRUB_MODULES))?;
        let core = dir.join("core.img");
        run(Command::new("grub-mkimage")
            .args(["-O", "i386-pc", "-d", GRUB_PC, "-o"])
            .arg(&core)
            .args(["-p", "(,gpt2)/grub", "biosdisk"])
            .args(GRUB_MODULES))?;
        let boot = dir.join("boot.img");
        std::fs::copy(Path::new(GRUB_PC).join("boot.img"), &boot)
            .with_context(|| format!("copying {GRUB_PC}/boot.img"))?;
        Ok(GrubImages { boot, core, efi })
    }
}

fn mkfs_ext4(
    img: &Path,
    offset: u64,
    mib: u64,
    label: &str,
    from: Option<&Path>,
) -> anyhow::Result<()> {
    let mut c = Command::new("mkfs.ext4");
    c.args(["-q", "-F", "-L", label, "-E"])
        .arg(format!("offset={offset}"));
    if let Some(d) = from {
        c.arg("-d").arg(d);
    }
    c.arg(img).arg(format!("{}k", mib * 1024));
    run(&mut c)
}

fn run(c: &mut Command) -> anyhow::Result<()> {
    let out = c.output().with_context(|| format!("running {c:?}"))?;
    if !out.status.success() {
        bail!(
            "{c:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

pub fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boot_state_is_one_grub_environment_block() {
        let b = grubenv(&[("ORDER", "A B"), ("A_OK", "1")]);
        assert_eq!(b.len(), 512);
        assert!(b.starts_with(b"# GRUB Environment Block\nORDER=A B\nA_OK=1\n#"));
    }
}
