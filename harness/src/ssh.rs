//! SSH into a VM with the system OpenSSH client: a key pair per test (made with `ssh-keygen`
//! under `target/ssh/<name>/`), given to the guest on the kernel command line
//! ([`Key::cmdline_arg`]), and [`crate::vm::Vm::ssh`] to run a command as `rancher` over the
//! forwarded port. Host keys are never trusted blindly across tests: each VM gets its own
//! known_hosts file, and [`host_key`] reads the key a VM presents (`ssh-keyscan`).

use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The user the console's SSH server lets in.
pub const USER: &str = "rancher";

/// An ed25519 key pair for a test.
#[derive(Debug, Clone)]
pub struct Key {
    pub private: PathBuf,
    /// The `authorized_keys` line (no comment).
    pub public: String,
}

impl Key {
    /// A fresh key pair at `target/ssh/<name>/id_ed25519` (any old one is replaced).
    pub fn generate(name: &str) -> anyhow::Result<Key> {
        let dir = crate::paths::repo_root().join("target/ssh").join(name);
        std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
        let private = dir.join("id_ed25519");
        let _ = std::fs::remove_file(&private);
        let _ = std::fs::remove_file(private.with_extension("pub"));
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&private)
            .status()
            .context("running ssh-keygen (is openssh-client installed?)")?;
        if !st.success() {
            bail!("ssh-keygen failed ({st})");
        }
        let public = std::fs::read_to_string(private.with_extension("pub"))
            .context("reading the public key")?
            .trim()
            .to_string();
        Ok(Key { private, public })
    }

    /// The kernel argument (after `--`) that authorizes this key: `cc.ssh_authorized_keys=[…]`.
    pub fn cmdline_arg(&self) -> String {
        format!("cc.ssh_authorized_keys=\"[{}]\"", self.public)
    }
}

/// The `ssh` arguments for `user@127.0.0.1:port` with `key`, never asking anything.
pub fn args(port: u16, key: &Path, known_hosts: &Path, user: &str) -> Vec<String> {
    [
        "-p",
        &port.to_string(),
        "-i",
        &key.display().to_string(),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        &format!("UserKnownHostsFile={}", known_hosts.display()),
        "-o",
        "ConnectTimeout=10",
        "-o",
        "LogLevel=ERROR",
        &format!("{user}@127.0.0.1"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Run `cmd` over SSH (one attempt).
pub fn run(args: &[String], cmd: &str) -> anyhow::Result<Output> {
    Command::new("ssh")
        .args(args)
        .arg("--")
        .arg(cmd)
        .stdin(std::process::Stdio::null())
        .output()
        .context("running ssh (is openssh-client installed?)")
}

/// The ed25519 host key the SSH server on `port` presents (`ssh-keyscan`: `type base64`).
/// Tried a few times: under TCG on a loaded machine a key exchange can outlast the scan.
pub fn host_key(port: u16) -> anyhow::Result<String> {
    let mut last = String::new();
    for _ in 0..5 {
        let out = Command::new("ssh-keyscan")
            .args([
                "-T",
                "30",
                "-t",
                "ed25519",
                "-p",
                &port.to_string(),
                "127.0.0.1",
            ])
            .output()
            .context("running ssh-keyscan")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let key = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_once(' ').map(|(_, k)| k.trim().to_string()))
            .next();
        if let Some(k) = key {
            return Ok(k);
        }
        last = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
    bail!("no host key from 127.0.0.1:{port} after 5 scans: {last}")
}
