//! The user engine's TLS material, as RancherOS's `rancher.docker.tls` had it: a CA, a server
//! certificate it signs and a client certificate it signs. Given in the configuration
//! (`rancher.docker.ca_cert`, `server_cert`, `server_key`), or made at the engine's first
//! start (and by `rancherctl tls gen`) and kept on the state partition in [`TLS_DIR`], so
//! clients that hold the bundle keep working across reboots.
//!
//! ```text
//! /var/lib/docker/tls/ca.pem  ca-key.pem  server-cert.pem  server-key.pem
//! /var/lib/docker/tls/client/ca.pem  cert.pem  key.pem      (what a client needs)
//! ```
//! Keys are mode 0600; every file is written atomically; `server-cert.pem` last, as it is
//! what says that a set is there.

use super::RemoteError;
use crate::config::atomic::write_atomic;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use std::path::{Path, PathBuf};

/// Where the generated set is kept (on the state partition).
pub const TLS_DIR: &str = "/var/lib/docker/tls";

/// A PEM text and where it came from (a configuration key or a file), for errors.
#[derive(Debug, Clone)]
pub struct Pem {
    pub origin: String,
    pub text: String,
}

impl Pem {
    fn read(path: &Path) -> Result<Pem, RemoteError> {
        let text = std::fs::read_to_string(path).map_err(|source| RemoteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Pem {
            origin: path.display().to_string(),
            text,
        })
    }
}

/// What the server needs: the CA its clients' certificates must be signed by, its own
/// certificate (chain) and key.
#[derive(Debug, Clone)]
pub struct ServerPem {
    pub ca: Pem,
    pub cert: Pem,
    pub key: Pem,
}

/// Where the server's material came from (said on the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    Config,
    Kept,
    Generated,
}

/// A full set made by [`generate`]: PEM texts.
#[derive(Debug, Clone)]
pub struct Generated {
    pub ca: String,
    pub ca_key: String,
    pub server: String,
    pub server_key: String,
    pub client: String,
    pub client_key: String,
}

/// The files of a set in `dir`.
#[derive(Debug, Clone)]
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn new(dir: impl Into<PathBuf>) -> Layout {
        Layout { dir: dir.into() }
    }
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }
    pub fn ca_key(&self) -> PathBuf {
        self.dir.join("ca-key.pem")
    }
    pub fn server(&self) -> PathBuf {
        self.dir.join("server-cert.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join("server-key.pem")
    }
    /// The client bundle's directory.
    pub fn client_dir(&self) -> PathBuf {
        self.dir.join("client")
    }

    /// Write `set`: the client bundle first, the server certificate last.
    pub fn write(&self, set: &Generated) -> Result<(), RemoteError> {
        let client = self.client_dir();
        let files: [(PathBuf, &str, u32); 7] = [
            (client.join("ca.pem"), &set.ca, 0o644),
            (client.join("cert.pem"), &set.client, 0o644),
            (client.join("key.pem"), &set.client_key, 0o600),
            (self.ca(), &set.ca, 0o644),
            (self.ca_key(), &set.ca_key, 0o600),
            (self.server_key(), &set.server_key, 0o600),
            (self.server(), &set.server, 0o644),
        ];
        for (path, text, mode) in files {
            write_atomic(&path, text.as_bytes(), mode)
                .map_err(|source| RemoteError::Io { path, source })?;
        }
        Ok(())
    }

    /// The server's part of a kept set, if there is one.
    pub fn read_server(&self) -> Result<Option<ServerPem>, RemoteError> {
        if !self.server().exists() {
            return Ok(None);
        }
        Ok(Some(ServerPem {
            ca: Pem::read(&self.ca())?,
            cert: Pem::read(&self.server())?,
            key: Pem::read(&self.server_key())?,
        }))
    }
}

/// The server's material: from the configuration if it gives any (then all of it), else the
/// set kept in `layout`, else a new set made for [`machine_names`] and kept there.
pub fn load_or_create(
    docker: &crate::config::model::Docker,
    layout: &Layout,
) -> Result<(ServerPem, Origin), RemoteError> {
    if let Some(pem) = from_config(docker)? {
        return Ok((pem, Origin::Config));
    }
    if let Some(pem) = layout.read_server()? {
        return Ok((pem, Origin::Kept));
    }
    let set = generate(&machine_names(&[]))?;
    layout.write(&set)?;
    let pem = layout.read_server()?.ok_or_else(|| RemoteError::Pem {
        origin: layout.server().display().to_string(),
        problem: "not there right after it was written".into(),
    })?;
    Ok((pem, Origin::Generated))
}

/// `rancher.docker.{ca_cert,server_cert,server_key}`: all or none.
fn from_config(docker: &crate::config::model::Docker) -> Result<Option<ServerPem>, RemoteError> {
    let keys = [
        ("ca_cert", &docker.ca_cert),
        ("server_cert", &docker.server_cert),
        ("server_key", &docker.server_key),
    ];
    let Some((given, _)) = keys.iter().find(|(_, v)| v.is_some()) else {
        return Ok(None);
    };
    if let Some((missing, _)) = keys.iter().find(|(_, v)| v.is_none()) {
        return Err(RemoteError::Incomplete { given, missing });
    }
    let pem = |(key, v): (&str, &Option<String>)| Pem {
        origin: format!("rancher.docker.{key}"),
        text: v.clone().unwrap_or_default(),
    };
    Ok(Some(ServerPem {
        ca: pem(keys[0]),
        cert: pem(keys[1]),
        key: pem(keys[2]),
    }))
}

/// The names the server certificate is for: this machine's hostname, `localhost`, 127.0.0.1
/// (what a forwarded port looks like), every IPv4 address of its interfaces now, and `extra`.
pub fn machine_names(extra: &[String]) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(h) = nix::unistd::gethostname() {
        names.push(h.to_string_lossy().into_owned());
    }
    names.push("localhost".into());
    names.push("127.0.0.1".into());
    match nix::ifaddrs::getifaddrs() {
        Ok(addrs) => {
            for a in addrs {
                if let Some(v4) = a.address.as_ref().and_then(|s| s.as_sockaddr_in()) {
                    names.push(v4.ip().to_string());
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "tls: listing the interfaces' addresses"),
    }
    names.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    names.retain(|n| !n.is_empty() && n.is_ascii() && seen.insert(n.clone()));
    names
}

/// A new CA, a server certificate for `server_names` (DNS names or IP addresses) and a client
/// certificate, both signed by the CA. ECDSA P-256, rcgen's default validity.
pub fn generate(server_names: &[String]) -> Result<Generated, RemoteError> {
    let fail = |what| move |source| RemoteError::Generate { what, source };
    let ca_key = KeyPair::generate().map_err(fail("CA key"))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(fail("CA"))?;
    ca.distinguished_name
        .push(DnType::CommonName, "RancherOS-rs docker CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(fail("CA"))?;
    let ca_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca, ca_key);

    let server_key = KeyPair::generate().map_err(fail("server key"))?;
    let mut server =
        CertificateParams::new(server_names.to_vec()).map_err(fail("server certificate"))?;
    let cn = server_names.first().map_or("docker", String::as_str);
    server.distinguished_name.push(DnType::CommonName, cn);
    server.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server
        .signed_by(&server_key, &issuer)
        .map_err(fail("server certificate"))?;

    let client_key = KeyPair::generate().map_err(fail("client key"))?;
    let mut client =
        CertificateParams::new(Vec::<String>::new()).map_err(fail("client certificate"))?;
    client.distinguished_name.push(DnType::CommonName, "client");
    client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client
        .signed_by(&client_key, &issuer)
        .map_err(fail("client certificate"))?;

    Ok(Generated {
        ca: ca_pem,
        ca_key: ca_key_pem,
        server: server_cert.pem(),
        server_key: server_key.serialize_pem(),
        client: client_cert.pem(),
        client_key: client_key.serialize_pem(),
    })
}
