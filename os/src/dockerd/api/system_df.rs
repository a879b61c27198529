//! `GET /system/df` (`docker system df`): what the engine's images, containers and volumes take
//! on its disk. Layers shared by several images count once in `LayersSize`; a container's
//! size is its upper layer (what it wrote); a volume's, its data. Sizes are walked without
//! following symlinks nor crossing into other filesystems.

use super::St;
use crate::engine::api::ApiError;
use crate::engine::volume::disk_usage;
use axum::Json;
use serde_json::{json, Value};
use std::collections::HashMap;

pub async fn df(axum::extract::State(api): St) -> Result<Json<Value>, ApiError> {
    let mgr = api.mgr.clone();
    let v = tokio::task::spawn_blocking(move || {
        let containers = mgr.list();
        let images = mgr.store.list().unwrap_or_default();
        // How many images hold each layer blob.
        let mut holders: HashMap<String, (u64, usize)> = HashMap::new();
        for i in &images {
            for l in &i.layers {
                holders.entry(l.blob.to_string()).or_insert((l.size, 0)).1 += 1;
            }
        }
        let layers_size: u64 = holders.values().map(|(s, _)| *s).sum();
        let image_rows: Vec<Value> = images
            .iter()
            .map(|i| {
                let id = i.id.to_string();
                let size: u64 = i.layers.iter().map(|l| l.size).sum();
                let shared: u64 = i
                    .layers
                    .iter()
                    .filter(|l| holders.get(&l.blob.to_string()).is_some_and(|(_, n)| *n > 1))
                    .map(|l| l.size)
                    .sum();
                json!({
                    "Id": id,
                    "ParentId": "",
                    "RepoTags": i.names,
                    "RepoDigests": [],
                    "Created": i.created.as_deref().and_then(crate::engine::api::time::parse_rfc3339).unwrap_or(0),
                    "Size": size,
                    "SharedSize": shared,
                    "VirtualSize": size,
                    "Labels": {},
                    "Containers": containers.iter().filter(|c| c.image_id == id).count(),
                })
            })
            .collect();
        let container_rows: Vec<Value> = containers
            .iter()
            .map(|r| {
                let mut row = super::json::row(&mgr, r);
                row["SizeRw"] = json!(disk_usage(&r.upper.clone().unwrap_or_else(|| mgr.dir(&r.id)).join("upper")));
                row
            })
            .collect();
        let volume_rows: Vec<Value> = mgr
            .volumes
            .list()
            .iter()
            .map(|v| {
                json!({
                    "Name": v.name,
                    "Driver": "local",
                    "Mountpoint": mgr.volumes.data_dir(&v.name),
                    "Labels": v.labels,
                    "Scope": "local",
                    "Options": {},
                    "CreatedAt": crate::engine::api::time::rfc3339(crate::engine::manager::record::system_time(v.created)),
                    "UsageData": {
                        "Size": mgr.volumes.size(&v.name),
                        "RefCount": mgr.volume_users(&v.name).len(),
                    },
                })
            })
            .collect();
        json!({
            "LayersSize": layers_size,
            "Images": image_rows,
            "Containers": container_rows,
            "Volumes": volume_rows,
            "BuildCache": [],
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("df task: {e}")))?;
    Ok(Json(v))
}
