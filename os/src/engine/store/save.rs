//! `docker save`: images out of the store as one tar that both formats' loaders read, as
//! Docker 25 writes it: an OCI image layout (`oci-layout`, `index.json`, `blobs/sha256/…`) and
//! Docker's `manifest.json` (`Config`, `RepoTags`, `Layers` naming the same blobs), so our
//! `load`, dockerd's (20.10 reads `manifest.json`) and any OCI tool take it back.
//!
//! The blobs are copied as stored (a layer compressed in its image stays compressed; loaders
//! sniff it); a layer kept without its blob (the initrd's images) is written back from its
//! tree ([`super::retar`]). Each blob is re-hashed on the way out and a mismatch stops the save: a store
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
        // The layers kept without their blob (shipped unpacked), by diff_id.
        let unblobbed: BTreeSet<&Digest> = items
            .iter()
            .flat_map(|it| &it.image.layers)
            .filter(|l| l.blob == l.diff_id && !self.blobs.path(&l.blob).exists())
            .map(|l| &l.blob)
            .collect();
        for d in &blobs {
            if unblobbed.contains(d) && self.has_layer(d) {
                let path = self.retar_to_tmp(d)?;
                let opened = std::fs::File::open(&path).ctx("opening", &path);
                let result = self.append_blob(&mut b, d, &path, opened);
                let _ = std::fs::remove_file(&path);
                result?;
            } else {
                self.append_blob(&mut b, d, &self.blobs.path(d), self.blobs.open(d))?;
            }
        }
        b.into_inner()
            .and_then(|mut w| w.flush())
            .ctx("writing the archive", self.root())?;
        Ok(())
    }

    /// The layer `diff_id` written back as its tar ([`super::retar`]) into a file of `tmp/`.
    fn retar_to_tmp(&self, diff_id: &Digest) -> Result<std::path::PathBuf> {
        let path = self
            .tmp_dir()
            .join(format!("retar-{}-{}", diff_id.hex(), std::process::id()));
        let file = std::fs::File::create(&path).ctx("creating", &path)?;
        // Read back at once and removed: nothing to sync.
        if let Err(e) = super::retar::write(&self.layer_diff_dir(diff_id), &file) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Append blob `d` (read from `file`, at `path`) as `blobs/sha256/<hex>`, checked against
    /// its digest on the way.
    fn append_blob<W: Write>(
        &self,
        b: &mut tar::Builder<W>,
        d: &Digest,
        path: &std::path::Path,
        file: Result<std::fs::File>,
    ) -> Result<()> {
        {
            let file = file?;
            let len = file.metadata().ctx("stat", path)?.len();
            let mut h = tar::Header::new_gnu();
            h.set_size(len);
            h.set_mode(0o644);
            h.set_mtime(0);
            h.set_cksum();
            let mut reader = super::digest::HashingReader::new(file);
            b.append_data(&mut h, format!("blobs/sha256/{}", d.hex()), &mut reader)
                .ctx("writing the archive", path)?;
            let (got, _) = reader.finish().ctx("reading", path)?;
            if &got != d {
                return Err(StoreError::DigestMismatch {
                    blob: path.display().to_string(),
                    expected: d.clone(),
                    actual: got,
                });
            }
        }
        Ok(())
    }
}
