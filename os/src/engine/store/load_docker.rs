//! Staging the images of a `docker save` archive by its `manifest.json`.
//!
//! Two forms exist: the classic one (up to Docker 24: `<id>.json` configs, `<id>/layer.tar`
//! uncompressed layers, identical layers linked to one another) and the one Docker 25+ writes,
//! where `Config` and `Layers` point into an OCI `blobs/sha256/` tree (that form also has an
//! `index.json`, which [`super::load_oci`] prefers; this path is the fallback).
//!
//! Digests: a member named by its digest (`<hex>.json`, `blobs/sha256/<hex>`) is checked against
//! that name; `<id>/layer.tar` (a v1 ID, not a digest) is stored under its computed digest and
//! checked, uncompressed, against the config's `diff_ids` when it is unpacked. Classic archives
//! have no manifest, so an OCI manifest is written for them (deterministically: loading the
//! same archive twice gives the same manifest digest).

use super::digest::Digest;
use super::error::Result;
use super::load::{LoadOptions, Staged};
use super::reference::normalize;
use super::source::Source;
use super::unpack::Compression;
use super::Store;
use serde::Deserialize;
use std::io::{BufRead, BufReader};
use std::path::Path;

/// One image in `manifest.json`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ManifestEntry {
    pub config: String,
    #[serde(default)]
    pub repo_tags: Option<Vec<String>>,
    pub layers: Vec<String>,
}

pub(super) fn stage(store: &Store, src: &Source, opts: &LoadOptions) -> Result<Vec<Staged>> {
    let entries: Vec<ManifestEntry> = src.read_json("manifest.json")?;
    let mut out = Vec::new();
    for e in &entries {
        let config = put_member(store, src, &e.config)?;
        let mut layers = Vec::new();
        for l in &e.layers {
            let (digest, size) = put_member(store, src, l)?;
            layers.push(serde_json::json!({
                "mediaType": layer_media_type(store, &digest)?,
                "digest": digest.to_string(),
                "size": size,
            }));
        }
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": config.0.to_string(),
                "size": config.1,
            },
            "layers": layers,
        });
        let bytes = serde_json::to_vec(&manifest).expect("a JSON value serializes");
        let digest = store
            .blobs
            .put_bytes(&bytes, &src.describe("manifest.json"))?;
        let mut names = Vec::new();
        for tag in e.repo_tags.iter().flatten() {
            names.push(normalize(tag)?);
        }
        if names.is_empty() {
            if let Some(n) = &opts.name {
                names.push(normalize(n)?);
            }
        }
        out.push(Staged {
            manifest: digest,
            names,
            repo_digests: Vec::new(),
        });
    }
    Ok(out)
}

/// The digest a member's name gives: `<hex>.json`, `blobs/sha256/<hex>`.
pub(super) fn digest_from_name(name: &str) -> Option<Digest> {
    let p = Path::new(name);
    let file = p.file_name()?.to_str()?;
    if let Some(hex) = file.strip_suffix(".json") {
        return Digest::from_hex(hex);
    }
    let in_blobs = p
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|d| d == "sha256");
    if in_blobs {
        Digest::from_hex(file)
    } else {
        None
    }
}

/// Copy a member into the blob store (checked against its name's digest, if it has one).
fn put_member(store: &Store, src: &Source, name: &str) -> Result<(Digest, u64)> {
    let what = src.describe(name);
    match digest_from_name(name) {
        Some(expected) => {
            let (reader, size) = src.open_member(name)?;
            if store.blobs.has(&expected) {
                return Ok((expected, size));
            }
            store
                .blobs
                .put_verified(reader, &expected, Some(size), &what)?;
            Ok((expected, size))
        }
        None => {
            let (reader, _) = src.open_member(name)?;
            store.blobs.put_computed(reader, &what)
        }
    }
}

/// The OCI media type of a stored layer blob, by its magic bytes.
fn layer_media_type(store: &Store, digest: &Digest) -> Result<&'static str> {
    let path = store.blobs.path(digest);
    let mut r = BufReader::new(store.blobs.open(digest)?);
    let magic = super::error::IoContext::ctx(r.fill_buf(), "reading", &path)?;
    Ok(match Compression::sniff(magic) {
        Ok(Compression::Gzip) => "application/vnd.oci.image.layer.v1.tar+gzip",
        Ok(Compression::Zstd) => "application/vnd.oci.image.layer.v1.tar+zstd",
        // Unsupported compressions are reported when the layer is unpacked.
        _ => "application/vnd.oci.image.layer.v1.tar",
    })
}
