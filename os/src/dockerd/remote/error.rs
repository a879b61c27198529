//! What can go wrong setting up the remote API: each error names the configuration key or the
//! file it is about, so the operator knows what to fix.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// rcgen refused: a server name that is not a DNS name, or a key it cannot make.
    #[error("generating the {what}: {source}")]
    Generate {
        what: &'static str,
        #[source]
        source: rcgen::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A PEM that is not one, or not of what it should hold. `origin` is the key
    /// (`rancher.docker.server_cert`) or the file.
    #[error("{origin}: {problem}")]
    Pem { origin: String, problem: String },
    /// The configuration gives some of the TLS material but not all of it.
    #[error("rancher.docker.{given} is set but not rancher.docker.{missing}: give ca_cert, server_cert and server_key together (or none, to use /var/lib/docker/tls)")]
    Incomplete {
        given: &'static str,
        missing: &'static str,
    },
    /// The certificate and key do not make a server (e.g. the key is not the certificate's).
    #[error("{cert} with {key}: {source}")]
    Pair {
        cert: String,
        key: String,
        #[source]
        source: rustls::Error,
    },
    /// The client verifier refused the CA (e.g. no usable certificate in it).
    #[error("{origin}: as the clients' CA: {problem}")]
    Verifier { origin: String, problem: String },
    #[error("the TLS protocol versions: {0}")]
    Protocols(#[source] rustls::Error),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}
