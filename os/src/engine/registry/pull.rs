//! `docker pull`: a manifest (through a manifest list to linux/amd64), its config and layers,
//! each checked against its digest and size, into the store; then the store's own
//! prepare-and-commit (layers unpacked, diff_ids checked, index written last).

use super::error::RegistryError;
use super::progress::{Progress, ProgressTx, STEP};
use super::target::Target;
use super::Registries;
use crate::engine::store::{Digest, Image, Store};
use futures_util::StreamExt;
use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE,
};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde_json::Value;

const MANIFESTS: &[&str] = &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE];
const ANY: &[&str] = &[
    OCI_IMAGE_MEDIA_TYPE,
    IMAGE_MANIFEST_MEDIA_TYPE,
    OCI_IMAGE_INDEX_MEDIA_TYPE,
    IMAGE_MANIFEST_LIST_MEDIA_TYPE,
];

/// A manifest or index larger than this is refused.
const MAX_MANIFEST: usize = 4 << 20;

/// What a pull did.
#[derive(Debug)]
pub struct Pulled {
    pub image: Image,
    /// The name already pointed at this manifest and nothing was fetched.
    pub up_to_date: bool,
}

/// Pull `target` into `store`. Blocking file I/O: run it through [`super::run_blocking`].
pub async fn pull(
    store: &Store,
    regs: &Registries,
    target: &Target,
    auth: &RegistryAuth,
    tx: &ProgressTx,
) -> Result<Pulled, RegistryError> {
    let client = regs.oci_client(target.registry())?;
    let what = format!("manifest for {}", target.display());
    let first_id = target
        .reference
        .digest()
        .map(str::to_string)
        .unwrap_or_else(|| target.tag().to_string());
    let (bytes, _) = client
        .pull_manifest_raw(&target.reference, auth, ANY)
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    tx.send(Progress::layer(
        &first_id,
        format!("Pulling from {}", target.reference.repository()),
    ));
    let top = checked(&bytes, target.reference.digest(), &what)?;
    let (manifest_bytes, manifest_digest) = if is_index(&top.1) {
        let chosen = choose_platform(&top.1, &what)?;
        let child = target.reference.clone_with_digest(chosen.to_string());
        let (b, _) = client
            .pull_manifest_raw(&child, auth, MANIFESTS)
            .await
            .map_err(|e| RegistryError::from_oci(e, &what))?;
        let (d, v) = checked(&b, Some(&chosen.to_string()), &what)?;
        if is_index(&v) {
            return Err(RegistryError::Invalid(format!(
                "{what}: the manifest list leads to another list"
            )));
        }
        (b, d)
    } else {
        (bytes, top.0)
    };
    let manifest: oci_spec::image::ImageManifest = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| RegistryError::Invalid(format!("{what}: not an image manifest: {e}")))?;
    if manifest.schema_version() != 2 {
        return Err(RegistryError::Invalid(format!(
            "{what}: schema version {} (only 2 is supported)",
            manifest.schema_version()
        )));
    }
    let config = blob_of(manifest.config(), &what)?;
    let layers = manifest
        .layers()
        .iter()
        .map(|l| blob_of(l, &what))
        .collect::<Result<Vec<_>, _>>()?;
    check_room(store, &layers)?;

    let _pin = store.pin_blobs(
        std::iter::once(&manifest_digest)
            .chain(std::iter::once(&config.0))
            .chain(layers.iter().map(|(d, _)| d)),
    );
    let up_to_date_before = target
        .name
        .as_deref()
        .and_then(|n| store.resolve(n).ok())
        .is_some_and(|i| i.manifest == manifest_digest);
    if !store.has_blob(&manifest_digest) {
        let mut w = store.blob_writer(&what)?;
        w.write(&manifest_bytes)?;
        w.commit(&manifest_digest, Some(manifest_bytes.len() as u64))?;
    }
    for (d, _) in &layers {
        let id = d.short().to_string();
        if store.has_blob(d) {
            tx.send(Progress::layer(&id, "Already exists"));
        } else {
            tx.send(Progress::layer(&id, "Pulling fs layer"));
        }
    }
    let mut fetched = 0;
    fetched += fetch(&client, &target.reference, store, &config, None, tx).await? as usize;
    for (i, l) in layers.iter().enumerate() {
        let new = fetch(&client, &target.reference, store, l, Some(i), tx).await?;
        if new {
            tx.send(Progress::layer(l.0.short(), "Download complete"));
            fetched += 1;
        }
    }
    let repo_digest = format!("{}@{manifest_digest}", target.repository);
    let lock = store.writer_lock()?;
    let loaded = store.commit_fetched(&lock, &manifest_digest, target.name.clone(), repo_digest)?;
    drop(lock);
    if loaded.layers_unpacked > 0 {
        for (d, _) in &layers {
            tx.send(Progress::layer(d.short(), "Pull complete"));
        }
    }
    tx.send(Progress::status(format!("Digest: {manifest_digest}")));
    let up_to_date = up_to_date_before && fetched == 0;
    tx.send(Progress::status(if up_to_date {
        format!("Status: Image is up to date for {}", target.display())
    } else {
        format!("Status: Downloaded newer image for {}", target.display())
    }));
    tracing::info!(image = %target.display(), manifest = %manifest_digest, blobs_fetched = fetched,
        layers_unpacked = loaded.layers_unpacked, "image pulled");
    Ok(Pulled {
        image: loaded.image,
        up_to_date,
    })
}

/// The digest of a manifest's bytes (checked against `want`, when the reference named one)
/// and its JSON.
fn checked(bytes: &[u8], want: Option<&str>, what: &str) -> Result<(Digest, Value), RegistryError> {
    if bytes.len() > MAX_MANIFEST {
        return Err(RegistryError::Invalid(format!(
            "{what}: larger than {MAX_MANIFEST} bytes"
        )));
    }
    let d = Digest::of(bytes);
    if let Some(w) = want {
        if d.to_string() != w {
            return Err(RegistryError::Invalid(format!(
                "{what}: the registry's manifest has digest {d}, not {w}"
            )));
        }
    }
    let v: Value = serde_json::from_slice(bytes)
        .map_err(|e| RegistryError::Invalid(format!("{what}: invalid JSON: {e}")))?;
    Ok((d, v))
}

fn is_index(v: &Value) -> bool {
    let mt = v.get("mediaType").and_then(Value::as_str).unwrap_or("");
    mt == OCI_IMAGE_INDEX_MEDIA_TYPE
        || mt == IMAGE_MANIFEST_LIST_MEDIA_TYPE
        || (mt.is_empty() && v.get("manifests").is_some_and(Value::is_array))
}

/// The linux/amd64 entry of a manifest list (an entry without a variant, or `v1`, first).
fn choose_platform(index: &Value, what: &str) -> Result<Digest, RegistryError> {
    let (os, arch) = (
        oci_spec::image::Os::default().to_string(),
        oci_spec::image::Arch::default().to_string(),
    );
    let entries = index
        .get("manifests")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            RegistryError::Invalid(format!("{what}: a manifest list without manifests"))
        })?;
    let mut best: Option<(u8, Digest)> = None;
    for e in entries {
        let p = e.get("platform");
        let field = |k: &str| {
            p.and_then(|p| p.get(k))
                .and_then(Value::as_str)
                .unwrap_or("")
        };
        if field("os") != os || field("architecture") != arch {
            continue;
        }
        let rank = match field("variant") {
            "" => 0,
            "v1" => 1,
            _ => 2,
        };
        let Some(d) = e.get("digest").and_then(Value::as_str) else {
            continue;
        };
        let d = Digest::parse(d, what).map_err(|e| RegistryError::Invalid(e.to_string()))?;
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, d));
        }
    }
    best.map(|(_, d)| d).ok_or_else(|| {
        RegistryError::NotFound(format!(
            "no matching manifest for {os}/{arch} in the manifest list entries"
        ))
    })
}

/// A descriptor's digest (sha256 only) and size.
fn blob_of(d: &oci_spec::image::Descriptor, what: &str) -> Result<(Digest, u64), RegistryError> {
    let digest = Digest::parse(d.digest().as_ref(), what)
        .map_err(|e| RegistryError::Invalid(e.to_string()))?;
    Ok((digest, d.size()))
}

/// Refuse a pull whose layers cannot fit on the store's disk (as declared by the manifest;
/// unpacked they need more, which the unpack itself finds out).
fn check_room(store: &Store, layers: &[(Digest, u64)]) -> Result<(), RegistryError> {
    let need: u64 = layers
        .iter()
        .filter(|(d, _)| !store.has_blob(d))
        .map(|(_, s)| *s)
        .sum();
    if let Ok(st) = nix::sys::statvfs::statvfs(store.root()) {
        let free = st.blocks_available().saturating_mul(st.fragment_size());
        if need > free {
            return Err(RegistryError::Invalid(format!(
                "the image's layers are {need} bytes and {} has {free} bytes free",
                store.root().display()
            )));
        }
    }
    Ok(())
}

/// Fetch one blob into the store unless it is there; whether it was fetched. Progress by
/// bytes for layers (`layer` is its index).
async fn fetch(
    client: &Client,
    reference: &Reference,
    store: &Store,
    (digest, size): &(Digest, u64),
    layer: Option<usize>,
    tx: &ProgressTx,
) -> Result<bool, RegistryError> {
    if store.has_blob(digest) {
        return Ok(false);
    }
    let what = format!("blob {digest} of {reference}");
    // By digest alone: a descriptor's `urls` (foreign layers) would send us elsewhere.
    let d = digest.to_string();
    let mut stream = client
        .pull_blob_stream(reference, d.as_str())
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    let mut w = store.blob_writer(&what)?;
    let mut reported = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| RegistryError::Transport(format!("{what}: {e}")))?;
        if w.written() + chunk.len() as u64 > *size {
            return Err(RegistryError::Invalid(format!(
                "{what}: the registry sent more than the {size} bytes the manifest gives"
            )));
        }
        w.write(&chunk)?;
        if layer.is_some() && w.written() - reported >= STEP {
            reported = w.written();
            tx.send(Progress::Bytes {
                id: digest.short().to_string(),
                status: "Downloading",
                current: reported,
                total: *size,
            });
        }
    }
    w.commit(digest, Some(*size))?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    #[test]
    fn a_manifest_list_leads_to_linux_amd64() {
        let list = json!({
            "schemaVersion": 2,
            "mediaType": IMAGE_MANIFEST_LIST_MEDIA_TYPE,
            "manifests": [
                { "digest": d('a'), "platform": { "os": "linux", "architecture": "arm64" } },
                { "digest": d('b'), "platform": { "os": "linux", "architecture": "amd64", "variant": "v3" } },
                { "digest": d('c'), "platform": { "os": "linux", "architecture": "amd64" } },
                { "digest": d('e'), "platform": { "os": "windows", "architecture": "amd64" } },
            ]
        });
        assert!(is_index(&list));
        assert_eq!(choose_platform(&list, "t").unwrap().to_string(), d('c'));
        let none = json!({ "manifests": [
            { "digest": d('a'), "platform": { "os": "linux", "architecture": "arm64" } } ] });
        let e = choose_platform(&none, "t").unwrap_err();
        assert_eq!(e.status(), 404);
        assert!(
            e.to_string()
                .contains("no matching manifest for linux/amd64"),
            "{e}"
        );
        let bad = json!({ "manifests": [
            { "digest": "sha256:../../x", "platform": { "os": "linux", "architecture": "amd64" } } ] });
        assert!(choose_platform(&bad, "t").is_err());
    }

    #[test]
    fn manifests_are_checked_against_the_digest_asked_for() {
        let body = br#"{"schemaVersion":2,"config":{},"layers":[]}"#;
        let (dig, v) = checked(body, None, "m").unwrap();
        assert!(!is_index(&v));
        assert!(checked(body, Some(&dig.to_string()), "m").is_ok());
        let e = checked(body, Some(&d('a')), "m").unwrap_err();
        assert!(e.to_string().contains("not sha256:aaaa"), "{e}");
        assert!(checked(&vec![b' '; MAX_MANIFEST + 1], None, "m").is_err());
    }
}
