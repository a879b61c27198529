//! Which registries are spoken to how: the trust roots and the insecure list, from
//! `rancher.docker`, turned into `oci-client` and reqwest clients.
//!
//! - Roots: the system's CA bundle (`/etc/ssl/certs/ca-certificates.crt`, when the engine's
//!   container has one) plus every certificate of `rancher.docker.ca` (PEM). Only these:
//!   reqwest's platform verifier is never consulted, so what is trusted is what this file says.
//!   The bundle is read when the first client is made, not when the engine starts: decoding
//!   its ~140 certificates was 8 M of the boot's guest instructions under TCG (6 % of all the
//!   `ros` user code from `/init` to ready), for a pull or login that may never come.
//!   `rancher.docker.ca` is read at once, so a bad one is reported at start.
//! - Insecure: `rancher.docker.insecure_registry` (RancherOS's key; `insecure_registries` too)
//!   lists `host[:port]` names or CIDR ranges of IP addresses whose registries speak plain HTTP;
//!   as in Docker, `localhost` and `127.0.0.0/8` always are.

use super::error::RegistryError;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Where Debian (and most distributions) keep the bundle of trusted roots.
pub const SYSTEM_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// The registry settings of one engine.
#[derive(Debug, Clone, Default)]
pub struct Registries {
    insecure: Vec<Insecure>,
    /// `rancher.docker.ca`'s certificates (DER).
    ca: Vec<Vec<u8>>,
    /// The system's bundle, when there is one, and once read (once, for every clone): its
    /// certificates, or why there are none.
    bundle: Option<PathBuf>,
    system: Arc<OnceLock<SystemRoots>>,
}

#[derive(Debug, Default)]
struct SystemRoots {
    certs: Vec<Vec<u8>>,
    /// The bundle could not be read or parsed: this, naming it.
    problem: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
enum Insecure {
    /// `host` or `host:port`, compared as written (lowercase).
    Host(String),
    Cidr(IpAddr, u8),
}

impl Registries {
    /// The settings from `rancher.docker`; what cannot be used is returned as messages that
    /// name the key (and the rest still applies).
    pub fn from_config(
        docker: &crate::config::model::Docker,
        bundle: &Path,
    ) -> (Registries, Vec<String>) {
        let mut warnings = Vec::new();
        let mut r = Registries::default();
        for (i, entry) in docker.insecure_registry.iter().enumerate() {
            match parse_insecure(entry) {
                Ok(v) => r.insecure.push(v),
                Err(e) => warnings.push(format!("rancher.docker.insecure_registry[{i}]: {e}")),
            }
        }
        r.bundle = Some(bundle.to_path_buf());
        if let Some(ca) = docker.ca.as_deref().filter(|s| !s.trim().is_empty()) {
            match parse_pem(ca.as_bytes()) {
                Ok(certs) => r.ca = certs,
                Err(e) => warnings.push(format!("rancher.docker.ca: {e}")),
            }
        }
        (r, warnings)
    }

    /// The system's bundle, read now if it was not yet. A bundle that cannot be read or parsed
    /// adds no root; its problem is logged when it is read, and kept for [`Self::bundle_problem`].
    fn system(&self) -> &SystemRoots {
        self.system.get_or_init(|| {
            let Some(bundle) = &self.bundle else {
                return SystemRoots::default();
            };
            let problem = match std::fs::read(bundle) {
                Ok(pem) => match parse_pem(&pem) {
                    Ok(certs) => {
                        return SystemRoots {
                            certs,
                            problem: None,
                        }
                    }
                    Err(e) => e,
                },
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return SystemRoots::default()
                }
                Err(e) => e.to_string(),
            };
            let problem = format!("{}: {problem}", bundle.display());
            tracing::warn!(%problem, "registries: no trust roots from the system's bundle");
            SystemRoots {
                certs: Vec::new(),
                problem: Some(problem),
            }
        })
    }

    /// Read the system's bundle now (a command that makes its client at once and has no log
    /// calls this to print the problem): why it gave no roots, if it did not.
    pub fn bundle_problem(&self) -> Option<&str> {
        self.system().problem.as_deref()
    }

    /// The trust roots (DER): the system's bundle's, then `rancher.docker.ca`'s.
    fn trust_roots(&self) -> impl Iterator<Item = &Vec<u8>> {
        self.system().certs.iter().chain(&self.ca)
    }

    /// How many trust roots there are (reads the system's bundle if it was not yet).
    pub fn roots(&self) -> usize {
        self.trust_roots().count()
    }

    /// Whether `registry` (`host[:port]`) speaks plain HTTP.
    pub fn is_insecure(&self, registry: &str) -> bool {
        let registry = registry.to_ascii_lowercase();
        let host = host_of(&registry);
        if host == "localhost" {
            return true;
        }
        let ip: Option<IpAddr> = host.trim_matches(['[', ']']).parse().ok();
        if ip.is_some_and(|ip| ip.is_loopback()) {
            return true;
        }
        self.insecure.iter().any(|i| match i {
            Insecure::Host(h) => *h == registry || *h == host,
            Insecure::Cidr(net, bits) => ip.is_some_and(|ip| in_cidr(ip, *net, *bits)),
        })
    }

    /// `http` or `https` for `registry`.
    pub fn scheme(&self, registry: &str) -> &'static str {
        if self.is_insecure(registry) {
            "http"
        } else {
            "https"
        }
    }

    /// An `oci-client` client for `registry`.
    pub fn oci_client(&self, registry: &str) -> Result<oci_client::Client, RegistryError> {
        install_provider();
        let protocol = if self.is_insecure(registry) {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        };
        let config = oci_client::client::ClientConfig {
            protocol,
            tls_certs_only: self
                .trust_roots()
                .map(|der| oci_client::client::Certificate {
                    encoding: oci_client::client::CertificateEncoding::Der,
                    data: der.clone(),
                })
                .collect(),
            // A manifest list is resolved by `pull` itself (linux/amd64, digests checked).
            platform_resolver: None,
            connect_timeout: Some(Duration::from_secs(30)),
            read_timeout: Some(Duration::from_secs(120)),
            user_agent: concat!("ros-dockerd/", env!("CARGO_PKG_VERSION")),
            max_concurrent_download: 1,
            max_concurrent_upload: 1,
            ..Default::default()
        };
        // `oci-client` also builds a default reqwest client, whose platform verifier panics
        // when the system has no CA bundle at all (a container without /etc/ssl/certs): that
        // is an error to report, not a reason to lose the thread.
        let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            oci_client::Client::try_from(config)
        }))
        .map_err(|_| {
            RegistryError::Transport(format!(
                "a client for {registry}: no CA certificates could be loaded ({SYSTEM_BUNDLE} \
                     is missing)"
            ))
        })?;
        built.map_err(|e| RegistryError::from_oci(e, &format!("a client for {registry}")))
    }

    /// A plain reqwest client with the same roots (for `docker login`'s checks).
    pub fn http_client(&self) -> Result<reqwest::Client, RegistryError> {
        install_provider();
        let certs = self
            .trust_roots()
            .map(|der| reqwest::Certificate::from_der(der))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| RegistryError::Transport(format!("trust roots: {e}")))?;
        reqwest::Client::builder()
            .tls_certs_only(certs)
            .connect_timeout(Duration::from_secs(30))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("ros-dockerd/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| RegistryError::Transport(format!("an HTTP client: {e}")))
    }
}

/// ring as rustls' provider for the whole process, once.
pub fn install_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err: a provider was installed already, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// Every certificate of a PEM text, as DER; an error if there is none or one is damaged.
pub fn parse_pem(pem: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut out = Vec::new();
    for (i, c) in CertificateDer::pem_slice_iter(pem).enumerate() {
        match c {
            Ok(der) => out.push(der.as_ref().to_vec()),
            Err(e) => return Err(format!("certificate {}: not valid PEM: {e}", i + 1)),
        }
    }
    if out.is_empty() {
        return Err("no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into());
    }
    Ok(out)
}

fn parse_insecure(entry: &str) -> Result<Insecure, String> {
    let e = entry.trim().to_ascii_lowercase();
    let e = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .unwrap_or(&e)
        .trim_end_matches('/');
    if e.is_empty() {
        return Err("empty".into());
    }
    if let Some((net, bits)) = e.split_once('/') {
        let net: IpAddr = net
            .parse()
            .map_err(|_| format!("{entry:?}: not an IP range (a.b.c.d/n)"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let bits: u8 = bits
            .parse()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("{entry:?}: the prefix length must be 0 to {max}"))?;
        return Ok(Insecure::Cidr(net, bits));
    }
    let ok = e
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
    if !ok {
        return Err(format!("{entry:?}: not a host[:port]"));
    }
    Ok(Insecure::Host(e.to_string()))
}

/// `host` of `host:port` (and of `[v6]:port`).
fn host_of(registry: &str) -> &str {
    if let Some(rest) = registry.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match registry.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) && !h.contains(':') => h,
        _ => registry,
    }
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regs(insecure: &[&str]) -> (Registries, Vec<String>) {
        let docker = crate::config::model::Docker {
            insecure_registry: insecure.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Registries::from_config(&docker, Path::new("/nonexistent/bundle.crt"))
    }

    #[test]
    fn insecure_by_host_port_and_range_and_loopback() {
        let (r, w) = regs(&[
            "10.0.2.100:5000",
            "registry.lan",
            "192.168.0.0/16",
            "bad host",
            "1.2.3.4/33",
        ]);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(
            w[0].starts_with("rancher.docker.insecure_registry[3]"),
            "{w:?}"
        );
        assert!(r.is_insecure("10.0.2.100:5000"));
        assert!(!r.is_insecure("10.0.2.100:5001"));
        assert!(r.is_insecure("registry.lan:443"));
        assert!(r.is_insecure("192.168.7.9:5000"));
        assert!(!r.is_insecure("192.169.0.1"));
        assert!(r.is_insecure("localhost:5000"));
        assert!(r.is_insecure("127.0.0.5:80"));
        assert!(!r.is_insecure("docker.io"));
        assert_eq!(r.scheme("quay.io"), "https");
    }

    /// The system's bundle is read at the first use, not by `from_config`; once, for every
    /// clone; a damaged one adds no root (and is logged), `rancher.docker.ca`'s still count.
    #[test]
    fn the_system_bundle_is_read_when_first_needed() {
        let pem = |name: &str| {
            rcgen::generate_simple_self_signed(vec![name.to_string()])
                .unwrap()
                .cert
                .pem()
        };
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("ca-certificates.crt");
        std::fs::write(&bundle, pem("a") + &pem("b")).unwrap();
        let docker = crate::config::model::Docker {
            ca: Some(pem("c")),
            ..Default::default()
        };
        let (r, w) = Registries::from_config(&docker, &bundle);
        assert!(w.is_empty(), "{w:?}");
        let clone = r.clone();
        std::fs::write(&bundle, pem("a")).unwrap();
        assert_eq!(
            clone.roots(),
            2,
            "read at the first use: one in the bundle, then the ca"
        );
        std::fs::remove_file(&bundle).unwrap();
        assert_eq!(r.roots(), 2, "read once, for every clone");

        std::fs::write(
            &bundle,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let (r, w) = Registries::from_config(&docker, &bundle);
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(r.roots(), 1, "a damaged bundle adds none");
        let problem = r.bundle_problem().unwrap();
        assert!(
            problem.starts_with(&format!("{}: ", bundle.display())),
            "{problem}"
        );
    }

    #[test]
    fn ca_must_be_pem_certificates() {
        let docker = crate::config::model::Docker {
            ca: Some("not a certificate".into()),
            ..Default::default()
        };
        let (r, w) = Registries::from_config(&docker, Path::new("/nonexistent"));
        assert_eq!(r.roots(), 0);
        assert!(
            w[0].starts_with("rancher.docker.ca: no PEM certificate"),
            "{w:?}"
        );
        let broken = "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        assert!(parse_pem(broken.as_bytes()).is_err());
    }
}
