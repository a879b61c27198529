//! What can go wrong talking to a registry, with the HTTP status the Docker API answers with.

use crate::engine::store::StoreError;
use oci_client::errors::{OciDistributionError, OciErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference or a request parameter is not acceptable.
    #[error("{0}")]
    BadRequest(String),
    /// The registry has no such repository, tag or manifest.
    #[error("{0}")]
    NotFound(String),
    /// The registry refused the credentials (or asked for some).
    #[error("{0}")]
    Unauthorized(String),
    /// The registry answered something we do not accept (a bad manifest, a wrong digest).
    #[error("{0}")]
    Invalid(String),
    /// Network, TLS or HTTP trouble.
    #[error("{0}")]
    Transport(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl RegistryError {
    /// The status dockerd answers with for the same failure (before any progress was sent).
    pub fn status(&self) -> u16 {
        match self {
            RegistryError::BadRequest(_) => 400,
            RegistryError::NotFound(_) => 404,
            RegistryError::Unauthorized(_) => 401,
            RegistryError::Invalid(_) | RegistryError::Transport(_) | RegistryError::Store(_) => {
                500
            }
        }
    }

    /// An `oci-client` error, in words a user of `docker pull` understands; `what` names the
    /// image and the step.
    pub fn from_oci(e: OciDistributionError, what: &str) -> RegistryError {
        match e {
            OciDistributionError::RegistryError { envelope, url } => {
                let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
                let messages: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{}: {}", code_word(&e.code), e.message))
                    .collect();
                let text = format!("{what}: {}", messages.join("; "));
                if codes.iter().any(|c| {
                    matches!(
                        c,
                        OciErrorCode::ManifestUnknown
                            | OciErrorCode::NameUnknown
                            | OciErrorCode::BlobUnknown
                    )
                }) {
                    RegistryError::NotFound(text)
                } else if codes
                    .iter()
                    .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
                {
                    RegistryError::Unauthorized(format!("{text} ({url})"))
                } else {
                    RegistryError::Invalid(text)
                }
            }
            OciDistributionError::UnauthorizedError { url } => RegistryError::Unauthorized(
                format!("{what}: unauthorized: authentication required ({url})"),
            ),
            OciDistributionError::AuthenticationFailure(reason) => RegistryError::Unauthorized(
                format!("{what}: authentication failed: {}", reason.trim()),
            ),
            OciDistributionError::ImageManifestNotFoundError(m) => {
                RegistryError::NotFound(format!("{what}: manifest unknown: {m}"))
            }
            OciDistributionError::ServerError { code, url, message } => {
                let msg = format!("{what}: {url} answered {code}: {}", message.trim());
                match code {
                    404 => RegistryError::NotFound(msg),
                    401 | 403 => RegistryError::Unauthorized(msg),
                    _ => RegistryError::Transport(msg),
                }
            }
            OciDistributionError::RequestError(e) => {
                RegistryError::Transport(format!("{what}: {}", chain(&e)))
            }
            OciDistributionError::DigestError(e) => RegistryError::Invalid(format!("{what}: {e}")),
            other => RegistryError::Transport(format!("{what}: {other}")),
        }
    }
}

/// An error and its causes on one line (reqwest hides the TLS or connect reason in a source).
pub(crate) use crate::engine::runtime::helper::error_chain as chain;

fn code_word(c: &OciErrorCode) -> String {
    // The distribution spec's codes as registries spell them (MANIFEST_UNKNOWN → manifest unknown).
    let debug = format!("{c:?}");
    let mut out = String::new();
    for (i, ch) in debug.chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push(' ');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_codes_become_docker_statuses() {
        let env: oci_client::errors::OciEnvelope = serde_json::from_str(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
        .unwrap();
        let e = RegistryError::from_oci(
            OciDistributionError::RegistryError {
                envelope: env,
                url: "http://r/v2/x/manifests/1".into(),
            },
            "manifest for r/x:1",
        );
        assert_eq!(e.status(), 404);
        assert_eq!(
            e.to_string(),
            "manifest for r/x:1: manifest unknown: manifest unknown"
        );
        let e = RegistryError::from_oci(
            OciDistributionError::UnauthorizedError { url: "u".into() },
            "x",
        );
        assert_eq!(e.status(), 401);
    }
}
