//! The remote API's certificates and mutual TLS, on loopback, with the real API on a manager
//! with an empty store (as os/src/dockerd/api/tests.rs does).

use super::certs::{self, Layout, Pem, ServerPem};
use super::tls::{self, certificates, private_key, TlsListener};
use super::RemoteError;
use crate::config::model::Docker;
use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn pem(origin: &str, text: &str) -> Pem {
    Pem {
        origin: origin.into(),
        text: text.into(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(ca: &str) -> Arc<RootCertStore> {
    let mut r = RootCertStore::empty();
    for c in certificates(&pem("ca", ca)).unwrap() {
        r.add(c).unwrap();
    }
    Arc::new(r)
}

fn names() -> Vec<String> {
    vec![
        "box".into(),
        "localhost".into(),
        "127.0.0.1".into(),
        "10.0.2.15".into(),
    ]
}

#[test]
fn the_client_certificate_verifies_against_the_ca_and_the_server_has_the_sans() {
    let set = certs::generate(&names()).unwrap();
    let now = UnixTime::now();

    let clients = WebPkiClientVerifier::builder_with_provider(roots(&set.ca), provider())
        .build()
        .unwrap();
    let client = certificates(&pem("client", &set.client)).unwrap();
    clients
        .verify_client_cert(&client[0], &[], now)
        .expect("the client certificate is the CA's");

    let servers = WebPkiServerVerifier::builder_with_provider(roots(&set.ca), provider())
        .build()
        .unwrap();
    let server = certificates(&pem("server", &set.server)).unwrap();
    for name in ["box", "localhost", "127.0.0.1", "10.0.2.15"] {
        let n = ServerName::try_from(name).unwrap();
        servers
            .verify_server_cert(&server[0], &[], &n, &[], now)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    let other = ServerName::try_from("elsewhere.example").unwrap();
    assert!(servers
        .verify_server_cert(&server[0], &[], &other, &[], now)
        .is_err());

    // Another CA's client is not one of ours.
    let stranger = certs::generate(&names()).unwrap();
    let theirs = certificates(&pem("client", &stranger.client)).unwrap();
    assert!(clients.verify_client_cert(&theirs[0], &[], now).is_err());
}

#[test]
fn a_set_is_kept_with_private_keys_0600_and_reused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path().join("tls"));
    let (first, origin) = certs::load_or_create(&Docker::default(), &layout).unwrap();
    assert_eq!(origin, certs::Origin::Generated);
    for (f, mode) in [
        ("ca.pem", 0o644),
        ("ca-key.pem", 0o600),
        ("server-cert.pem", 0o644),
        ("server-key.pem", 0o600),
        ("client/ca.pem", 0o644),
        ("client/cert.pem", 0o644),
        ("client/key.pem", 0o600),
    ] {
        let m = std::fs::metadata(layout.dir.join(f)).unwrap();
        assert_eq!(m.permissions().mode() & 0o777, mode, "{f}");
    }
    let (again, origin) = certs::load_or_create(&Docker::default(), &layout).unwrap();
    assert_eq!(origin, certs::Origin::Kept);
    assert_eq!(again.cert.text, first.cert.text);
    tls::server_config(&again).unwrap();
}

#[test]
fn bad_configured_material_is_an_error_naming_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::new(dir.path());
    let set = certs::generate(&names()).unwrap();
    let docker = Docker {
        tls: true,
        ca_cert: Some(set.ca.clone()),
        server_cert: Some("-----BEGIN CERTIFICATE-----\nnot base64 at all\n".into()),
        server_key: Some(set.server_key.clone()),
        ..Docker::default()
    };
    let (pem, origin) = certs::load_or_create(&docker, &layout).unwrap();
    assert_eq!(origin, certs::Origin::Config);
    let e = tls::server_config(&pem).unwrap_err().to_string();
    assert!(e.starts_with("rancher.docker.server_cert: "), "{e}");

    let docker = Docker {
        server_cert: Some(set.server.clone()),
        server_key: Some("nothing".into()),
        ..docker
    };
    let (pem, _) = certs::load_or_create(&docker, &layout).unwrap();
    let e = tls::server_config(&pem).unwrap_err().to_string();
    assert!(e.starts_with("rancher.docker.server_key: "), "{e}");

    // A key that is not the certificate's.
    let docker = Docker {
        server_key: Some(set.client_key.clone()),
        ..docker
    };
    let (pem, _) = certs::load_or_create(&docker, &layout).unwrap();
    let e = tls::server_config(&pem).unwrap_err();
    assert!(matches!(e, RemoteError::Pair { .. }), "{e}");

    let partial = Docker {
        server_cert: Some(set.server.clone()),
        ..Docker::default()
    };
    let e = certs::load_or_create(&partial, &layout)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("rancher.docker.server_cert is set but not rancher.docker.ca_cert"),
        "{e}"
    );
    assert!(
        !layout.server().exists(),
        "nothing is made when the configuration gives some"
    );
}

/// The API on loopback behind mutual TLS; its port and the client bundle.
async fn serve(dir: &std::path::Path) -> (u16, certs::Generated) {
    let set = certs::generate(&names()).unwrap();
    let server = ServerPem {
        ca: pem("ca", &set.ca),
        cert: pem("server", &set.server),
        key: pem("server key", &set.server_key),
    };
    let config = tls::server_config(&server).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let listener = TlsListener::new(tcp, config).unwrap();
    let mgr = crate::engine::manager::Manager::open(crate::engine::manager::Config::new(
        dir.join("root"),
        dir.join("run"),
        "/docker".into(),
        "/bin/false".into(),
    ))
    .unwrap();
    let api = crate::dockerd::api::Api::new(mgr, dir.join("tmp"), Default::default(), None);
    let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(
        crate::dockerd::api::app(api),
    );
    tokio::spawn(async move { axum::serve(listener, svc).await });
    (port, set)
}

fn client_config(set: &certs::Generated, with_cert: bool) -> Arc<ClientConfig> {
    let b = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots(&set.ca));
    Arc::new(if with_cert {
        b.with_client_auth_cert(
            certificates(&pem("client", &set.client)).unwrap(),
            private_key(&pem("client key", &set.client_key)).unwrap(),
        )
        .unwrap()
    } else {
        b.with_no_client_auth()
    })
}

/// `GET /_ping` over TLS as 127.0.0.1: the whole answer, or the I/O error.
async fn ping(port: u16, config: Arc<ClientConfig>) -> std::io::Result<String> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    tls.write_all(b"GET /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n")
        .await?;
    let mut out = Vec::new();
    tls.read_to_end(&mut out).await?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[tokio::test]
async fn a_client_with_a_certificate_is_answered_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (port, set) = serve(dir.path()).await;
    let answer = ping(port, client_config(&set, true)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nOK"), "{answer}");
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (port, set) = serve(dir.path()).await;
    // TLS 1.3: the client's handshake ends before the server has seen its (missing)
    // certificate; the refusal comes as an alert on the first read.
    let r = ping(port, client_config(&set, false)).await;
    assert!(r.is_err(), "answered without a certificate: {r:?}");
    // And the server still serves those who have one.
    let answer = ping(port, client_config(&set, true)).await.unwrap();
    assert!(answer.ends_with("OK"), "{answer}");
}

#[test]
fn tls_wins_over_insecure_tcp_and_neither_means_no_tcp() {
    let parse = |y: &str| serde_yaml_ng::from_str::<Docker>(y).unwrap();
    use super::Mode;
    assert_eq!(Mode::of(&parse("{}")), Mode::Off);
    assert_eq!(Mode::of(&parse("tls: true")), Mode::Tls);
    assert_eq!(Mode::of(&parse("insecure_tcp: true")), Mode::Plain);
    assert_eq!(
        Mode::of(&parse("{tls: true, insecure_tcp: true}")),
        Mode::Tls
    );
}
