//! `GET /events`: the engine's container and image events as Docker's JSON messages, one a line, each
//! flushed as it happens. `since` replays what the engine still remembers (its last 1024
//! events); `until` ends the stream at that time; `filters` by type, container, event, image,
//! label.

use super::St;
use crate::engine::api::extract::Query;
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::manager::{Event, Manager};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::time::Duration;

#[derive(Debug, Default, Deserialize)]
pub struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// Unix nanoseconds of Docker's `1733100000` or `1733100000.123456789`.
fn nanos(v: &str, what: &str) -> Result<i128, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid value for {what}: {v:?}"));
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    let secs: i128 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let frac: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| bad())?
    };
    Ok(secs * 1_000_000_000 + frac)
}

const FILTERS: &[&str] = &["type", "container", "event", "image", "label"];

struct Filters(HashMap<String, Vec<String>>);

impl Filters {
    fn parse(f: Option<&str>) -> Result<Filters, ApiError> {
        super::filters::parse(f, FILTERS).map(Filters)
    }

    fn keep(&self, e: &Event) -> bool {
        self.0.iter().all(|(k, vals)| {
            vals.iter().any(|v| match k.as_str() {
                "type" => v == e.kind,
                "container" => v == &e.name || (!v.is_empty() && e.id.starts_with(v.as_str())),
                // `exec_start: sh -c …` matches `exec_start`, as in Docker.
                "event" => e.action == *v || e.action.split(':').next() == Some(v.as_str()),
                "image" if e.kind == "image" => e.id == *v || e.name == *v,
                "image" => e.image == *v,
                "label" => match v.split_once('=') {
                    Some((k, val)) => e.labels.get(k).is_some_and(|x| x == val),
                    None => e.labels.contains_key(v.as_str()),
                },
                _ => false,
            })
        })
    }
}

fn message(e: &Event) -> Value {
    if e.kind == "image" {
        return json!({
            "status": e.action,
            "id": e.id,
            "Type": "image",
            "Action": e.action,
            "Actor": { "ID": e.id, "Attributes": { "name": e.name } },
            "scope": "local",
            "time": (e.time / 1_000_000_000) as i64,
            "timeNano": e.time,
        });
    }
    if e.kind == "network" {
        // Docker's: the network's id, its name and type, the container connected or not.
        let mut attrs = Map::new();
        for (k, v) in &e.labels {
            attrs.insert(k.clone(), json!(v));
        }
        attrs.insert("name".into(), json!(e.name));
        return json!({
            "Type": "network",
            "Action": e.action,
            "Actor": { "ID": e.id, "Attributes": attrs },
            "scope": "local",
            "time": (e.time / 1_000_000_000) as i64,
            "timeNano": e.time,
        });
    }
    let mut attrs = Map::new();
    for (k, v) in &e.labels {
        attrs.insert(k.clone(), json!(v));
    }
    attrs.insert("image".into(), json!(e.image));
    attrs.insert("name".into(), json!(e.name));
    if let Some(c) = e.exit_code {
        attrs.insert("exitCode".into(), json!(c.to_string()));
    }
    if let Some(s) = e.signal {
        attrs.insert("signal".into(), json!(s.to_string()));
    }
    json!({
        "status": e.action,
        "id": e.id,
        "from": e.image,
        "Type": "container",
        "Action": e.action,
        "Actor": { "ID": e.id, "Attributes": attrs },
        "scope": "local",
        "time": (e.time / 1_000_000_000) as i64,
        "timeNano": e.time,
    })
}

pub async fn events(
    axum::extract::State(api): St,
    Query(q): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let since = q
        .since
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| nanos(s, "since"))
        .transpose()?;
    let until = q
        .until
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| nanos(s, "until"))
        .transpose()?;
    let filters = Filters::parse(q.filters.as_deref())?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    let mgr = api.mgr.clone();
    tokio::spawn(send(mgr, since, until, filters, tx));
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r)
}

async fn send(
    mgr: std::sync::Arc<Manager>,
    since: Option<i128>,
    until: Option<i128>,
    filters: Filters,
    tx: tokio::sync::mpsc::Sender<Bytes>,
) {
    let line = |e: &Event| {
        let mut s = message(e).to_string();
        s.push('\n');
        Bytes::from(s)
    };
    let (past, mut live) = mgr.subscribe();
    let mut last = i128::MIN;
    if let Some(since) = since {
        for e in past.iter().filter(|e| e.time >= since) {
            if until.is_some_and(|u| e.time > u) {
                break;
            }
            if filters.keep(e) && tx.send(line(e)).await.is_err() {
                return;
            }
        }
    }
    if let Some(e) = past.last() {
        last = e.time;
    }
    let now = crate::engine::manager::record::now();
    if until.is_some_and(|u| u <= now) {
        return;
    }
    let deadline = until.map(|u| Duration::from_nanos((u - now).clamp(0, u64::MAX as i128) as u64));
    let run = async {
        loop {
            match live.recv().await {
                Ok(e) if e.time <= last => {}
                Ok(e) => {
                    if until.is_some_and(|u| e.time > u) {
                        return;
                    }
                    if filters.keep(&e) && tx.send(line(&e)).await.is_err() {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "events: a slow reader missed events");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    };
    match deadline {
        Some(d) => {
            let _ = tokio::time::timeout(d, run).await;
        }
        None => run.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_filters() {
        assert_eq!(nanos("2", "since").unwrap(), 2_000_000_000);
        assert_eq!(nanos("2.5", "since").unwrap(), 2_500_000_000);
        assert_eq!(nanos("1.000000001", "since").unwrap(), 1_000_000_001);
        assert!(nanos("x", "since").is_err());
        assert!(nanos("1.0000000001", "since").is_err());
        let e = Event {
            kind: "container",
            action: "exec_start: sh -c true".into(),
            id: "abcdef".into(),
            name: "web".into(),
            image: "ros/busybox".into(),
            exit_code: None,
            signal: None,
            labels: [("a".to_string(), "b".to_string())].into(),
            time: 1,
        };
        let f = |s: &str| Filters::parse(Some(s)).unwrap().keep(&e);
        assert!(f(r#"{"event":["exec_start"]}"#));
        assert!(f(r#"{"container":["abc"],"label":["a=b"]}"#));
        assert!(!f(r#"{"container":["other"]}"#));
        assert!(!f(r#"{"type":["image"]}"#));
        assert!(Filters::parse(Some(r#"{"bogus":["x"]}"#)).is_err());
        let m = message(&e);
        assert_eq!(m["Actor"]["Attributes"]["a"], "b");
        assert_eq!(m["Type"], "container");
        let pull = Event {
            kind: "image",
            action: "pull".into(),
            id: "r:5000/a:1".into(),
            name: "r:5000/a".into(),
            image: String::new(),
            exit_code: None,
            signal: None,
            labels: Default::default(),
            time: 1,
        };
        let f = |s: &str| Filters::parse(Some(s)).unwrap().keep(&pull);
        assert!(f(r#"{"type":["image"],"image":["r:5000/a"]}"#));
        assert!(!f(r#"{"type":["container"]}"#));
        let m = message(&pull);
        assert_eq!(
            (
                m["Type"].as_str(),
                m["Actor"]["Attributes"]["name"].as_str()
            ),
            (Some("image"), Some("r:5000/a"))
        );
    }
}
