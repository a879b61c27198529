//! The datasources' HTTP(S) GET (`cloud-config-url=`, `url:`, `ec2`): the same client as the
//! user engine's registries (reqwest on rustls), trusting the system's CA bundle plus
//! `rancher.docker.ca` (see [`crate::engine::registry::Registries`]), blocking on a
//! current-thread runtime of its own. At most [`MAX_BODY`] bytes are read and at most ten
//! redirects followed; an answer other than 200 or 404 is an error naming the URL.

use crate::engine::registry::Registries;
use std::sync::OnceLock;
use std::time::Duration;

/// A body larger than this is refused (user-data is kilobytes).
pub const MAX_BODY: usize = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: bad URL (http:// or https:// only)")]
    BadUrl { url: String },
    /// The server could not be reached (yet): worth retrying while the network comes up.
    #[error("{url}: {reason}")]
    Io { url: String, reason: String },
    /// The server answered, badly (TLS refused, a status, a body too large): final.
    #[error("{url}: {reason}")]
    Failed { url: String, reason: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
}

/// A client with its trust roots.
pub struct Http {
    client: reqwest::Client,
}

impl Http {
    pub fn new(regs: &Registries) -> Result<Http, String> {
        let client = regs.http_client().map_err(|e| e.to_string())?;
        Ok(Http { client })
    }

    /// GET `url`: `Ok(Some(body))` on 200, `Ok(None)` on 404 (a key the service does not have).
    pub fn get(&self, url: &str, timeout: Duration) -> Result<Option<Vec<u8>>, HttpError> {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(HttpError::BadUrl { url: url.into() });
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| HttpError::Io {
                url: url.into(),
                reason: format!("a runtime: {e}"),
            })?;
        rt.block_on(self.get_async(url, timeout))
    }

    async fn get_async(&self, url: &str, timeout: Duration) -> Result<Option<Vec<u8>>, HttpError> {
        let failed = |reason: String| HttpError::Failed {
            url: url.into(),
            reason,
        };
        let mut res = self
            .client
            .get(url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| classify(url, &e))?;
        match res.status().as_u16() {
            200 => {}
            404 => return Ok(None),
            status => {
                return Err(HttpError::Status {
                    url: url.into(),
                    status,
                })
            }
        }
        if res.content_length().is_some_and(|n| n > MAX_BODY as u64) {
            return Err(failed(format!("the body is larger than {MAX_BODY} bytes")));
        }
        let mut body = Vec::new();
        while let Some(chunk) = res.chunk().await.map_err(|e| classify(url, &e))? {
            if body.len() + chunk.len() > MAX_BODY {
                return Err(failed(format!("the body is larger than {MAX_BODY} bytes")));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Some(body))
    }
}

/// A connection that could not be made is [`HttpError::Io`] (retried); anything else, a TLS
/// failure above all, is final.
fn classify(url: &str, e: &reqwest::Error) -> HttpError {
    let reason = crate::engine::registry::error::chain(e);
    let tls = reason.to_ascii_lowercase().contains("certificate");
    if (e.is_connect() || e.is_timeout()) && !tls {
        HttpError::Io {
            url: url.into(),
            reason,
        }
    } else {
        HttpError::Failed {
            url: url.into(),
            reason,
        }
    }
}

/// GET with the process's client: the running configuration's trust roots, read once.
pub fn get(url: &str, timeout: Duration) -> Result<Option<Vec<u8>>, HttpError> {
    static CLIENT: OnceLock<Result<Http, String>> = OnceLock::new();
    let http = CLIENT.get_or_init(|| {
        let (config, _) = crate::config::load_running();
        let (regs, warnings) = Registries::from_config(
            &config.rancher.docker,
            std::path::Path::new(crate::engine::registry::config::SYSTEM_BUNDLE),
        );
        for w in warnings
            .iter()
            .map(String::as_str)
            .chain(regs.bundle_problem())
        {
            println!("cloud-init: {w}");
        }
        Http::new(&regs)
    });
    match http {
        Ok(h) => h.get(url, timeout),
        Err(e) => Err(HttpError::Failed {
            url: url.into(),
            reason: e.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serve `responses` one connection each on loopback; the base URL.
    fn serve(responses: Vec<String>) -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for r in responses {
                let (mut c, _) = l.accept().unwrap();
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = c.write_all(r.as_bytes());
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    fn http() -> Http {
        Http::new(&Registries::default()).unwrap()
    }

    #[test]
    fn bodies_404s_and_errors() {
        let base = serve(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello".into(),
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
            "HTTP/1.1 500 Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
        ]);
        let t = Duration::from_secs(5);
        let h = http();
        assert_eq!(
            h.get(&format!("{base}/a"), t).unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(h.get(&format!("{base}/b"), t).unwrap(), None);
        let e = h.get(&format!("{base}/c"), t).unwrap_err().to_string();
        assert!(e.ends_with("/c: HTTP 500"), "{e}");
        let big = serve(vec![format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            MAX_BODY + 1
        )]);
        let e = h.get(&format!("{big}/d"), t).unwrap_err();
        assert!(matches!(e, HttpError::Failed { .. }), "{e}");
    }

    #[test]
    fn urls_are_checked_and_unreachable_servers_are_retryable() {
        let h = http();
        let t = Duration::from_secs(5);
        assert!(matches!(
            h.get("ftp://x/", t),
            Err(HttpError::BadUrl { .. })
        ));
        // Nothing listens: a connection error, retried by the caller.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        drop(l);
        let e = h.get(&format!("http://127.0.0.1:{port}/"), t).unwrap_err();
        assert!(matches!(e, HttpError::Io { .. }), "{e}");
    }
}
