//! The web UI's HTTPS: a CA made at the UI's first start and kept on the state partition
//! (`rancherctl ui ca` prints it, for a browser or `curl --cacert` to trust), and a server
//! certificate it signs, made again at every start for the names and addresses the machine has
//! then (an address from a new lease is covered after a restart of `ui`). ECDSA P-256, ring.
//!
//! The CA is name-constrained: it can sign for the DNS names the machine had when it was made
//! (its hostname and `localhost`, kept in `ca-names`) and for IP addresses, nothing else, so
//! an operator who trusts it in a browser does not trust whoever gets its key for every site.
//! A hostname set later is left out of the server certificate (the browser would refuse the
//! whole certificate for a name outside the constraints); addresses keep working.
//!
//! ```text
//! /var/lib/rancher/ui/ca.pem  ca-key.pem  ca-names      (0644, 0600, 0644; atomically)
//! ```

use crate::config::atomic::write_atomic;
use crate::dockerd::remote::certs::{machine_names, Pem};
use crate::dockerd::remote::tls::{certificates, private_key};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, GeneralSubtree, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, NameConstraints,
};
use rustls::ServerConfig;
use std::path::Path;
use std::sync::Arc;

/// Why HTTPS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("making the {what}: {source}")]
    Generate {
        what: &'static str,
        source: rcgen::Error,
    },
    #[error("{0}")]
    Pem(#[from] crate::dockerd::remote::RemoteError),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

pub const CA: &str = "ca.pem";
const CA_KEY: &str = "ca-key.pem";
const CA_NAMES: &str = "ca-names";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn ca_params(dns: &[String]) -> Result<CertificateParams, TlsError> {
    let mut ca = CertificateParams::new(Vec::<String>::new())
        .map_err(|source| TlsError::Generate { what: "CA", source })?;
    ca.distinguished_name
        .push(DnType::CommonName, "RancherOS-rs web UI CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.name_constraints = Some(NameConstraints {
        permitted_subtrees: dns.iter().cloned().map(GeneralSubtree::DnsName).collect(),
        excluded_subtrees: Vec::new(),
    });
    Ok(ca)
}

/// The DNS names among `names` (the rest are addresses).
fn dns_names(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_err())
        .cloned()
        .collect()
}

/// The CA kept in `dir` (made when there is none, for the DNS names of `names`): its
/// certificate (PEM), an issuer, and the DNS names it may sign for.
fn ca(
    dir: &Path,
    names: &[String],
) -> Result<(String, Issuer<'static, KeyPair>, Vec<String>), TlsError> {
    let (cert_path, key_path, names_path) = (dir.join(CA), dir.join(CA_KEY), dir.join(CA_NAMES));
    if cert_path.exists() && key_path.exists() {
        let dns: Vec<String> = std::fs::read_to_string(&names_path)
            .map_err(io(&names_path))?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(String::from)
            .collect();
        let cert = std::fs::read_to_string(&cert_path).map_err(io(&cert_path))?;
        let key = std::fs::read_to_string(&key_path).map_err(io(&key_path))?;
        let key = KeyPair::from_pem(&key).map_err(|source| TlsError::Generate {
            what: "CA key (read back)",
            source,
        })?;
        // The CA's parameters are fixed (ca_params of its names), and its key identifier is
        // derived from its key: the same issuer as the one that made it.
        return Ok((cert, Issuer::new(ca_params(&dns)?, key), dns));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let key = KeyPair::generate().map_err(|source| TlsError::Generate {
        what: "CA key",
        source,
    })?;
    let dns = dns_names(names);
    let params = ca_params(&dns)?;
    let cert = params
        .self_signed(&key)
        .map_err(|source| TlsError::Generate { what: "CA", source })?
        .pem();
    let listed: String = dns.iter().map(|n| format!("{n}\n")).collect();
    write_atomic(&names_path, listed.as_bytes(), 0o644).map_err(io(&names_path))?;
    write_atomic(&key_path, key.serialize_pem().as_bytes(), 0o600).map_err(io(&key_path))?;
    write_atomic(&cert_path, cert.as_bytes(), 0o644).map_err(io(&cert_path))?;
    tracing::info!(dir = %dir.display(), ?dns, "ui: made a new CA");
    Ok((cert, Issuer::new(params, key), dns))
}

/// The server's TLS configuration: a certificate for `names` (and the machine's names and
/// addresses now) signed by the CA kept in `dir`.
pub fn server_config(dir: &Path, names: &[String]) -> Result<Arc<ServerConfig>, TlsError> {
    let names = machine_names(names);
    let (ca_pem, issuer, allowed) = ca(dir, &names)?;
    // Only names the CA may sign for: a hostname set after it was made is left out.
    let names: Vec<String> = names
        .into_iter()
        .filter(|n| n.parse::<std::net::IpAddr>().is_ok() || allowed.contains(n))
        .collect();
    let key = KeyPair::generate().map_err(|source| TlsError::Generate {
        what: "server key",
        source,
    })?;
    let mut params =
        CertificateParams::new(names.clone()).map_err(|source| TlsError::Generate {
            what: "server certificate",
            source,
        })?;
    params.distinguished_name.push(
        DnType::CommonName,
        names.first().map_or("ui", String::as_str),
    );
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params
        .signed_by(&key, &issuer)
        .map_err(|source| TlsError::Generate {
            what: "server certificate",
            source,
        })?;
    let chain_pem = format!("{}{}", cert.pem(), ca_pem);
    let chain = certificates(&Pem {
        origin: "the UI's server certificate".into(),
        text: chain_pem,
    })?;
    let key = private_key(&Pem {
        origin: "the UI's server key".into(),
        text: key.serialize_pem(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tracing::info!(?names, "ui: server certificate");
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_ca_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        super::server_config(dir.path(), &["ui.example".into()]).unwrap();
        let first = std::fs::read_to_string(dir.path().join(super::CA)).unwrap();
        super::server_config(dir.path(), &[]).unwrap();
        let second = std::fs::read_to_string(dir.path().join(super::CA)).unwrap();
        assert_eq!(first, second);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
