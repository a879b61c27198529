//! Mutual TLS for the remote API: a rustls server that asks every client for a certificate
//! signed by the CA and refuses the connection without one, and a listener that hands axum
//! only connections whose handshake is done, so the API is served over TLS exactly as it is
//! over the unix socket (`axum::serve`, HTTP/1 with upgrades for attach and exec).

use super::certs::{Pem, ServerPem};
use super::RemoteError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE: Duration = Duration::from_secs(10);

/// The certificates of a PEM text (at least one).
pub fn certificates(pem: &Pem) -> Result<Vec<CertificateDer<'static>>, RemoteError> {
    let certs = CertificateDer::pem_slice_iter(pem.text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RemoteError::Pem {
            origin: pem.origin.clone(),
            problem: format!("not PEM certificates: {e}"),
        })?;
    if certs.is_empty() {
        return Err(RemoteError::Pem {
            origin: pem.origin.clone(),
            problem: "no CERTIFICATE in it".into(),
        });
    }
    Ok(certs)
}

/// The private key of a PEM text (PKCS#8, PKCS#1 or SEC1).
pub fn private_key(pem: &Pem) -> Result<PrivateKeyDer<'static>, RemoteError> {
    PrivateKeyDer::from_pem_slice(pem.text.as_bytes()).map_err(|e| RemoteError::Pem {
        origin: pem.origin.clone(),
        problem: format!("no private key in it: {e}"),
    })
}

/// The server's TLS configuration: its certificate and key, and clients verified against the
/// CA (a client without a certificate is refused). ring, as everywhere in this binary.
pub fn server_config(pem: &ServerPem) -> Result<Arc<ServerConfig>, RemoteError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for c in certificates(&pem.ca)? {
        roots.add(c).map_err(|e| RemoteError::Pem {
            origin: pem.ca.origin.clone(),
            problem: format!("not a CA certificate: {e}"),
        })?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| RemoteError::Verifier {
            origin: pem.ca.origin.clone(),
            problem: e.to_string(),
        })?;
    let chain = certificates(&pem.cert)?;
    let key = private_key(&pem.key)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(RemoteError::Protocols)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|source| RemoteError::Pair {
            cert: pem.cert.origin.clone(),
            key: pem.key.origin.clone(),
            source,
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// TCP connections past their TLS handshake, for `axum::serve`. Each handshake runs in a task
/// of its own, so a client that stalls in it holds up no one.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Start accepting on `tcp` (spawns the accepting task: call inside the runtime).
    pub fn new(tcp: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(16);
        tokio::spawn(accept(tcp, TlsAcceptor::from(config), tx));
        Ok(TlsListener { ready, local })
    }
}

async fn accept(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<(TlsStream<TcpStream>, SocketAddr)>,
) {
    while !ready.is_closed() {
        let (stream, peer) = match tcp.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and the like: pause rather than spin.
                tracing::warn!(error = %e, "dockerd: accepting a TLS client");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    // Closed only when the server is gone: the connection goes with it.
                    let _ = ready.send((tls, peer)).await;
                }
                Ok(Err(e)) => tracing::info!(%peer, error = %e, "dockerd: TLS client refused"),
                Err(_) => tracing::info!(%peer, "dockerd: TLS handshake timed out"),
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task ended (it only does when this listener is dropped).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}
