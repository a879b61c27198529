//! Registries for tests: Debian's `docker-registry` (the CNCF distribution server) on this
//! machine's loopback, plain or with TLS and basic auth, reached from a VM through QEMU's
//! `guestfwd` and `harness relay`. Nothing leaves the machine.
//!
//! TLS uses a CA made for the test ([`TestCa`]): its PEM is what a test gives the VM as
//! `rancher.docker.ca`; the server certificate names the guest-side address.

use anyhow::{bail, Context};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Debian's registry binary (`cargo harness setup` installs `docker-registry`).
pub const REGISTRY_BIN: &str = "/usr/bin/docker-registry";

/// A CA and one server certificate it signed.
pub struct TestCa {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A CA, and a server certificate for these IP addresses or names.
    pub fn new(names: &[&str]) -> anyhow::Result<TestCa> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let ca_key = KeyPair::generate()?;
        let mut ca = CertificateParams::new(Vec::<String>::new())?;
        ca.distinguished_name
            .push(DnType::CommonName, "RancherOS-rs test CA");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = KeyPair::generate()?;
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("registry"),
        );
        let cert = params.signed_by(&key, &issuer)?;
        Ok(TestCa {
            ca_pem: ca_cert.pem(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// A running registry, killed on drop.
pub struct Registry {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

impl Registry {
    /// Start one on 127.0.0.1 (a free port), with TLS from `tls` and basic auth for `user` when
    /// given. Returns once it accepts connections.
    pub fn start(tls: Option<&TestCa>, user: Option<(&str, &str)>) -> anyhow::Result<Registry> {
        if !Path::new(REGISTRY_BIN).exists() {
            bail!("{REGISTRY_BIN} is missing: `cargo harness setup` installs docker-registry");
        }
        let dir = tempfile::tempdir()?;
        let port = crate::vm::free_port()?;
        let mut config = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some(ca) = tls {
            let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
            std::fs::write(&cert, &ca.cert_pem)?;
            std::fs::write(&key, &ca.key_pem)?;
            config.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((u, p)) = user {
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, format!("{u}:{}\n", bcrypt::hash(p, 5)?))?;
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: test-registry\n    path: {}\n",
                htpasswd.display()
            ));
        }
        let cfg = dir.path().join("config.yml");
        std::fs::write(&cfg, config)?;
        let log = std::fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&cfg)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {REGISTRY_BIN}"))?;
        let mut r = Registry { port, child, dir };
        let t = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(st) = r.child.try_wait()? {
                bail!("the registry exited ({st}): {}", r.log());
            }
            if t.elapsed() > Duration::from_secs(20) {
                bail!("the registry does not listen on {port}: {}", r.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(r)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// What `guestfwd` runs to reach it: `harness relay 127.0.0.1:PORT`.
    pub fn relay_cmd(&self, harness_bin: &str) -> String {
        format!("{harness_bin} relay 127.0.0.1:{}", self.port)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Join stdin/stdout to a TCP connection to `addr` until both directions end (what QEMU's
/// `guestfwd` runs per connection).
pub fn relay(addr: &str) -> anyhow::Result<()> {
    let sock = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    let mut up = sock.try_clone()?;
    let writer = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let _ = std::io::copy(&mut stdin, &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
    });
    // Flushed after every read: stdout is line-buffered, and a body that does not end in a
    // newline would wait in its buffer for bytes that never come.
    use std::io::{Read, Write};
    let mut down = sock;
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match down.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(writer);
    Ok(())
}
