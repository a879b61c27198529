//! Credentials: Docker's `X-Registry-Auth` header (base64url JSON of an AuthConfig) and the
//! body of `POST /auth` (`docker login`), and the check `docker login` asks for.
//!
//! The engine keeps no credentials: the client (the CLI's `config.json`) holds them and sends
//! them with each pull or push. They are never logged: [`AuthConfig`]'s `Debug` hides the
//! secrets.

use super::config::Registries;
use super::error::{chain, RegistryError};
use base64::Engine;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

/// A header larger than this is refused (Docker's are a few hundred bytes).
pub const MAX_HEADER: usize = 64 * 1024;

/// Docker's AuthConfig (its JSON keys).
#[derive(Default, Clone, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// base64 of `username:password`, as `config.json` keeps it.
    #[serde(default)]
    pub auth: String,
    #[serde(default, rename = "serveraddress")]
    pub server_address: String,
    /// An OAuth2 refresh token from an earlier login (not supported: refused with a message).
    #[serde(default, rename = "identitytoken")]
    pub identity_token: String,
    /// A bearer token to send as it is.
    #[serde(default, rename = "registrytoken")]
    pub registry_token: String,
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("server_address", &self.server_address)
            .finish_non_exhaustive()
    }
}

impl AuthConfig {
    /// The `X-Registry-Auth` header's value: base64 (URL-safe or standard, padded or not) of
    /// the JSON. Absent or empty means anonymous; `{}` too.
    pub fn from_header(value: Option<&str>) -> Result<AuthConfig, RegistryError> {
        let Some(v) = value.map(str::trim).filter(|v| !v.is_empty()) else {
            return Ok(AuthConfig::default());
        };
        if v.len() > MAX_HEADER {
            return Err(RegistryError::BadRequest(format!(
                "X-Registry-Auth: larger than {MAX_HEADER} bytes"
            )));
        }
        let unpadded = v.trim_end_matches('=');
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(unpadded)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(unpadded))
            .map_err(|e| RegistryError::BadRequest(format!("X-Registry-Auth: not base64: {e}")))?;
        Self::from_json(&bytes, "X-Registry-Auth")
    }

    /// The JSON itself (`POST /auth`'s body); `what` names it in errors.
    pub fn from_json(bytes: &[u8], what: &str) -> Result<AuthConfig, RegistryError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(AuthConfig::default());
        }
        let mut c: AuthConfig = serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::BadRequest(format!("{what}: invalid JSON: {e}")))?;
        if c.username.is_empty() && !c.auth.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(c.auth.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(|| {
                    RegistryError::BadRequest(format!(
                        "{what}: auth is not base64 of user:password"
                    ))
                })?;
            let (u, p) = decoded.split_once(':').ok_or_else(|| {
                RegistryError::BadRequest(format!("{what}: auth is not base64 of user:password"))
            })?;
            c.username = u.to_string();
            c.password = p.to_string();
        }
        Ok(c)
    }

    /// What `oci-client` sends.
    pub fn registry_auth(&self) -> Result<RegistryAuth, RegistryError> {
        if !self.registry_token.is_empty() {
            return Ok(RegistryAuth::Bearer(self.registry_token.clone()));
        }
        if !self.identity_token.is_empty() {
            return Err(RegistryError::Unauthorized(
                "identity tokens (OAuth2 refresh tokens) are not supported by this engine: log \
                 in with a username and password"
                    .into(),
            ));
        }
        if self.username.is_empty() {
            return Ok(RegistryAuth::Anonymous);
        }
        Ok(RegistryAuth::Basic(
            self.username.clone(),
            self.password.clone(),
        ))
    }

    /// The registry `serveraddress` names (`https://index.docker.io/v1/` → Docker Hub's).
    pub fn registry(&self) -> Result<String, RegistryError> {
        let a = self.server_address.trim();
        let a = a
            .strip_prefix("https://")
            .or_else(|| a.strip_prefix("http://"))
            .unwrap_or(a);
        let host = a.split('/').next().unwrap_or("");
        let host = match host {
            "" | "index.docker.io" | "docker.io" => "registry-1.docker.io",
            h => h,
        };
        let ok = host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !ok {
            return Err(RegistryError::BadRequest(format!(
                "serveraddress {:?}: not a registry host[:port]",
                self.server_address
            )));
        }
        Ok(host.to_ascii_lowercase())
    }
}

/// `docker login`: check the credentials against the registry the way a pull would use them.
/// `GET /v2/` without credentials; on a Basic challenge, again with them; on a Bearer
/// challenge, a token asked of the realm with them.
pub async fn login(regs: &Registries, cfg: &AuthConfig) -> Result<(), RegistryError> {
    let registry = cfg.registry()?;
    let client = regs.http_client()?;
    let url = format!("{}://{registry}/v2/", regs.scheme(&registry));
    let transport =
        |e: reqwest::Error| RegistryError::Transport(format!("Get {url:?}: {}", chain(&e)));
    let res = client.get(&url).send().await.map_err(transport)?;
    if res.status().is_success() {
        return Ok(());
    }
    if res.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Transport(format!(
            "login attempt to {url} failed with status: {}",
            res.status()
        )));
    }
    let challenge = res
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let failed = |status: reqwest::StatusCode| {
        RegistryError::Unauthorized(format!(
            "login attempt to {url} failed with status: {status}"
        ))
    };
    if cfg.username.is_empty() {
        return Err(failed(reqwest::StatusCode::UNAUTHORIZED));
    }
    let res = match parse_bearer(&challenge) {
        Some((realm, service)) => {
            let mut req = client
                .get(&realm)
                .query(&[("account", cfg.username.as_str()), ("client_id", "docker")]);
            if let Some(s) = &service {
                req = req.query(&[("service", s.as_str())]);
            }
            req.basic_auth(&cfg.username, Some(&cfg.password))
                .send()
                .await
                .map_err(transport)?
        }
        None => client
            .get(&url)
            .basic_auth(&cfg.username, Some(&cfg.password))
            .send()
            .await
            .map_err(transport)?,
    };
    if res.status().is_success() {
        Ok(())
    } else {
        Err(failed(res.status()))
    }
}

/// `Bearer realm="…",service="…"` → (realm, service).
fn parse_bearer(h: &str) -> Option<(String, Option<String>)> {
    let rest = h.trim();
    let rest = rest
        .get(..7)
        .filter(|p| p.eq_ignore_ascii_case("bearer "))
        .map(|_| &rest[7..])?;
    let mut realm = None;
    let mut service = None;
    for part in split_params(rest) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_string();
        match k.trim().to_ascii_lowercase().as_str() {
            "realm" => realm = Some(v),
            "service" => service = Some(v),
            _ => {}
        }
    }
    realm
        .filter(|r| r.starts_with("https://") || r.starts_with("http://"))
        .map(|r| (r, service))
}

/// Split `a="x,y",b=z` at the commas outside quotes.
fn split_params(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms() {
        let json = r#"{"username":"u","password":"p:w","serveraddress":"10.0.2.101:5443"}"#;
        for enc in [
            base64::engine::general_purpose::URL_SAFE.encode(json),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
            base64::engine::general_purpose::STANDARD.encode(json),
        ] {
            let c = AuthConfig::from_header(Some(&enc)).unwrap();
            assert_eq!((c.username.as_str(), c.password.as_str()), ("u", "p:w"));
            assert_eq!(c.registry().unwrap(), "10.0.2.101:5443");
            assert!(matches!(
                c.registry_auth().unwrap(),
                RegistryAuth::Basic(..)
            ));
        }
        let anon = AuthConfig::from_header(Some("e30=")).unwrap();
        assert!(matches!(
            anon.registry_auth().unwrap(),
            RegistryAuth::Anonymous
        ));
        assert!(AuthConfig::from_header(None).unwrap().username.is_empty());
        let auth = base64::engine::general_purpose::STANDARD.encode("me:secret");
        let c = AuthConfig::from_json(format!(r#"{{"auth":"{auth}"}}"#).as_bytes(), "t").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "secret"));
        assert_eq!(c.registry().unwrap(), "registry-1.docker.io");
        assert!(!format!("{c:?}").contains("secret"));
    }

    #[test]
    fn bad_headers_are_refused_with_the_header_named() {
        for bad in ["!!!", &"a".repeat(MAX_HEADER + 1)] {
            let e = AuthConfig::from_header(Some(bad)).unwrap_err();
            assert!(e.to_string().starts_with("X-Registry-Auth"), "{e}");
            assert_eq!(e.status(), 400);
        }
        let not_json = base64::engine::general_purpose::STANDARD.encode("[1,2]");
        assert!(AuthConfig::from_header(Some(&not_json)).is_err());
        let bad_host = AuthConfig {
            server_address: "evil host/../".into(),
            ..Default::default()
        };
        assert!(bad_host.registry().is_err());
    }

    #[test]
    fn bearer_challenges() {
        assert_eq!(
            parse_bearer(
                r#"Bearer realm="https://auth.example/token",service="registry.example",scope="a,b""#
            ),
            Some((
                "https://auth.example/token".into(),
                Some("registry.example".into())
            ))
        );
        assert_eq!(parse_bearer(r#"Basic realm="x""#), None);
        assert_eq!(parse_bearer(r#"Bearer realm="file:///etc/passwd""#), None);
    }
}
