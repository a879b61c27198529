//! Staging the images of an OCI image layout (`oci-layout`, `index.json`, `blobs/<alg>/<hex>`),
//! as a directory or a tar; also what `docker save` writes since Docker 25 (an OCI layout with a
//! `manifest.json` beside it).
//!
//! `index.json` may point at manifests directly or at nested image indexes (multi-platform
//! images): only the manifests for this machine's platform (`linux/<GOARCH>`, or no platform
//! given) are taken; attestations and other artifacts are skipped. Names come from the
//! `io.containerd.image.name` annotation, else `org.opencontainers.image.ref.name` (a bare tag
//! there takes the repository of [`LoadOptions::name`]), else `manifest.json`'s `RepoTags` when
//! present, else [`LoadOptions::name`].

use super::digest::Digest;
use super::error::{Result, StoreError};
use super::load::{LoadOptions, Staged};
use super::reference::{is_bare_tag, normalize, repository};
use super::source::Source;
use super::Store;
use oci_spec::image::{Descriptor, ImageIndex, MediaType};
use std::collections::HashMap;
use std::io::Read;

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

/// Nested indexes deeper than this are refused (a loop of indexes cannot be built from digests,
/// but a deep chain can still be fabricated).
const MAX_DEPTH: usize = 4;

pub(super) fn stage(store: &Store, src: &Source, opts: &LoadOptions) -> Result<Vec<Staged>> {
    let layout: serde_json::Value = src.read_json("oci-layout")?;
    let version = layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if !version.starts_with("1.") {
        return Err(StoreError::BadArchive {
            source_path: src.describe("oci-layout"),
            reason: format!("unsupported imageLayoutVersion {version:?} (1.x is)"),
        });
    }
    let index: ImageIndex = src.read_json("index.json")?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let names = names_from_annotations(desc, opts)?;
        collect(store, src, desc, &names, 0, &mut out)?;
    }
    if out.is_empty() {
        return Err(StoreError::BadArchive {
            source_path: src.describe("index.json"),
            reason: format!(
                "no image manifest for {}/{}",
                oci_spec::image::Os::default(),
                oci_spec::image::Arch::default()
            ),
        });
    }
    if out.iter().any(|s| s.names.is_empty()) && src.exists("manifest.json") {
        names_from_docker_manifest(store, src, &mut out)?;
    }
    if let Some(name) = &opts.name {
        let name = normalize(name)?;
        for s in out.iter_mut().filter(|s| s.names.is_empty()) {
            s.names.push(name.clone());
        }
    }
    Ok(out)
}

/// Follow `desc` (a manifest, or an index of them) and stage the image manifests it leads to.
fn collect(
    store: &Store,
    src: &Source,
    desc: &Descriptor,
    names: &[String],
    depth: usize,
    out: &mut Vec<Staged>,
) -> Result<()> {
    if let Some(p) = desc.platform() {
        let wanted_os = oci_spec::image::Os::default();
        let wanted_arch = oci_spec::image::Arch::default();
        if *p.os() != wanted_os || *p.architecture() != wanted_arch {
            tracing::debug!(manifest = %desc.digest(), os = %p.os(), arch = %p.architecture(),
                "skipping a manifest for another platform");
            return Ok(());
        }
    }
    let media_type = desc.media_type();
    let is_index = *media_type == MediaType::ImageIndex
        || *media_type == MediaType::Other(DOCKER_MANIFEST_LIST.into());
    let is_manifest = *media_type == MediaType::ImageManifest
        || *media_type == MediaType::Other(DOCKER_MANIFEST.into());
    if is_index {
        let blob_name = blob_name(desc, src)?;
        if depth >= MAX_DEPTH {
            return Err(StoreError::BadArchive {
                source_path: src.describe(&blob_name),
                reason: "image indexes nested too deep".into(),
            });
        }
        let nested: ImageIndex = read_verified_json(src, desc, &blob_name)?;
        for m in nested.manifests() {
            collect(store, src, m, names, depth + 1, out)?;
        }
    } else if is_manifest {
        let digest = put_blob(store, src, desc)?;
        let manifest = store.read_manifest(&digest)?;
        put_blob(store, src, manifest.config())?;
        for layer in manifest.layers() {
            put_blob(store, src, layer)?;
        }
        out.push(Staged {
            manifest: digest,
            names: names.to_vec(),
            repo_digests: Vec::new(),
        });
    } else {
        tracing::debug!(digest = %desc.digest(), media_type = %media_type,
            "skipping a descriptor that is not an image");
    }
    Ok(())
}

/// `blobs/sha256/<hex>` for a descriptor, with the digest checked to be a sha256 one.
fn blob_name(desc: &Descriptor, src: &Source) -> Result<String> {
    let digest = Digest::parse(desc.digest().as_ref(), &src.describe("index.json"))?;
    Ok(format!("blobs/sha256/{}", digest.hex()))
}

/// Copy the blob `desc` names from the layout into the store, verified; return its digest.
fn put_blob(store: &Store, src: &Source, desc: &Descriptor) -> Result<Digest> {
    let name = blob_name(desc, src)?;
    let digest = Digest::parse(desc.digest().as_ref(), &src.describe(&name))?;
    if !store.blobs.has(&digest) {
        let (reader, _) = src.open_member(&name)?;
        store
            .blobs
            .put_verified(reader, &digest, Some(desc.size()), &src.describe(&name))?;
    }
    Ok(digest)
}

/// Read a JSON blob of the layout that the store does not keep (a nested index), verified.
fn read_verified_json<T: serde::de::DeserializeOwned>(
    src: &Source,
    desc: &Descriptor,
    name: &str,
) -> Result<T> {
    let what = src.describe(name);
    let expected = Digest::parse(desc.digest().as_ref(), &what)?;
    let (reader, size) = src.open_member(name)?;
    if size != desc.size() {
        return Err(StoreError::SizeMismatch {
            blob: what,
            expected: desc.size(),
            actual: size,
        });
    }
    let mut bytes = Vec::new();
    reader
        .take(super::blobs::MAX_JSON)
        .read_to_end(&mut bytes)
        .map_err(|source| StoreError::Io {
            action: "reading",
            path: what.clone().into(),
            source,
        })?;
    let actual = Digest::of(&bytes);
    if actual != expected {
        return Err(StoreError::DigestMismatch {
            blob: what,
            expected,
            actual,
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| StoreError::Json {
        source_path: what,
        source,
    })
}

fn names_from_annotations(desc: &Descriptor, opts: &LoadOptions) -> Result<Vec<String>> {
    let empty = HashMap::new();
    let annotations = desc.annotations().as_ref().unwrap_or(&empty);
    if let Some(full) = annotations.get(ANNOTATION_CONTAINERD_NAME) {
        return Ok(vec![normalize(full)?]);
    }
    let Some(ref_name) = annotations.get(ANNOTATION_REF_NAME) else {
        return Ok(Vec::new());
    };
    if !is_bare_tag(ref_name) {
        return Ok(vec![normalize(ref_name)?]);
    }
    match &opts.name {
        Some(name) => {
            let base = normalize(name)?;
            Ok(vec![normalize(&format!(
                "{}:{ref_name}",
                repository(&base)
            ))?])
        }
        None => {
            tracing::warn!(tag = %ref_name, manifest = %desc.digest(),
                "the layout names this image by tag only and no repository name was given; loading it unnamed");
            Ok(Vec::new())
        }
    }
}

/// Docker 25+ `docker save` puts the names in `manifest.json` (`RepoTags`), keyed by config.
fn names_from_docker_manifest(store: &Store, src: &Source, out: &mut [Staged]) -> Result<()> {
    let entries: Vec<super::load_docker::ManifestEntry> = src.read_json("manifest.json")?;
    for s in out.iter_mut().filter(|s| s.names.is_empty()) {
        let manifest = store.read_manifest(&s.manifest)?;
        let config = Digest::parse(manifest.config().digest().as_ref(), "config")?;
        for e in &entries {
            if super::load_docker::digest_from_name(&e.config).as_ref() == Some(&config) {
                for tag in e.repo_tags.iter().flatten() {
                    let n = normalize(tag)?;
                    if !s.names.contains(&n) {
                        s.names.push(n);
                    }
                }
            }
        }
    }
    Ok(())
}
