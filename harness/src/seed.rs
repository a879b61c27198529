//! Datasource fixtures for VM tests, built by the harness: NoCloud and ConfigDrive seed disks
//! (iso9660 with `genisoimage`, vfat with `mkfs.vfat` and `mcopy`, from the host packages
//! `harness setup` installs), and an HTTP responder for URL and EC2-style metadata that QEMU
//! runs once per guest connection (`guestfwd=…-cmd:`), so no server listens anywhere and no
//! traffic leaves the machine.

use crate::vm::Drive;
use anyhow::{bail, Context};
use std::collections::BTreeMap;
use std::io::{BufRead, Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::Command;

/// The files of a seed: relative path → content.
pub type Files = BTreeMap<String, Vec<u8>>;

/// Filesystem of a seed disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeedFs {
    Iso9660,
    Vfat,
}

/// Where test fixtures go: `target/seeds/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    crate::paths::repo_root()
        .join("target")
        .join("seeds")
        .join(name)
}

/// Write `files` as a tree under `dir` (emptied first).
pub fn write_tree(dir: &Path, files: &Files) -> anyhow::Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    for (rel, data) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap_or(dir))
            .with_context(|| format!("mkdir for {}", p.display()))?;
        std::fs::write(&p, data).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (is it installed? `cargo harness setup`)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A seed disk labelled `label` holding `files`, as a read-only raw drive.
pub fn disk(name: &str, fs: SeedFs, label: &str, files: &Files) -> anyhow::Result<Drive> {
    let dir = fixture_dir(name);
    let tree = dir.join("tree");
    write_tree(&tree, files)?;
    let img = dir.join(match fs {
        SeedFs::Iso9660 => "seed.iso",
        SeedFs::Vfat => "seed.img",
    });
    let _ = std::fs::remove_file(&img);
    match fs {
        SeedFs::Iso9660 => run(Command::new("genisoimage")
            .args(["-quiet", "-joliet", "-rock", "-volid", label, "-output"])
            .arg(&img)
            .arg(&tree))?,
        SeedFs::Vfat => {
            std::fs::File::create(&img)?.set_len(4 * 1024 * 1024)?;
            run(Command::new("mkfs.vfat").args(["-n", label]).arg(&img))?;
            for entry in std::fs::read_dir(&tree)? {
                run(Command::new("mcopy")
                    .args(["-s", "-i"])
                    .arg(&img)
                    .arg(entry?.path())
                    .arg("::/"))?;
            }
        }
    }
    Ok(Drive {
        path: img,
        format: "raw".into(),
        read_only: true,
    })
}

/// Serve `dir` over HTTP/1.0 on stdin/stdout, for one request: what QEMU's `guestfwd` runs per
/// connection. `GET /a/b` → `dir/a/b`; a path ending in `/` → `dir/…/index`; anything else 404.
pub fn serve_http_once(dir: &Path) -> anyhow::Result<()> {
    let stdin = std::io::stdin();
    serve_one(dir, stdin.lock(), std::io::stdout().lock())
}

/// The same over TLS with `cert` and `key` (PEM files): `https://` datasources in tests.
pub fn serve_https_once(dir: &Path, cert: &Path, key: &Path) -> anyhow::Result<()> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(key)?;
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let conn = rustls::ServerConnection::new(std::sync::Arc::new(config))?;
    let mut tls = rustls::StreamOwned::new(conn, StdIo);
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => request.extend_from_slice(&buf[..n]),
            // A client that refused our certificate ends here; the log says so.
            Err(e) => {
                log_request(dir, &format!("TLS: {e}"));
                return Ok(());
            }
        }
    }
    let mut out = Vec::new();
    serve_one(dir, &request[..], &mut out)?;
    tls.write_all(&out)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    Ok(())
}

/// stdin and stdout as one stream (what rustls wraps).
struct StdIo;

impl std::io::Read for StdIo {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        std::io::stdin().read(buf)
    }
}

impl Write for StdIo {
    // Flushed at once: stdout is line-buffered and TLS records do not end in newlines.
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        out.write_all(buf)?;
        out.flush()?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stdout().flush()
    }
}

fn log_request(dir: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("requests.log"))
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Answer one request read from `input` on `out`.
fn serve_one(dir: &Path, mut lines: impl BufRead, mut out: impl Write) -> anyhow::Result<()> {
    let mut request = String::new();
    lines.read_line(&mut request)?;
    loop {
        let mut h = String::new();
        if lines.read_line(&mut h)? == 0 || h.trim().is_empty() {
            break;
        }
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut rel = PathBuf::from(path.trim_start_matches('/'));
    if path.ends_with('/') {
        rel.push("index");
    }
    let safe = rel.components().all(|c| matches!(c, Component::Normal(_)));
    let body = if safe {
        std::fs::read(dir.join(&rel)).ok()
    } else {
        None
    };
    match body {
        Some(b) => {
            write!(
                out,
                "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
                b.len()
            )?;
            out.write_all(&b)?;
        }
        None => write!(out, "HTTP/1.0 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
    }
    out.flush()?;
    // A log line per request, for the test to read.
    log_request(dir, &path);
    Ok(())
}
