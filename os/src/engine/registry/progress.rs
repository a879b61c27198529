//! Progress of a pull or push as Docker's JSON messages (one object a line), which the CLI
//! renders as its progress bars and the Python library and compose read.

use serde_json::{json, Value};

/// One message.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// `{"status": …, "id": …}`: a step, of a layer when `id` is given.
    Status { id: Option<String>, status: String },
    /// `{"status": "Downloading"|"Pushing", "progressDetail": {"current", "total"}, "id"}`.
    Bytes {
        id: String,
        status: &'static str,
        current: u64,
        total: u64,
    },
    /// `{"aux": …}`: a push's result (`Tag`, `Digest`, `Size`).
    Aux(Value),
}

impl Progress {
    pub fn status(status: impl Into<String>) -> Progress {
        Progress::Status {
            id: None,
            status: status.into(),
        }
    }

    pub fn layer(id: &str, status: impl Into<String>) -> Progress {
        Progress::Status {
            id: Some(id.to_string()),
            status: status.into(),
        }
    }

    /// The JSON line.
    pub fn to_line(&self) -> String {
        let v = match self {
            Progress::Status {
                id: Some(id),
                status,
            } => {
                json!({ "status": status, "progressDetail": {}, "id": id })
            }
            Progress::Status { id: None, status } => json!({ "status": status }),
            Progress::Bytes {
                id,
                status,
                current,
                total,
            } => json!({
                "status": status,
                "progressDetail": { "current": current, "total": total },
                "progress": bar(*current, *total),
                "id": id,
            }),
            Progress::Aux(v) => json!({ "progressDetail": {}, "aux": v }),
        };
        format!("{v}\n")
    }
}

/// The error line that ends a stream whose 200 was already sent.
pub fn error_line(message: &str) -> String {
    format!(
        "{}\n",
        json!({ "errorDetail": { "message": message }, "error": message })
    )
}

/// Where progress goes (the API's response stream); sending never blocks, and a client that
/// has gone away does not stop the transfer.
#[derive(Debug, Clone)]
pub struct ProgressTx(Option<tokio::sync::mpsc::UnboundedSender<Progress>>);

impl ProgressTx {
    pub fn new(tx: tokio::sync::mpsc::UnboundedSender<Progress>) -> ProgressTx {
        ProgressTx(Some(tx))
    }

    /// Progress nobody reads.
    pub fn none() -> ProgressTx {
        ProgressTx(None)
    }

    pub fn send(&self, p: Progress) {
        if let Some(tx) = &self.0 {
            let _ = tx.send(p);
        }
    }
}

/// Byte counts are reported at most this often (in bytes moved).
pub const STEP: u64 = 512 * 1024;

/// `[=====>      ]  1.05MB/2.1MB`, as dockerd draws it.
fn bar(current: u64, total: u64) -> String {
    const WIDTH: u64 = 50;
    let filled = (current.min(total) * WIDTH).checked_div(total).unwrap_or(0) as usize;
    let mut s = String::from("[");
    s.push_str(&"=".repeat(filled));
    if (filled as u64) < WIDTH {
        s.push('>');
        s.push_str(&" ".repeat(WIDTH as usize - filled - 1));
    }
    s.push(']');
    format!("{s}  {}/{}", human(current), human(total))
}

/// Decimal units, as Docker's `units.HumanSize`.
fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i < units.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n}B")
    } else {
        let num = format!("{v:.3}");
        let num = num.trim_end_matches('0').trim_end_matches('.');
        format!("{num}{}", units[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_dockers() {
        assert_eq!(
            Progress::layer("abc", "Pull complete").to_line(),
            "{\"id\":\"abc\",\"progressDetail\":{},\"status\":\"Pull complete\"}\n"
        );
        let v: Value = serde_json::from_str(
            &Progress::Bytes {
                id: "abc".into(),
                status: "Downloading",
                current: 1_000_000,
                total: 2_000_000,
            }
            .to_line(),
        )
        .unwrap();
        assert_eq!(v["progressDetail"]["total"], 2_000_000);
        assert!(v["progress"].as_str().unwrap().ends_with("1MB/2MB"), "{v}");
        let e: Value = serde_json::from_str(&error_line("boom")).unwrap();
        assert_eq!(e["errorDetail"]["message"], "boom");
        assert_eq!(human(1_500_000), "1.5MB");
        assert_eq!(human(999), "999B");
    }
}
