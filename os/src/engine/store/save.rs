//! `docker save`: images out of the store as one tar that both formats' loaders read, as
//! Docker 25 writes it: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and
//! Docker's `manifest.json` (`Config`, `RepoTags`, `Layers` naming the same blobs), so our
//! `load`, dockerd's (20.10 reads `manifest.json`) and any OCI tool take it back.
//!
//! The blobs are copied as stored (a layer compressed in its image stays compressed; loaders
//! sniff it). Each blob is re-hashed on the way out and a mismatch stops the save: a store
//! corrupted on disk is not exported as if it were sound.

use super::digest::Digest;
use super::error::{IoContext, Result, StoreError};
use super::index::Image;
use super::Store;
use serde_json::json;
use std::collections::BTreeSet;
use std::io::Write;

/// One image to save and the names it is saved under (none: by ID, no tag).
pub struct SaveItem {
    pub image: Image,
    pub names: Vec<String>,
}

impl Store {
    /// Write the tar of `items` to `out`.
    pub fn save(&self, items: &[SaveItem], out: impl Write) -> Result<()> {
        let mut b = tar::Builder::new(out);
        let mut blobs: BTreeSet<Digest> = BTreeSet::new();
        let mut index = Vec::new();
        let mut manifest_json = Vec::new();
        for it in items {
            let img = &it.image;
            let raw = self.blobs.read_json_bytes(&img.manifest)?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&raw)
                .ok()
                .and_then(|v| v.get("mediaType")?.as_str().map(String::from))
                .unwrap_or_else(|| "application/vnd.oci.image.manifest.v1+json".into());
            let entry = |ann: serde_json::Value| {
                json!({
                    "mediaType": media_type,
                    "digest": img.manifest.to_string(),
                    "size": raw.len(),
                    "annotations": ann,
                })
            };
            if it.names.is_empty() {
                index.push(entry(json!({})));
            }
            for n in &it.names {
                let tag = n.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
                index.push(entry(json!({
                    "io.containerd.image.name": n,
                    "org.opencontainers.image.ref.name": tag,
                })));
            }
            manifest_json.push(json!({
                "Config": format!("blobs/sha256/{}", img.id.hex()),
                "RepoTags": it.names,
                "Layers": img.layers.iter().map(|l| format!("blobs/sha256/{}", l.blob.hex())).collect::<Vec<_>>(),
            }));
            blobs.insert(img.manifest.clone());
            blobs.insert(img.id.clone());
            for l in &img.layers {
                blobs.insert(l.blob.clone());
            }
        }
        let put = |b: &mut tar::Builder<_>, name: &str, data: &[u8]| -> Result<()> {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, data)
                .ctx("writing the archive", self.root())
        };
        put(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        let idx = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": index,
        });
        put(&mut b, "index.json", idx.to_string().as_bytes())?;
        put(
            &mut b,
            "manifest.json",
            serde_json::Value::Array(manifest_json)
                .to_string()
                .as_bytes(),
        )?;
        for d in &blobs {
            let path = self.blobs.path(d);
            let file = self.blobs.open(d)?;
            let len = file.metadata().ctx("stat", &path)?.len();
            let mut h = tar::Header::new_gnu();
            h.set_size(len);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            let mut reader = super::digest::HashingReader::new(file);
            b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut reader)
                .ctx("writing the archive", &path)?;
            let (got, _) = reader.finish().ctx("reading", &path)?;
            if &got != d {
                return Err(StoreError::DigestMismatch {
                    blob: path.display().to_string(),
                    expected: d.clone(),
                    actual: got,
                });
            }
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .ctx("writing the archive", self.root())?;
        Ok(())
    }
}
