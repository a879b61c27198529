//! Who may use the web UI. There are no passwords: `rancherctl ui token` (root on the console)
//! asks for a one-time login token, and only its SHA-256 is kept, with its expiry and whether it
//! is read-only. Logging in with it spends it and opens a session: a random id in a `__Host-`
//! cookie (Secure, HttpOnly, SameSite=Strict; only its hash is kept), which expires after
//! [`IDLE`] without a request and after [`LONGEST`] in any case. Each session has its own
//! form token, which every request that changes something must carry, besides an `Origin` that
//! is this server's. Failed logins are limited per client address.
//!
//! Everything here is in memory: a restart of the UI logs everyone out and voids every token
//! not yet used, which is what an operator restarting it wants.

use sha2::Digest;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The session cookie's name (`__Host-`: Secure, path `/`, no domain, or browsers drop it).
pub const COOKIE: &str = "__Host-ros-session";
/// A session unused this long is over.
pub const IDLE: Duration = Duration::from_secs(15 * 60);
/// No session lasts longer than this.
pub const LONGEST: Duration = Duration::from_secs(12 * 60 * 60);
/// A token's life when none is asked for, and the longest one may ask for.
pub const TOKEN_TTL: Duration = Duration::from_secs(10 * 60);
pub const TOKEN_TTL_MAX: Duration = Duration::from_secs(24 * 60 * 60);
/// Failed logins allowed per client address in [`FAILED_WINDOW`].
pub const FAILED_MAX: usize = 5;
pub const FAILED_WINDOW: Duration = Duration::from_secs(60);
/// At most this many client addresses with failed logins are remembered.
const FAILED_PEERS_MAX: usize = 4096;
/// At most this many tokens wait to be used (older ones go first).
const TOKENS_MAX: usize = 64;
/// At most this many sessions (the least recently used goes first).
const SESSIONS_MAX: usize = 256;

/// What a session may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Names the session in the audit log (the start of its id's hash, not the id).
    pub tag: String,
    /// The id's hash (how the session is found; never the id).
    pub key: String,
    pub read_only: bool,
    /// Every change must carry it (form field `csrf` or header `X-CSRF-Token`).
    pub csrf: String,
}

struct Token {
    expires: Instant,
    read_only: bool,
}

struct Open {
    session: Session,
    started: Instant,
    last: Instant,
    /// What the next page says about the last change (kept here, not in its URL, so that no
    /// link can make the UI say something).
    flash: Option<(String, String)>,
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    #[error("this token is not valid: it is wrong, used already, or expired")]
    BadToken,
    #[error("too many failed logins from this address: wait a minute")]
    TooMany,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, Token>,
    sessions: HashMap<String, Open>,
    failed: HashMap<IpAddr, Vec<Instant>>,
}

/// Tokens, sessions and failed logins.
#[derive(Default)]
pub struct Auth {
    state: Mutex<State>,
}

fn hash(secret: &str) -> String {
    hex::encode(sha2::Sha256::digest(secret.as_bytes()))
}

/// 32 random bytes, hex.
pub fn secret() -> String {
    let mut b = [0u8; 32];
    crate::random::fill(&mut b);
    hex::encode(b)
}

impl Auth {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new one-time token (its only copy is returned).
    pub fn issue(&self, ttl: Duration, read_only: bool, now: Instant) -> String {
        let token = secret();
        let mut s = self.state();
        s.tokens.retain(|_, t| t.expires > now);
        while s.tokens.len() >= TOKENS_MAX {
            let Some(oldest) = s
                .tokens
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            s.tokens.remove(&oldest);
        }
        s.tokens.insert(
            hash(&token),
            Token {
                expires: now + ttl.min(TOKEN_TTL_MAX),
                read_only,
            },
        );
        token
    }

    /// Spend `token`: a new session's id (for the cookie) and the session.
    pub fn login(
        &self,
        token: &str,
        peer: IpAddr,
        now: Instant,
    ) -> Result<(String, Session), LoginError> {
        let mut s = self.state();
        s.failed.retain(|_, times| {
            times.retain(|t| now.duration_since(*t) < FAILED_WINDOW);
            !times.is_empty()
        });
        if s.failed.get(&peer).is_some_and(|f| f.len() >= FAILED_MAX) {
            return Err(LoginError::TooMany);
        }
        let found = s.tokens.remove(&hash(token.trim()));
        let Some(t) = found.filter(|t| t.expires > now) else {
            // Bounded: past this many addresses failing at once, the oldest are forgotten.
            if s.failed.len() >= FAILED_PEERS_MAX && !s.failed.contains_key(&peer) {
                if let Some(oldest) = s
                    .failed
                    .iter()
                    .min_by_key(|(_, t)| t.last().copied())
                    .map(|(k, _)| *k)
                {
                    s.failed.remove(&oldest);
                }
            }
            s.failed.entry(peer).or_default().push(now);
            return Err(LoginError::BadToken);
        };
        let id = secret();
        let h = hash(&id);
        let session = Session {
            tag: h[..12].to_string(),
            key: h.clone(),
            read_only: t.read_only,
            csrf: secret(),
        };
        s.sessions.retain(|_, o| {
            now.duration_since(o.last) < IDLE && now.duration_since(o.started) < LONGEST
        });
        while s.sessions.len() >= SESSIONS_MAX {
            let Some(lru) = s
                .sessions
                .iter()
                .min_by_key(|(_, o)| o.last)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            s.sessions.remove(&lru);
        }
        s.sessions.insert(
            h,
            Open {
                session: session.clone(),
                started: now,
                last: now,
                flash: None,
            },
        );
        Ok((id, session))
    }

    /// The session of a cookie's id, if it is open; using it keeps it open.
    pub fn session(&self, id: &str, now: Instant) -> Option<Session> {
        let mut s = self.state();
        let h = hash(id);
        let open = s.sessions.get_mut(&h)?;
        if now.duration_since(open.last) >= IDLE || now.duration_since(open.started) >= LONGEST {
            s.sessions.remove(&h);
            return None;
        }
        open.last = now;
        Some(open.session.clone())
    }

    /// Leave a note (`ok`, `error`) for the session's next page.
    pub fn set_flash(&self, key: &str, kind: &str, text: &str) {
        if let Some(o) = self.state().sessions.get_mut(key) {
            o.flash = Some((kind.to_string(), text.to_string()));
        }
    }

    /// The note left for this page, once.
    pub fn take_flash(&self, key: &str) -> Option<(String, String)> {
        self.state().sessions.get_mut(key)?.flash.take()
    }

    pub fn logout(&self, id: &str) {
        self.state().sessions.remove(&hash(id));
    }
}

/// The session id in a `Cookie` header.
pub fn cookie_id(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v)
        .filter(|v| !v.is_empty() && v.len() <= 128)
}

/// The `Set-Cookie` value for a session id.
pub fn set_cookie(id: &str) -> String {
    format!("{COOKIE}={id}; Path=/; Secure; HttpOnly; SameSite=Strict")
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie() -> String {
    format!("{COOKIE}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0")
}

/// Whether a change's `Origin` is this server (`https://` + the `Host` it was sent to).
pub fn same_origin(origin: Option<&str>, host: Option<&str>) -> bool {
    match (origin, host) {
        (Some(o), Some(h)) if !h.is_empty() => o == format!("https://{h}"),
        _ => false,
    }
}

/// Constant-time comparison of two tokens.
pub fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> IpAddr {
        "10.0.2.2".parse().unwrap()
    }

    #[test]
    fn a_token_opens_one_session_once() {
        let auth = Auth::default();
        let now = Instant::now();
        let t = auth.issue(TOKEN_TTL, false, now);
        let (id, s) = auth.login(&t, peer(), now).unwrap();
        assert!(!s.read_only);
        assert_eq!(auth.session(&id, now).unwrap(), s);
        assert_eq!(auth.login(&t, peer(), now), Err(LoginError::BadToken));
        auth.logout(&id);
        assert!(auth.session(&id, now).is_none());
    }

    #[test]
    fn tokens_and_sessions_expire() {
        let auth = Auth::default();
        let now = Instant::now();
        let t = auth.issue(Duration::from_secs(60), true, now);
        assert_eq!(
            auth.login(&t, peer(), now + Duration::from_secs(61)),
            Err(LoginError::BadToken)
        );
        let t = auth.issue(Duration::from_secs(60), true, now);
        let (id, s) = auth.login(&t, peer(), now).unwrap();
        assert!(s.read_only);
        assert!(auth.session(&id, now + IDLE / 2).is_some());
        assert!(auth
            .session(&id, now + IDLE / 2 + IDLE / 2 + IDLE / 4)
            .is_some());
        assert!(auth.session(&id, now + IDLE * 3).is_none());
    }

    #[test]
    fn failed_logins_are_limited_per_address() {
        let auth = Auth::default();
        let now = Instant::now();
        for _ in 0..FAILED_MAX {
            assert_eq!(auth.login("nope", peer(), now), Err(LoginError::BadToken));
        }
        let t = auth.issue(TOKEN_TTL, false, now);
        assert_eq!(auth.login(&t, peer(), now), Err(LoginError::TooMany));
        let other: IpAddr = "10.0.2.3".parse().unwrap();
        assert!(auth.login(&t, other, now).is_ok());
        let t = auth.issue(TOKEN_TTL, false, now);
        assert!(auth.login(&t, peer(), now + FAILED_WINDOW).is_ok());
    }

    #[test]
    fn cookies_and_origins() {
        assert_eq!(cookie_id("a=b; __Host-ros-session=xyz"), Some("xyz"));
        assert_eq!(cookie_id("ros-session=xyz"), None);
        assert!(same_origin(
            Some("https://10.0.0.1:9443"),
            Some("10.0.0.1:9443")
        ));
        assert!(!same_origin(
            Some("http://10.0.0.1:9443"),
            Some("10.0.0.1:9443")
        ));
        assert!(!same_origin(
            Some("https://evil.example"),
            Some("10.0.0.1:9443")
        ));
        assert!(!same_origin(None, Some("10.0.0.1:9443")));
        assert!(same_secret("abc", "abc") && !same_secret("abc", "abd") && !same_secret("a", "ab"));
    }
}
