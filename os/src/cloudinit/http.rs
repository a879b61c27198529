//! A small blocking HTTP/1.0 GET, enough for metadata services and `cloud-config-url`: no TLS
//! (an `https://` URL is refused with a clear error rather than fetched insecurely), no
//! redirects beyond a few `Location` hops, bodies read to the end of the connection. HTTP/1.0
//! keeps servers from answering in chunks.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: only http:// URLs are supported (no TLS in the initrd)")]
    Scheme { url: String },
    #[error("{url}: bad URL")]
    BadUrl { url: String },
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: malformed response")]
    Malformed { url: String },
}

/// `http://host[:port]/path` split.
fn split(url: &str) -> Result<(String, u16, String), HttpError> {
    let rest = match url.strip_prefix("http://") {
        Some(r) => r,
        None if url.starts_with("https://") => return Err(HttpError::Scheme { url: url.into() }),
        None => return Err(HttpError::BadUrl { url: url.into() }),
    };
    let (hostport, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse()
                .map_err(|_| HttpError::BadUrl { url: url.into() })?,
        ),
        None => (hostport, 80),
    };
    if host.is_empty() {
        return Err(HttpError::BadUrl { url: url.into() });
    }
    Ok((host.to_string(), port, path.to_string()))
}

/// GET `url`: `Ok(Some(body))` on 200, `Ok(None)` on 404 (a key the service does not have).
pub fn get(url: &str, timeout: Duration) -> Result<Option<Vec<u8>>, HttpError> {
    let mut url = url.to_string();
    for _ in 0..4 {
        match get_once(&url, timeout)? {
            Reply::Body(b) => return Ok(Some(b)),
            Reply::NotFound => return Ok(None),
            Reply::Redirect(to) => url = to,
        }
    }
    Err(HttpError::Malformed { url })
}

enum Reply {
    Body(Vec<u8>),
    NotFound,
    Redirect(String),
}

fn get_once(url: &str, timeout: Duration) -> Result<Reply, HttpError> {
    let (host, port, path) = split(url)?;
    let io = |source| HttpError::Io {
        url: url.to_string(),
        source,
    };
    let addr = (host.as_str(), port)
        .to_socket_addrs()
        .map_err(io)?
        .next()
        .ok_or_else(|| HttpError::BadUrl { url: url.into() })?;
    let mut s = TcpStream::connect_timeout(&addr, timeout).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ros-cloud-init\r\nAccept: */*\r\n\r\n"
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    match s.read_to_end(&mut raw) {
        Ok(_) => parse(url, &raw),
        // A server that closes with a reset after a whole answer (unread bytes of ours in its
        // buffer) still answered.
        Err(e) if !raw.is_empty() => parse(url, &raw).map_err(|_| io(e)),
        Err(e) => Err(io(e)),
    }
}

fn parse(url: &str, raw: &[u8]) -> Result<Reply, HttpError> {
    let malformed = || HttpError::Malformed { url: url.into() };
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(malformed)?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(malformed)?;
    let header = |name: &str| {
        head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    let body = raw[end + 4..].to_vec();
    match status {
        200 => Ok(Reply::Body(match header("content-length") {
            Some(n) => body[..n.parse::<usize>().unwrap_or(body.len()).min(body.len())].to_vec(),
            None => body,
        })),
        404 => Ok(Reply::NotFound),
        301 | 302 | 303 | 307 | 308 => header("location")
            .map(Reply::Redirect)
            .ok_or_else(malformed),
        s => Err(HttpError::Status {
            url: url.into(),
            status: s,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// Serve `responses` one connection each on loopback; the base URL.
    fn serve(responses: Vec<&'static str>) -> String {
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
                c.write_all(r.as_bytes()).unwrap();
            }
        });
        format!("http://127.0.0.1:{port}")
    }

    #[test]
    fn bodies_404s_and_redirects() {
        let base = serve(vec![
            "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            "HTTP/1.0 404 Not Found\r\n\r\n",
        ]);
        let t = Duration::from_secs(5);
        assert_eq!(
            get(&format!("{base}/a"), t).unwrap(),
            Some(b"hello".to_vec())
        );
        assert_eq!(get(&format!("{base}/b"), t).unwrap(), None);
        let base2 = serve(vec!["HTTP/1.0 500 Oops\r\n\r\n"]);
        let e = get(&format!("{base2}/c"), t).unwrap_err().to_string();
        assert!(e.ends_with("/c: HTTP 500"), "{e}");
    }

    #[test]
    fn urls_are_checked() {
        assert!(matches!(split("https://x/"), Err(HttpError::Scheme { .. })));
        assert!(matches!(split("ftp://x/"), Err(HttpError::BadUrl { .. })));
        assert_eq!(
            split("http://169.254.169.254/latest/user-data").unwrap(),
            ("169.254.169.254".into(), 80, "/latest/user-data".into())
        );
        assert_eq!(
            split("http://h:8080").unwrap(),
            ("h".into(), 8080, "/".into())
        );
    }
}
