//! `docker push`: an image's layer and config blobs (those the registry lacks), then its
//! manifest, byte for byte as the store keeps it, so the registry's digest is the store's.

use super::error::RegistryError;
use super::progress::{Progress, ProgressTx, STEP};
use super::target::Target;
use super::Registries;
use crate::engine::store::{Digest, Image, Store};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::{json, Value};
use std::io::Read;

/// A push's result.
#[derive(Debug)]
pub struct Pushed {
    pub digest: Digest,
    pub size: usize,
}

/// Push `image` as `target` (which names a tag). Blocking file I/O: run it through
/// [`super::run_blocking`].
pub async fn push(
    store: &Store,
    regs: &Registries,
    image: &Image,
    target: &Target,
    auth: &RegistryAuth,
    tx: &ProgressTx,
) -> Result<Pushed, RegistryError> {
    let client = regs.oci_client(target.registry())?;
    let reference = &target.reference;
    tx.send(Progress::status(format!(
        "The push refers to repository [{}]",
        target.repository
    )));
    let what = format!("push of {}", target.display());
    client
        .auth(reference, auth, RegistryOperation::Push)
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    let manifest_bytes = store.json_blob(&image.manifest)?;
    let manifest: Value = serde_json::from_slice(&manifest_bytes)
        .map_err(|e| RegistryError::Invalid(format!("{what}: the stored manifest: {e}")))?;
    let media_type = manifest
        .get("mediaType")
        .and_then(Value::as_str)
        .unwrap_or(oci_client::manifest::OCI_IMAGE_MEDIA_TYPE)
        .to_string();
    // Docker lists the layers top-most first.
    for l in image.layers.iter().rev() {
        tx.send(Progress::layer(l.diff_id.short(), "Preparing"));
    }
    for l in image.layers.iter().rev() {
        let id = l.diff_id.short();
        if send_blob(&client, reference, store, &l.blob, l.size, Some(id), tx).await? {
            tx.send(Progress::layer(id, "Pushed"));
        } else {
            tx.send(Progress::layer(id, "Layer already exists"));
        }
    }
    let config_size = std::fs::metadata(store.blob_path(&image.id))
        .map(|m| m.len())
        .unwrap_or(0);
    send_blob(&client, reference, store, &image.id, config_size, None, tx).await?;
    let content_type = reqwest::header::HeaderValue::from_str(&media_type)
        .map_err(|_| RegistryError::Invalid(format!("{what}: media type {media_type:?}")))?;
    client
        .push_manifest_raw(reference, manifest_bytes.clone(), content_type)
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    let size = manifest_bytes.len();
    let digest = image.manifest.clone();
    store.add_repo_digest(&digest, &format!("{}@{digest}", target.repository))?;
    let tag = target.tag();
    tx.send(Progress::status(format!(
        "{tag}: digest: {digest} size: {size}"
    )));
    tx.send(Progress::Aux(
        json!({ "Tag": tag, "Digest": digest.to_string(), "Size": size }),
    ));
    tracing::info!(image = %image.display_name(), to = %target.display(), digest = %digest, "image pushed");
    Ok(Pushed { digest, size })
}

/// Send one blob unless the registry has it; whether it was sent.
async fn send_blob(
    client: &Client,
    reference: &Reference,
    store: &Store,
    digest: &Digest,
    size: u64,
    layer: Option<&str>,
    tx: &ProgressTx,
) -> Result<bool, RegistryError> {
    let what = format!("blob {digest} to {reference}");
    let d = digest.to_string();
    if client
        .blob_exists(reference, &d)
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?
    {
        return Ok(false);
    }
    let mut file = store.open_blob(digest)?;
    let progress = tx.clone();
    let id = layer.map(str::to_string);
    let path = store.blob_path(digest);
    // The file in pieces of a MiB, read on this transfer's own thread.
    let stream = futures_util::stream::unfold((0u64, 0u64), move |(sent, reported)| {
        let mut buf = vec![0u8; 1 << 20];
        let r = file.read(&mut buf);
        let progress = progress.clone();
        let id = id.clone();
        let path = path.clone();
        async move {
            match r {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    let mut reported = reported;
                    if let Some(id) = id.filter(|_| sent - reported >= STEP || sent == size) {
                        reported = sent;
                        progress.send(Progress::Bytes {
                            id,
                            status: "Pushing",
                            current: sent,
                            total: size,
                        });
                    }
                    Some((Ok(bytes::Bytes::from(buf)), (sent, reported)))
                }
                Err(e) => Some((
                    Err(oci_client::errors::OciDistributionError::IoError(
                        std::io::Error::new(e.kind(), format!("reading {}: {e}", path.display())),
                    )),
                    (sent, reported),
                )),
            }
        }
    });
    client
        .push_blob_stream(reference, stream, &d, Some(size))
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    Ok(true)
}
