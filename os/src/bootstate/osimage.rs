//! An OS image (`rancheros/os:VERSION`, made by `harness build` as `dist/rancheros-os.tar`)
//! read for an upgrade: a tar holding an OCI layout (`index.json`, `blobs/sha256/…`), one
//! manifest, one layer with `vmlinuz`, `initrd.img` and `manifest.json` — a boot slot's
//! content — and, for an install, `boot/` with GRUB's pieces (`boot.img`, `core.img`,
//! `bootx64.efi`, `grub.cfg`). Everything in it is an attacker's until proven: each blob read
//! (manifest, config, layer) must hash to its name and to the digest that points at it and be
//! the size its descriptor says, each media type must be OCI's or Docker's for its part, the
//! layer as unpacked must hash to the config's one `rootfs.diff_ids` (hashed while it is read,
//! so the files taken are the bytes checked), sizes are capped before anything is kept, the
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

/// The media types each part may have: OCI's, and Docker's schema 2 (what a registry or a
/// containerd-backed `docker save` keeps of an image pushed as Docker's).
const MANIFEST_TYPES: [&str; 2] = [
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];
const CONFIG_TYPES: [&str; 2] = [
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];
/// Layer media types, and whether each is gzipped.
const LAYER_TYPES: [(&str, bool); 4] = [
    ("application/vnd.oci.image.layer.v1.tar", false),
    ("application/vnd.oci.image.layer.v1.tar+gzip", true),
    ("application/vnd.docker.image.rootfs.diff.tar", false),
    ("application/vnd.docker.image.rootfs.diff.tar.gzip", true),
];

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

/// The blob the descriptor `desc` (`{digest, size}`) of the `what` (manifest, config, layer)
/// points at, checked against its digest and its size.
fn blob<'a>(
    e: &'a HashMap<String, Vec<u8>>,
    desc: &serde_json::Value,
    what: &str,
    p: &str,
) -> Result<&'a [u8], ImageError> {
    let digest = desc["digest"].as_str().unwrap_or_default();
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
        .ok_or_else(|| {
            bad(
                p,
                format!("{what} digest {digest:?} is not sha256:<64 hex>"),
            )
        })?;
    let size = desc["size"]
        .as_u64()
        .ok_or_else(|| bad(p, format!("{what} {digest}: its descriptor has no size")))?;
    let data = e
        .get(&format!("blobs/sha256/{hex}"))
        .ok_or_else(|| bad(p, format!("{what} blob {digest} is missing")))?;
    let got = hex::encode(Sha256::digest(data));
    if !got.eq_ignore_ascii_case(hex) {
        return Err(bad(
            p,
            format!("{what} blob {digest} hashes to sha256:{got}"),
        ));
    }
    if data.len() as u64 != size {
        return Err(bad(
            p,
            format!(
                "{what} blob {digest} is {} bytes, its descriptor says {size}",
                data.len()
            ),
        ));
    }
    Ok(data)
}

/// The descriptor's media type, one of `allowed`.
fn media_type<'a>(
    desc: &'a serde_json::Value,
    what: &str,
    allowed: &[&str],
    p: &str,
) -> Result<&'a str, ImageError> {
    let media = desc["mediaType"].as_str().unwrap_or_default();
    if !allowed.contains(&media) {
        return Err(bad(
            p,
            format!(
                "{what} media type {media:?}: {} wanted",
                allowed.join(" or ")
            ),
        ));
    }
    Ok(media)
}

fn json(data: &[u8], what: &str, p: &str) -> Result<serde_json::Value, ImageError> {
    if data.len() as u64 > MAX_JSON {
        return Err(bad(p, format!("{what}: too big")));
    }
    serde_json::from_slice(data).map_err(|e| bad(p, format!("{what}: {e}")))
}

/// The one manifest's config and one layer, its three files out of it.
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
    let manifest_type = media_type(m, "manifest", &MANIFEST_TYPES, p)?;
    let manifest = json(blob(&e, m, "manifest", p)?, "manifest", p)?;
    // Its own media type, when it says one, is the one it was found by.
    if let Some(own) = manifest["mediaType"].as_str() {
        if own != manifest_type {
            return Err(bad(
                p,
                format!("manifest says it is {own:?}, index.json says {manifest_type:?}"),
            ));
        }
    }
    let config_desc = &manifest["config"];
    media_type(config_desc, "config", &CONFIG_TYPES, p)?;
    let config_digest = config_desc["digest"].as_str().unwrap_or_default();
    let config = json(blob(&e, config_desc, "config", p)?, "config", p)?;
    let layers = manifest["layers"]
        .as_array()
        .ok_or_else(|| bad(p, "manifest: no layers"))?;
    let [layer] = layers.as_slice() else {
        return Err(bad(
            p,
            format!("manifest: {} layers, one wanted", layers.len()),
        ));
    };
    if config["rootfs"]["type"] != "layers" {
        return Err(bad(
            p,
            format!("config {config_digest}: rootfs.type is not \"layers\""),
        ));
    }
    let diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .ok_or_else(|| bad(p, format!("config {config_digest}: no rootfs.diff_ids")))?;
    let [diff_id] = diff_ids.as_slice() else {
        return Err(bad(
            p,
            format!(
                "config {config_digest}: {} diff_ids for {} layer",
                diff_ids.len(),
                layers.len()
            ),
        ));
    };
    let diff_id = diff_id.as_str().unwrap_or_default();
    let media = layer["mediaType"].as_str().unwrap_or_default();
    let gzip = LAYER_TYPES
        .iter()
        .find(|(t, _)| *t == media)
        .map(|(_, gz)| *gz)
        .ok_or_else(|| {
            let types: Vec<&str> = LAYER_TYPES.iter().map(|(t, _)| *t).collect();
            bad(
                p,
                format!("layer media type {media:?}: {} wanted", types.join(" or ")),
            )
        })?;
    let layer_digest = layer["digest"].as_str().unwrap_or_default();
    let data = blob(&e, layer, "layer", p)?;
    let (found, unpacked) = if gzip {
        layer_entries(flate2::read::MultiGzDecoder::new(data), p)?
    } else {
        layer_entries(data, p)?
    };
    if !unpacked.eq_ignore_ascii_case(diff_id) {
        return Err(bad(
            p,
            format!(
                "layer {layer_digest} unpacks to {unpacked}, but config {config_digest} \
                 says its diff_id is {diff_id:?}"
            ),
        ));
    }
    slot_files(found, p)
}

/// What passes through it is hashed, and more than `left` bytes is an error: the layer as
/// unpacked, its diff_id computed on the one read that takes its files.
struct Hashing<R> {
    inner: R,
    hash: Sha256,
    left: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!("layer: over {MAX_TOTAL} bytes unpacked"))
        })?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The layer's wanted files (see [`WANTED`]) and the sha256 (`sha256:…`) of the whole tar
/// stream `r`, its end blocks and padding included.
fn layer_entries(
    r: impl Read,
    p: &str,
) -> Result<(HashMap<&'static str, Vec<u8>>, String), ImageError> {
    let io = |source| ImageError::Io {
        path: p.to_string(),
        source,
    };
    let mut r = Hashing {
        inner: r,
        hash: Sha256::new(),
        left: MAX_TOTAL,
    };
    let mut found: HashMap<&'static str, Vec<u8>> = HashMap::new();
    let mut tar = tar::Archive::new(&mut r);
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
    // The tar reader stops at the first end block: the rest is in the diff_id too.
    std::io::copy(&mut r, &mut std::io::sink()).map_err(io)?;
    Ok((found, format!("sha256:{}", hex::encode(r.hash.finalize()))))
}

/// `vmlinuz`, `initrd.img`, `manifest.json` (and `boot/`) out of the layer's files, each
/// checked for what it says it is.
fn slot_files(mut found: HashMap<&'static str, Vec<u8>>, p: &str) -> Result<SlotFiles, ImageError> {
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

    /// How a test image is made: as `harness build` makes it, or with one thing wrong.
    #[derive(Debug, Clone, Copy, PartialEq)]
    pub(crate) enum Make {
        Good,
        /// The layer gzipped (`tar+gzip`): its diff_id is still the plain tar's.
        Gzip,
        /// A byte of the layer blob changed after it was hashed.
        TamperLayer,
        /// A byte of the config blob changed after it was hashed.
        TamperConfig,
        /// The config's diff_id names other bytes.
        WrongDiffId,
        /// Two diff_ids for the one layer.
        TwoDiffIds,
        /// The config blob left out of the tar.
        NoConfig,
        /// The config's descriptor gives the wrong size.
        ConfigSize,
        /// The config's media type is not a config's.
        ConfigMediaType,
    }

    /// An image tar with this layer content; `tamper` changes the layer blob after hashing.
    pub(crate) fn image(layer_files: &[(&str, &[u8])], tamper: bool) -> Vec<u8> {
        let make = if tamper {
            Make::TamperLayer
        } else {
            Make::Good
        };
        image_made(layer_files, make)
    }

    /// An image tar of the shape `harness/src/osimage.rs` writes (through
    /// `harness::images::build`): an OCI layout whose index names one manifest, whose config
    /// has `rootfs.diff_ids`, and Docker's `manifest.json` beside it; made as `make` says.
    pub(crate) fn image_made(layer_files: &[(&str, &[u8])], make: Make) -> Vec<u8> {
        let plain = tar_of(layer_files);
        let (layer, layer_type) = if make == Make::Gzip {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            std::io::Write::write_all(&mut gz, &plain).unwrap();
            (
                gz.finish().unwrap(),
                "application/vnd.oci.image.layer.v1.tar+gzip",
            )
        } else {
            (plain.clone(), "application/vnd.oci.image.layer.v1.tar")
        };
        let diff_ids = match make {
            Make::WrongDiffId => vec![sha(b"other bytes")],
            Make::TwoDiffIds => vec![sha(&plain), sha(&plain)],
            _ => vec![sha(&plain)],
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64",
            "os": "linux",
            "config": { "Env": ["RANCHEROS_VERSION=v2"] },
            "rootfs": { "type": "layers", "diff_ids": diff_ids },
        }))
        .unwrap();
        let config_type = if make == Make::ConfigMediaType {
            "application/vnd.oci.image.layer.v1.tar"
        } else {
            "application/vnd.oci.image.config.v1+json"
        };
        let config_size = config.len() + usize::from(make == Make::ConfigSize);
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": config_type, "digest": sha(&config), "size": config_size },
            "layers": [{ "mediaType": layer_type, "digest": sha(&layer), "size": layer.len() }],
        }))
        .unwrap();
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": sha(&manifest),
                "size": manifest.len(),
                "annotations": { "org.opencontainers.image.ref.name": "rancheros/os:v2" },
            }],
        }))
        .unwrap();
        let path = |d: &[u8]| format!("blobs/sha256/{}", &sha(d)[7..]);
        let docker = serde_json::to_vec(&serde_json::json!([{
            "Config": path(&config),
            "RepoTags": ["rancheros/os:v2"],
            "Layers": [path(&layer)],
        }]))
        .unwrap();
        let (mut stored_layer, mut stored_config) = (layer.clone(), config.clone());
        if make == Make::TamperLayer {
            stored_layer[600] ^= 1;
        }
        if make == Make::TamperConfig {
            stored_config[10] ^= 1;
        }
        let mut files: Vec<(String, &[u8])> = vec![
            ("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#),
            ("index.json".into(), &index),
            ("manifest.json".into(), &docker),
            (path(&manifest), &manifest),
            (path(&layer), &stored_layer),
        ];
        if make != Make::NoConfig {
            files.push((path(&config), &stored_config));
        }
        let files: Vec<(&str, &[u8])> = files.iter().map(|(n, d)| (n.as_str(), *d)).collect();
        tar_of(&files)
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

    #[test]
    fn every_digest_is_checked_the_config_and_the_unpacked_layer_too() {
        let k = kernel();
        let files: [(&str, &[u8]); 3] = [
            ("vmlinuz", &k),
            ("initrd.img", b"initrd"),
            ("manifest.json", br#"{"version":"v2"}"#),
        ];
        for make in [Make::Good, Make::Gzip] {
            let f = read_from(&image_made(&files, make)[..], "os.tar").unwrap();
            assert_eq!(f.version, "v2", "{make:?}");
        }
        let plain = sha(&tar_of(&files));
        for (make, says) in [
            (Make::TamperConfig, "config blob sha256:".to_string()),
            (Make::TamperConfig, "hashes to sha256:".to_string()),
            (
                Make::WrongDiffId,
                format!("unpacks to {plain}, but config sha256:"),
            ),
            (Make::WrongDiffId, format!("{:?}", sha(b"other bytes"))),
            (Make::TwoDiffIds, "2 diff_ids for 1 layer".to_string()),
            (Make::NoConfig, "config blob sha256:".to_string()),
            (Make::NoConfig, "is missing".to_string()),
            (Make::ConfigSize, "its descriptor says".to_string()),
            (
                Make::ConfigMediaType,
                "config media type \"application/vnd.oci.image.layer.v1.tar\"".to_string(),
            ),
        ] {
            let e = read_from(&image_made(&files, make)[..], "os.tar").unwrap_err();
            assert!(e.to_string().contains(&says), "{make:?}: {says}: {e}");
        }
    }

    #[test]
    fn media_types_are_an_oci_or_docker_manifest_config_and_layer() {
        let k = kernel();
        let good = image_made(
            &[
                ("vmlinuz", &k),
                ("initrd.img", b"initrd"),
                ("manifest.json", br#"{"version":"v2"}"#),
            ],
            Make::Good,
        );
        // The index's one descriptor, re-typed: the manifest blob is unchanged.
        let mut e = entries(&good[..], "os.tar").unwrap();
        let index: serde_json::Value = serde_json::from_slice(&e["index.json"]).unwrap();
        for (bad_type, says) in [
            (
                "application/vnd.oci.image.index.v1+json",
                "manifest media type \"application/vnd.oci.image.index.v1+json\"",
            ),
            (
                "application/vnd.docker.distribution.manifest.v2+json",
                "manifest says it is",
            ),
        ] {
            let mut i = index.clone();
            i["manifests"][0]["mediaType"] = bad_type.into();
            e.insert("index.json".into(), serde_json::to_vec(&i).unwrap());
            let names: Vec<String> = e.keys().cloned().collect();
            let tar = tar_of(
                &names
                    .iter()
                    .map(|n| (n.as_str(), &e[n][..]))
                    .collect::<Vec<_>>(),
            );
            let err = read_from(&tar[..], "os.tar").unwrap_err();
            assert!(err.to_string().contains(says), "{says}: {err}");
        }
    }
}
