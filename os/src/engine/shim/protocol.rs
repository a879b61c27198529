//! What the engine and a shim say to each other on the shim's socket: one JSON line a request,
//! one JSON line a reply (none for `attach`, whose connection then carries the streams).

use serde::{Deserialize, Serialize};

/// The first line of every connection to a shim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    /// Let the created container's process run (once).
    Start,
    /// Join the container's streams: from here on the shim sends its output (Docker's
    /// multiplexed frames, or raw bytes with a tty) and reads what goes to its stdin. Output
    /// produced while nobody is attached goes to the log only.
    Attach {
        #[serde(default)]
        stdin: bool,
        #[serde(default)]
        stdout: bool,
        #[serde(default)]
        stderr: bool,
    },
    /// Send a signal (a number) to the container's init, while it has not been reaped.
    Kill { signal: i32 },
    /// The terminal's size (a tty container).
    Resize { height: u16, width: u16 },
    /// Answer when the container has exited (at once if it has).
    Wait,
}

/// The reply to every request but `attach`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Reply {
    Exit { exit_code: i32 },
    Ok { ok: bool },
    Error { error: String },
}

/// The one line a shim prints on its stdout once the container exists (or could not be made).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Created {
    Pid { pid: i32 },
    Error { error: String },
}

/// What a shim leaves behind when its container has exited: `exit.json` beside the socket,
/// written atomically before it answers its waiters, so an engine that was not running when
/// the container ended still learns its exit code.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExitFile {
    pub exit_code: i32,
    /// Unix nanoseconds.
    pub finished_at: i128,
}

/// Longest request line a shim reads.
pub const MAX_REQUEST: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_are_one_line_of_json() {
        let r: Request = serde_json::from_str(r#"{"op":"attach","stdout":true}"#).unwrap();
        assert_eq!(
            r,
            Request::Attach {
                stdin: false,
                stdout: true,
                stderr: false
            }
        );
        let r: Request = serde_json::from_str(r#"{"op":"kill","signal":15}"#).unwrap();
        assert_eq!(r, Request::Kill { signal: 15 });
        assert!(serde_json::from_str::<Request>(r#"{"op":"frobnicate"}"#).is_err());
        let e: Reply = serde_json::from_str(r#"{"exit_code":7}"#).unwrap();
        assert_eq!(e, Reply::Exit { exit_code: 7 });
        let c: Created = serde_json::from_str(r#"{"error":"no such file"}"#).unwrap();
        assert!(matches!(c, Created::Error { .. }));
    }
}
