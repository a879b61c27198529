//! Size rotation of the system services' logs, `/var/log/<name>.log`.
//!
//! A container's stdout and stderr are the log file itself, opened with `O_APPEND` by the
//! runtime helper, so PID 1 never copies a byte of output. Rotation is therefore
//! "copytruncate", as logrotate does for programs that keep their log open: when a file passes
//! [`MAX_BYTES`] the older copies shift (`.1` → `.2` …), the file is copied to `.1`, and the
//! file is truncated; the writer's next append lands at offset 0. At most [`KEEP`] old copies
//! stay, so a chatty service costs at most `(KEEP + 1) × MAX_BYTES` of RAM in `/var/log`.
//!
//! The supervisor calls [`rotate_dir`] every [`CHECK_EVERY`]. A line written between the copy
//! and the truncation can be lost; that is the price of never being in the output's path.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A log larger than this is rotated.
pub const MAX_BYTES: u64 = 1024 * 1024;
/// Old copies kept: `<name>.log.1` … `<name>.log.KEEP`.
pub const KEEP: u32 = 2;
/// How often the supervisor looks.
pub const CHECK_EVERY: Duration = Duration::from_secs(10);
/// Where the services' logs are.
pub const LOG_DIR: &str = "/var/log";

/// Rotate every `*.log` in `dir` larger than `max`; returns the rotated paths.
pub fn rotate_dir(dir: &Path, max: u64, keep: u32) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut rotated = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "log") {
            continue;
        }
        match rotate_if_larger(&path, max, keep) {
            Ok(true) => {
                tracing::info!(log = %path.display(), max, "log rotated");
                rotated.push(path);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(log = %path.display(), error = %e, "log rotation failed"),
        }
    }
    rotated
}

/// `<path>.<n>`.
fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// Rotate `path` when it is larger than `max`. True when it was rotated.
pub fn rotate_if_larger(path: &Path, max: u64, keep: u32) -> io::Result<bool> {
    let len = std::fs::metadata(path)?.len();
    if len <= max || keep == 0 {
        return Ok(false);
    }
    for n in (1..keep).rev() {
        let from = numbered(path, n);
        if from.exists() {
            std::fs::rename(&from, numbered(path, n + 1))?;
        }
    }
    std::fs::copy(path, numbered(path, 1))?;
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_len(0)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn big_logs_shift_copy_and_truncate_small_ones_stay() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("chatty.log");
        let small = dir.path().join("quiet.log");
        std::fs::write(&small, "hello\n").unwrap();
        // The writer keeps its O_APPEND fd across rotations, as a container does.
        let mut w = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&big)
            .unwrap();
        for round in 0..3u8 {
            w.write_all(&[b'a' + round; 150]).unwrap();
            assert_eq!(rotate_dir(dir.path(), 100, 2), vec![big.clone()]);
            assert_eq!(std::fs::metadata(&big).unwrap().len(), 0);
        }
        w.write_all(b"after\n").unwrap();
        assert_eq!(
            std::fs::read(&big).unwrap(),
            b"after\n",
            "appends at offset 0"
        );
        assert_eq!(std::fs::read(numbered(&big, 1)).unwrap(), [b'c'; 150]);
        assert_eq!(std::fs::read(numbered(&big, 2)).unwrap(), [b'b'; 150]);
        assert!(!numbered(&big, 3).exists(), "only KEEP copies");
        assert_eq!(std::fs::read_to_string(&small).unwrap(), "hello\n");
        assert!(!numbered(&small, 1).exists());
    }
}
