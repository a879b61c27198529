//! A container's log, as Docker's `json-file` driver writes it: one JSON object a line,
//! `{"log":"hi\n","stream":"stdout","time":"2026-12-02T01:02:03.000000004Z"}`. Output is cut
//! at newlines; a line longer than [`MAX_LINE`] is written in pieces (as Docker does at 16 KiB),
//! and whatever is left without a newline is written when the container ends. Keeping the
//! streams apart in the file is what lets `docker logs` send stdout and stderr apart.
//!
//! A plain log (`--log-plain`, the system services' `/var/log/<name>.log`) is the output
//! itself, both streams as they come, appended to a file opened `O_APPEND` (so a rotation by
//! copy and truncate lets the next write land at its start).

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};

/// Longest piece of one line kept in memory before it is written.
pub const MAX_LINE: usize = 16 * 1024;

/// One line of the log file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: String,
    pub time: String,
}

/// Which stream a piece of output came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout = 0,
    Stderr = 1,
}

impl Stream {
    pub fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// The writer (the shim's side).
pub struct Writer {
    file: File,
    partial: [Vec<u8>; 2],
    plain: bool,
}

impl Writer {
    pub fn new(file: File, plain: bool) -> Self {
        Writer {
            file,
            partial: [Vec::new(), Vec::new()],
            plain,
        }
    }

    /// Take `data` from `stream`: every complete line is written now.
    pub fn write(&mut self, stream: Stream, data: &[u8]) -> io::Result<()> {
        if self.plain {
            return self.file.write_all(data);
        }
        let mut out = Vec::new();
        let buf = &mut self.partial[stream as usize];
        for &b in data {
            buf.push(b);
            if b == b'\n' || buf.len() >= MAX_LINE {
                out.push(entry(stream, buf));
                buf.clear();
            }
        }
        self.append(&out)
    }

    /// Write what is left of unfinished lines (the container has ended).
    pub fn finish(&mut self) -> io::Result<()> {
        let mut out = Vec::new();
        for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
            if !self.partial[i].is_empty() {
                out.push(entry(s, &self.partial[i]));
                self.partial[i].clear();
            }
        }
        self.append(&out)?;
        self.file.sync_data()
    }

    fn append(&mut self, lines: &[Vec<u8>]) -> io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut all = Vec::with_capacity(lines.iter().map(|l| l.len()).sum());
        for l in lines {
            all.extend_from_slice(l);
        }
        self.file.write_all(&all)
    }
}

fn entry(stream: Stream, data: &[u8]) -> Vec<u8> {
    let e = Entry {
        log: String::from_utf8_lossy(data).into_owned(),
        stream: stream.name().to_string(),
        time: crate::engine::api::time::rfc3339(Some(std::time::SystemTime::now())),
    };
    let mut line = serde_json::to_vec(&e).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_cut_at_newlines_and_streams_kept_apart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::new(File::create(&path).unwrap(), false);
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        w.write(Stream::Stdout, b"o\nthree").unwrap();
        w.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let got: Vec<(String, String)> = text
            .lines()
            .map(|l| serde_json::from_str::<Entry>(l).unwrap())
            .map(|e| (e.stream, e.log))
            .collect();
        let want = [
            ("stdout", "one\n"),
            ("stderr", "err\n"),
            ("stdout", "two\n"),
            ("stdout", "three"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_plain_log_is_the_output_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::new(File::create(&path).unwrap(), true);
        w.write(Stream::Stdout, b"one\ntw").unwrap();
        w.write(Stream::Stderr, b"err\n").unwrap();
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "one\ntwerr\n");
    }

    #[test]
    fn a_long_line_is_written_in_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let mut w = Writer::new(File::create(&path).unwrap(), false);
        w.write(Stream::Stdout, &vec![b'x'; MAX_LINE * 2 + 10])
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
        w.finish().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }
}
