//! A running container's processes: `pause`, `unpause`, `top` (`ps -ef`'s columns) and
//! `stats` (one sample, or a sample a second; Docker's `cpu_stats`/`precpu_stats` pair, from
//! which the CLI computes CPU %).

use super::{err, truthy, St};
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::time;
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::manager::record::system_time;
use crate::engine::manager::stats::Sample;
use crate::engine::manager::TOP_TITLES;
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;

pub async fn pause(
    axum::extract::State(api): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.mgr.pause(&id).await.map_err(err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn unpause(
    axum::extract::State(api): St,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    api.mgr.unpause(&id).await.map_err(err)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Debug, Default, Deserialize)]
pub struct TopQuery {
    ps_args: Option<String>,
}

pub async fn top(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<TopQuery>,
) -> Result<Json<Value>, ApiError> {
    match q.ps_args.as_deref().map(str::trim) {
        None | Some("") | Some("-ef") | Some("-e -f") | Some("-f -e") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
            "ps_args {other:?}: only ps's -ef columns are shown (we read /proc, we do not run ps)"
        )))
        }
    }
    let rows = api.mgr.top(&id).map_err(err)?;
    Ok(Json(json!({ "Titles": TOP_TITLES, "Processes": rows })))
}

#[derive(Debug, Default, Deserialize)]
pub struct StatsQuery {
    stream: Option<String>,
    #[serde(rename = "one-shot")]
    one_shot: Option<String>,
}

/// Between two samples of a stream (and of a one-off that is not `one-shot`), as dockerd.
const EVERY: Duration = Duration::from_secs(1);

pub async fn stats(
    axum::extract::State(api): St,
    Path(id): Path<String>,
    Query(q): Query<StatsQuery>,
) -> Result<Response, ApiError> {
    let rec = api.mgr.get(&id).map_err(err)?;
    let first = api.mgr.stats(&rec.id).map_err(err)?;
    let stream = q.stream.is_none() || truthy(&q.stream);
    let name = format!("/{}", rec.name);
    if !stream {
        let (pre, cur) = if truthy(&q.one_shot) {
            (Sample::default(), first)
        } else {
            tokio::time::sleep(EVERY).await;
            let second = api.mgr.stats(&rec.id).map_err(err)?;
            (first, second)
        };
        return Ok(Json(stats_json(&name, &rec.id, &pre, &cur)).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
    let mgr = api.mgr.clone();
    let id = rec.id.clone();
    tokio::spawn(async move {
        let mut pre = Sample::default();
        let mut cur = first;
        loop {
            let mut line = stats_json(&name, &id, &pre, &cur).to_string();
            line.push('\n');
            if tx.send(Bytes::from(line)).await.is_err() {
                return;
            }
            tokio::time::sleep(EVERY).await;
            // Ends when the container no longer runs (dockerd sends zeros; ending is plainer).
            let Ok(next) = mgr.stats(&id) else { return };
            pre = std::mem::replace(&mut cur, next);
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

fn read_time(s: &Sample) -> String {
    if s.read == 0 {
        return time::ZERO.to_string();
    }
    time::rfc3339(system_time(s.read))
}

fn cpu(s: &Sample) -> Value {
    json!({
        "cpu_usage": {
            "total_usage": s.cpu_total,
            "usage_in_kernelmode": s.cpu_kernel,
            "usage_in_usermode": s.cpu_user,
        },
        "system_cpu_usage": s.system_cpu,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": s.throttle_periods,
            "throttled_periods": s.throttled_periods,
            "throttled_time": s.throttled_time,
        },
    })
}

/// Docker's `StatsJSON` (cgroup v2 flavour: no per-CPU usage, `memory.stat`'s keys as they
/// are).
fn stats_json(name: &str, id: &str, pre: &Sample, cur: &Sample) -> Value {
    let io: Vec<Value> = cur
        .io
        .iter()
        .flat_map(|(major, minor, r, w)| {
            [
                json!({ "major": major, "minor": minor, "op": "read", "value": r }),
                json!({ "major": major, "minor": minor, "op": "write", "value": w }),
            ]
        })
        .collect();
    let mut pids = json!({ "current": cur.pids });
    if let Some(l) = cur.pids_limit {
        pids["limit"] = json!(l);
    }
    json!({
        "name": name,
        "id": id,
        "read": read_time(cur),
        "preread": read_time(pre),
        "pids_stats": pids,
        "blkio_stats": {
            "io_service_bytes_recursive": io,
            "io_serviced_recursive": null,
            "io_queue_recursive": null,
            "io_service_time_recursive": null,
            "io_wait_time_recursive": null,
            "io_merged_recursive": null,
            "io_time_recursive": null,
            "sectors_recursive": null,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu(cur),
        "precpu_stats": cpu(pre),
        "memory_stats": {
            "usage": cur.memory_usage,
            "stats": cur.memory_stat,
            "limit": cur.memory_limit,
        },
    })
}
