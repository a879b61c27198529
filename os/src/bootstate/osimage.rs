//! An OS image (`rancheros/os:VERSION`, made by `harness build` as `dist/rancheros-os.tar`)
//! read for an upgrade: a tar holding an OCI layout (`index.json`, `blobs/sha256/…`), one
//! manifest, one layer with `vmlinuz`, `initrd.img` and `manifest.json` — a boot slot's
//! content — and, for an install, `boot/` with GRUB's pieces (`boot.img`, `core.img`,
//! `bootx64.efi`, `grub.cfg`). Everything in it is an attacker's until proven: each blob read must hash to its
//! name and to the digest that points at it, sizes are capped before anything is kept, the
//! layer's three files must be plain files, and the version must be a short plain word.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// The most a whole image tar may hold, and one file in the layer.
const MAX_TOTAL: u64 = 512 << 20;
const MAX_FILE: u64 = 256 << 20;
/// JSON documents (index, manifest, config, the slot's manifest).
const MAX_JSON: u64 = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {why}")]
    Bad { path: String, why: String },
}

/// What a slot receives.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotFiles {
    pub version: String,
    pub kernel: Vec<u8>,
    pub initrd: Vec<u8>,
    /// `manifest.json` as it was in the image.
    pub manifest: Vec<u8>,
    /// The bootloader pieces, when the image has them (an install needs them; an upgrade
    /// leaves the installed bootloader alone).
    pub boot: Option<BootFiles>,
}

/// GRUB as an install places it: `boot.img` (its code goes in the MBR), `core.img` (in the
/// BIOS boot partition), `bootx64.efi` (the ESP's removable-media path) and `grub.cfg`.
#[derive(Debug, Clone, PartialEq)]
pub struct BootFiles {
    pub boot_img: Vec<u8>,
    pub core_img: Vec<u8>,
    pub efi: Vec<u8>,
    pub grub_cfg: Vec<u8>,
}

/// The layer's files this reader takes, by their names in it.
const WANTED: [&str; 7] = [
    "vmlinuz",
    "initrd.img",
    "manifest.json",
    "boot/boot.img",
    "boot/core.img",
    "boot/bootx64.efi",
    "boot/grub.cfg",
];

/// The largest `core.img` the BIOS boot partition (1 MiB, its first sector aside) holds.
pub const MAX_CORE_IMG: usize = (1 << 20) - 512;

impl SlotFiles {
    /// The slot's files by name, in the order they are written (the manifest last: a slot
    /// with a manifest is a whole one).
    pub fn files(&self) -> [(&'static str, &[u8]); 3] {
        [
            ("vmlinuz", &self.kernel),
            ("initrd.img", &self.initrd),
            ("manifest.json", &self.manifest),
        ]
    }
}

/// Read the OS image tar at `path`.
pub fn read(path: &Path) -> Result<SlotFiles, ImageError> {
    let p = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|source| ImageError::Io {
        path: p.clone(),
        source,
    })?;
    read_from(f, &p)
}

fn bad(path: &str, why: impl Into<String>) -> ImageError {
    ImageError::Bad {
        path: path.to_string(),
        why: why.into(),
    }
}

/// The tar's entries that matter, by name (blobs and `index.json`), sizes capped.
fn entries(r: impl Read, p: &str) -> Result<HashMap<String, Vec<u8>>, ImageError> {
    let mut out = HashMap::new();
    let mut total = 0u64;
    let mut tar = tar::Archive::new(r);
    let io = |source| ImageError::Io {
        path: p.to_string(),
        source,
    };
    for e in tar.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        if !e.header().entry_type().is_file() {
            continue;
        }
        let name = e
            .path()
            .map_err(io)?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        let keep = name == "index.json"
            || name
                .strip_prefix("blobs/sha256/")
                .is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !keep {
            continue;
        }
        let size = e.header().size().map_err(io)?;
        total = total.saturating_add(size);
        if size > MAX_FILE || total > MAX_TOTAL {
            return Err(bad(p, format!("{name}: too big ({size} bytes)")));
        }
        let mut data = Vec::with_capacity(size as usize);
        e.by_ref()
            .take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(io)?;
        out.insert(name, data);
    }
    Ok(out)
}

/// The blob `digest` (`sha256:…`), checked against its digest.
fn blob<'a>(
    e: &'a HashMap<String, Vec<u8>>,
    digest: &str,
    p: &str,
) -> Result<&'a [u8], ImageError> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| bad(p, format!("digest {digest:?} is not sha256:<64 hex>")))?;
    let data = e
        .get(&format!("blobs/sha256/{hex}"))
        .ok_or_else(|| bad(p, format!("blob {digest} is missing")))?;
    let got = hex::encode(Sha256::digest(data));
    if !got.eq_ignore_ascii_case(hex) {
        return Err(bad(p, format!("blob {digest} hashes to sha256:{got}")));
    }
    Ok(data)
}

fn json(data: &[u8], what: &str, p: &str) -> Result<serde_json::Value, ImageError> {
    if data.len() as u64 > MAX_JSON {
        return Err(bad(p, format!("{what}: too big")));
    }
    serde_json::from_slice(data).map_err(|e| bad(p, format!("{what}: {e}")))
}

/// The one manifest's one layer, its three files out of it.
pub fn read_from(r: impl Read, p: &str) -> Result<SlotFiles, ImageError> {
    let e = entries(r, p)?;
    let index = json(
        e.get("index.json")
            .ok_or_else(|| bad(p, "no index.json: not an OCI image layout"))?,
        "index.json",
        p,
    )?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| bad(p, "index.json: no manifests"))?;
    let [m] = manifests.as_slice() else {
        return Err(bad(
            p,
            format!("index.json: {} manifests, one wanted", manifests.len()),
        ));
    };
    let digest = m["digest"].as_str().unwrap_or_default();
    let manifest = json(blob(&e, digest, p)?, "manifest", p)?;
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad(p, "manifest: no layers"))?;
    let [layer] = layers.as_slice() else {
        return Err(bad(
            p,
            format!("manifest: {} layers, one wanted", layers.len()),
        ));
    };
    let media = layer["mediaType"].as_str().unwrap_or_default();
    let data = blob(&e, layer["digest"].as_str().unwrap_or_default(), p)?;
    let files = if media.ends_with("+gzip") || media.ends_with(".gzip") {
        layer_files(flate2::read::GzDecoder::new(data), p)?
    } else if media.ends_with(".tar") || media.ends_with("tar") {
        layer_files(data, p)?
    } else {
        return Err(bad(
            p,
            format!("layer media type {media:?}: a tar or a gzipped tar wanted"),
        ));
    };
    Ok(files)
}

/// `vmlinuz`, `initrd.img`, `manifest.json` from the layer (plain files at its root).
fn layer_files(r: impl Read, p: &str) -> Result<SlotFiles, ImageError> {
    let io = |source| ImageError::Io {
        path: p.to_string(),
        source,
    };
    let mut found: HashMap<&'static str, Vec<u8>> = HashMap::new();
    let mut tar = tar::Archive::new(r);
    for e in tar.entries().map_err(io)? {
        let mut e = e.map_err(io)?;
        let name = e
            .path()
            .map_err(io)?
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_start_matches('/')
            .to_string();
        let Some(key) = WANTED.into_iter().find(|k| *k == name) else {
            continue;
        };
        if !e.header().entry_type().is_file() {
            return Err(bad(p, format!("layer: {name} is not a plain file")));
        }
        let size = e.header().size().map_err(io)?;
        if size > MAX_FILE {
            return Err(bad(p, format!("layer: {name} is too big ({size} bytes)")));
        }
        let mut data = Vec::with_capacity(size as usize);
        e.by_ref()
            .take(MAX_FILE + 1)
            .read_to_end(&mut data)
            .map_err(io)?;
        found.insert(key, data);
    }
    let mut take = |k: &str| {
        found
            .remove(k)
            .ok_or_else(|| bad(p, format!("layer: no {k}: not an OS image")))
    };
    let (kernel, initrd, manifest) = (
        take("vmlinuz")?,
        take("initrd.img")?,
        take("manifest.json")?,
    );
    let m = json(&manifest, "manifest.json", p)?;
    let version = m["version"]
        .as_str()
        .filter(|v| valid_version(v))
        .ok_or_else(|| bad(p, "manifest.json: no version of 1 to 64 of [A-Za-z0-9._-+]"))?
        .to_string();
    if kernel.len() < 512 || &kernel[0x202..0x206] != b"HdrS" {
        return Err(bad(p, "vmlinuz: not a Linux x86 kernel (no HdrS header)"));
    }
    if initrd.is_empty() {
        return Err(bad(p, "initrd.img: empty"));
    }
    let boot = boot_files(&mut found, p)?;
    Ok(SlotFiles {
        version,
        kernel,
        initrd,
        manifest,
        boot,
    })
}

/// `boot/`'s four files, all or none, each the kind of file it says it is.
fn boot_files(
    found: &mut HashMap<&'static str, Vec<u8>>,
    p: &str,
) -> Result<Option<BootFiles>, ImageError> {
    let names = &WANTED[3..];
    let have: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| found.contains_key(n))
        .collect();
    if have.is_empty() {
        return Ok(None);
    }
    if have.len() != names.len() {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !have.contains(n))
            .collect();
        return Err(bad(
            p,
            format!(
                "layer: has {} but not {}",
                have.join(", "),
                missing.join(", ")
            ),
        ));
    }
    let mut take = |k: &str| found.remove(k).unwrap_or_default();
    let b = BootFiles {
        boot_img: take("boot/boot.img"),
        core_img: take("boot/core.img"),
        efi: take("boot/bootx64.efi"),
        grub_cfg: take("boot/grub.cfg"),
    };
    if b.boot_img.len() != 512 || b.boot_img[510..] != [0x55, 0xaa] {
        return Err(bad(p, "boot/boot.img: not a 512-byte boot sector"));
    }
    if b.core_img.len() < 1024 || b.core_img.len() > MAX_CORE_IMG {
        return Err(bad(
            p,
            format!(
                "boot/core.img: {} bytes, 1024 to {MAX_CORE_IMG} wanted",
                b.core_img.len()
            ),
        ));
    }
    if !b.efi.starts_with(b"MZ") {
        return Err(bad(p, "boot/bootx64.efi: not a PE image (no MZ)"));
    }
    if b.grub_cfg.len() > 64 << 10 || std::str::from_utf8(&b.grub_cfg).is_err() {
        return Err(bad(p, "boot/grub.cfg: not UTF-8 text of at most 64 KiB"));
    }
    Ok(Some(b))
}

pub fn valid_version(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 64
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn sha(d: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(d)))
    }

    /// A kernel-looking file: `HdrS` at 0x202.
    pub(crate) fn kernel() -> Vec<u8> {
        let mut k = vec![0u8; 1024];
        k[0x202..0x206].copy_from_slice(b"HdrS");
        k
    }

    /// An image tar with this layer content; `tamper` changes the layer blob after hashing.
    pub(crate) fn image(layer_files: &[(&str, &[u8])], tamper: bool) -> Vec<u8> {
        let layer = tar_of(layer_files);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(&layer), "size": layer.len() }],
        }))
        .unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "manifests": [{ "digest": sha(&manifest) }],
        }))
        .unwrap();
        let mut stored = layer.clone();
        if tamper {
            stored[600] ^= 1;
        }
        tar_of(&[
            ("oci-layout", b"{}"),
            ("index.json", &index),
            (&format!("blobs/sha256/{}", &sha(&manifest)[7..]), &manifest),
            (&format!("blobs/sha256/{}", &sha(&layer)[7..]), &stored),
        ])
    }

    #[test]
    fn an_os_image_gives_its_slot_files_and_a_lie_is_named() {
        let k = kernel();
        let good = image(
            &[
                ("vmlinuz", &k),
                ("initrd.img", b"initrd"),
                ("manifest.json", br#"{"version":"v2"}"#),
            ],
            false,
        );
        let f = read_from(&good[..], "os.tar").unwrap();
        assert_eq!(
            (f.version.as_str(), f.initrd.as_slice()),
            ("v2", &b"initrd"[..])
        );
        let e = read_from(&image(&[("vmlinuz", &k)], true)[..], "os.tar").unwrap_err();
        assert!(e.to_string().contains("hashes to"), "{e}");
        for (files, says) in [
            (
                vec![("vmlinuz", &k[..]), ("initrd.img", b"i")],
                "no manifest.json",
            ),
            (
                vec![
                    ("vmlinuz", &b"not a kernel"[..]),
                    ("initrd.img", b"i"),
                    ("manifest.json", br#"{"version":"v2"}"#),
                ],
                "HdrS",
            ),
            (
                vec![
                    ("vmlinuz", &k[..]),
                    ("initrd.img", b"i"),
                    ("manifest.json", br#"{"version":"../x"}"#),
                ],
                "no version",
            ),
        ] {
            let e = read_from(&image(&files, false)[..], "os.tar").unwrap_err();
            assert!(e.to_string().contains(says), "{says}: {e}");
        }
        assert_eq!(f.boot, None);
        let mut sector = vec![0u8; 512];
        sector[510..].copy_from_slice(&[0x55, 0xaa]);
        let core = vec![1u8; 2048];
        let with_boot = image(
            &[
                ("vmlinuz", &k),
                ("initrd.img", b"initrd"),
                ("manifest.json", br#"{"version":"v2"}"#),
                ("boot/boot.img", &sector),
                ("boot/core.img", &core),
                ("boot/bootx64.efi", b"MZ..."),
                ("boot/grub.cfg", b"set timeout=0\n"),
            ],
            false,
        );
        let f = read_from(&with_boot[..], "os.tar").unwrap();
        assert_eq!(f.boot.unwrap().core_img, core);
        let half = image(
            &[
                ("vmlinuz", &k),
                ("initrd.img", b"initrd"),
                ("manifest.json", br#"{"version":"v2"}"#),
                ("boot/boot.img", &sector),
            ],
            false,
        );
        let e = read_from(&half[..], "os.tar").unwrap_err();
        assert!(e.to_string().contains("not boot/core.img"), "{e}");
        let e = read_from(&tar_of(&[("x", b"y")])[..], "os.tar").unwrap_err();
        assert!(e.to_string().contains("no index.json"), "{e}");
    }
}
