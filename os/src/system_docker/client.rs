//! A small blocking HTTP/1.1 client for the engine's socket: one request per connection
//! (`Connection: close`), bodies read as they come (`Content-Length`, chunked, or to EOF), so
//! `logs -f` and `exec` stream. Enough for a CLI, and no async runtime in it.

use serde::de::DeserializeOwned;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;

/// The API version the CLI asks for.
const VERSION_PREFIX: &str = "/v1.41";

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("Cannot connect to the engine at unix://{}: {source}. Is it running?", socket.display())]
    Connect { socket: PathBuf, source: io::Error },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("bad response from the daemon: {0}")]
    Protocol(String),
    /// The daemon's own error (`{"message": …}`).
    #[error("Error response from daemon: {message}")]
    Daemon { status: u16, message: String },
    #[error("{0}")]
    Usage(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ClientError {
    let what = what.into();
    move |source| ClientError::Io { what, source }
}

/// Where the daemon listens.
#[derive(Debug, Clone)]
pub struct Client {
    pub socket: PathBuf,
}

impl Client {
    /// `-H unix:///path` wins, then `DOCKER_HOST`, then the system engine's socket.
    pub fn new(host: Option<&str>) -> Result<Client, ClientError> {
        Client::with_default(host, crate::engine::api::SOCKET)
    }

    /// As [`Client::new`], with another socket when neither `-H` nor `DOCKER_HOST` says.
    pub fn with_default(host: Option<&str>, default: &str) -> Result<Client, ClientError> {
        let env = std::env::var("DOCKER_HOST").ok();
        let host = host.map(str::to_string).or(env);
        let socket = match host.as_deref() {
            None | Some("") => PathBuf::from(default),
            Some(h) => match h.strip_prefix("unix://") {
                Some(p) => PathBuf::from(p),
                None => {
                    return Err(ClientError::Usage(format!(
                        "{h:?}: only unix:///path sockets are supported"
                    )))
                }
            },
        };
        Ok(Client { socket })
    }

    /// Send one request; the response's status and headers are read, its body is left to read.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, u64, &mut dyn Read)>,
    ) -> Result<Response, ClientError> {
        let stream = self.send(method, path, body, false)?;
        Response::read(BufReader::new(stream))
    }

    /// [`Client::request`] without a body, whose reads give up after `timeout` without data
    /// (a follower that must notice, now and then, that nobody reads it any more).
    pub fn request_timeout(
        &self,
        method: &str,
        path: &str,
        timeout: std::time::Duration,
    ) -> Result<Response, ClientError> {
        let stream = self.send(method, path, None, false)?;
        stream
            .set_read_timeout(Some(timeout))
            .map_err(io_err("setting a read timeout"))?;
        Response::read(BufReader::new(stream))
    }

    /// A request that asks to upgrade the connection (`Upgrade: tcp`, as `docker exec` does):
    /// on `101` the raw connection, as a buffered reader (frames may already be buffered) and
    /// a writer (for stdin); any other answer is the daemon's error.
    pub fn upgrade(
        &self,
        method: &str,
        path: &str,
        json: &[u8],
    ) -> Result<(BufReader<UnixStream>, UnixStream), ClientError> {
        let mut body = json;
        let len = body.len() as u64;
        let stream = self.send(
            method,
            path,
            Some(("application/json", len, &mut body)),
            true,
        )?;
        let writer = stream
            .try_clone()
            .map_err(io_err("duplicating the connection"))?;
        let mut reader = BufReader::new(stream);
        let (status, headers) = read_head(&mut reader)?;
        if status == 101 {
            return Ok((reader, writer));
        }
        let resp = Response::with_body(status, headers, reader);
        resp.ok()?;
        Err(ClientError::Protocol(format!(
            "{path}: the daemon did not upgrade the connection ({status})"
        )))
    }

    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<(&str, u64, &mut dyn Read)>,
        upgrade: bool,
    ) -> Result<UnixStream, ClientError> {
        let mut stream =
            UnixStream::connect(&self.socket).map_err(|source| ClientError::Connect {
                socket: self.socket.clone(),
                source,
            })?;
        let mut head = format!(
            "{method} {VERSION_PREFIX}{path} HTTP/1.1\r\nHost: system-docker\r\nUser-Agent: system-docker/{}\r\n{}\r\n",
            env!("CARGO_PKG_VERSION"),
            if upgrade {
                "Connection: Upgrade\r\nUpgrade: tcp"
            } else {
                "Connection: close"
            }
        );
        match &body {
            Some((ctype, len, _)) => head.push_str(&format!(
                "Content-Type: {ctype}\r\nContent-Length: {len}\r\n"
            )),
            None if method == "POST" => head.push_str("Content-Length: 0\r\n"),
            None => {}
        }
        head.push_str("\r\n");
        stream
            .write_all(head.as_bytes())
            .map_err(io_err("sending the request"))?;
        if let Some((_, _, reader)) = body {
            if let Err(e) = io::copy(reader, &mut stream) {
                // The daemon answered before it took the whole body (413, 400) and closed:
                // its answer, already in our receive queue, is what to show.
                if !matches!(
                    e.kind(),
                    io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
                ) {
                    return Err(io_err("sending the request body")(e));
                }
            }
        }
        Ok(stream)
    }

    /// A request whose success is a JSON body; an error status becomes [`ClientError::Daemon`].
    pub fn json<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<T, ClientError> {
        let text = body.map(|b| b.to_string());
        let mut bytes = text.as_deref().unwrap_or("").as_bytes();
        let len = bytes.len() as u64;
        let body = text
            .is_some()
            .then_some(("application/json", len, &mut bytes as &mut dyn Read));
        let resp = self.request(method, path, body)?.ok()?;
        let data = resp.bytes()?;
        serde_json::from_slice(&data).map_err(|e| ClientError::Protocol(format!("{path}: {e}")))
    }

    /// A request with no body of interest: Ok for 2xx and 304.
    pub fn call(&self, method: &str, path: &str) -> Result<u16, ClientError> {
        let resp = self.request(method, path, None)?.ok()?;
        Ok(resp.status)
    }
}

/// A response: status, headers, and the body as a reader.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Box<dyn Read + Send>,
}

impl Response {
    fn read(mut r: BufReader<UnixStream>) -> Result<Response, ClientError> {
        let (status, headers) = read_head(&mut r)?;
        Ok(Response::with_body(status, headers, r))
    }

    fn with_body(
        status: u16,
        headers: Vec<(String, String)>,
        r: BufReader<UnixStream>,
    ) -> Response {
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let body: Box<dyn Read + Send> =
            if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
                Box::new(Chunked::new(r))
            } else if let Some(n) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
                Box::new(r.take(n))
            } else {
                Box::new(r)
            };
        Response {
            status,
            headers,
            body,
        }
    }

    /// The whole body.
    pub fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        let mut out = Vec::new();
        self.body
            .read_to_end(&mut out)
            .map_err(io_err("reading the response body"))?;
        Ok(out)
    }

    /// Copy the body to `out` as it comes (an image archive can be large).
    pub fn copy_to(mut self, out: &mut impl Write) -> Result<u64, ClientError> {
        io::copy(&mut self.body, out).map_err(io_err("copying the response body"))
    }

    /// Itself if the status is a success (2xx, or 304 "nothing to do"); the daemon's message
    /// otherwise.
    pub fn ok(self) -> Result<Response, ClientError> {
        if (200..300).contains(&self.status) || self.status == 304 {
            return Ok(self);
        }
        let status = self.status;
        let body = self.bytes()?;
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).trim().to_string());
        Err(ClientError::Daemon { status, message })
    }
}

/// The status line and headers (names lower-cased).
fn read_head(r: &mut impl BufRead) -> Result<(u16, Vec<(String, String)>), ClientError> {
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(io_err("reading the response"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| ClientError::Protocol(format!("status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line)
            .map_err(io_err("reading the response"))?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok((status, headers))
}

/// `Transfer-Encoding: chunked`, decoded as it is read.
pub struct Chunked<R> {
    inner: R,
    left: u64,
    done: bool,
}

impl<R: BufRead> Chunked<R> {
    pub fn new(inner: R) -> Self {
        Chunked {
            inner,
            left: 0,
            done: false,
        }
    }
}

impl<R: BufRead> Read for Chunked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut line = String::new();
            if self.inner.read_line(&mut line)? == 0 {
                self.done = true;
                return Ok(0);
            }
            let size = line.trim().split(';').next().unwrap_or("");
            self.left = u64::from_str_radix(size, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size {size:?}"),
                )
            })?;
            if self.left == 0 {
                self.done = true;
                // Trailers end with an empty line.
                loop {
                    line.clear();
                    if self.inner.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        return Ok(0);
                    }
                }
            }
        }
        let want = buf.len().min(self.left as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed inside a chunk",
            ));
        }
        self.left -= n as u64;
        if self.left == 0 {
            let mut crlf = String::new();
            self.inner.read_line(&mut crlf)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_bodies_decode_across_chunks() {
        let wire = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\n";
        let mut out = String::new();
        Chunked::new(&wire[..]).read_to_string(&mut out).unwrap();
        assert_eq!(out, "hello, world");
        let cut = b"5\r\nhel";
        assert!(Chunked::new(&cut[..]).read_to_string(&mut out).is_err());
        let bad = b"zz\r\n";
        assert!(Chunked::new(&bad[..]).read_to_string(&mut out).is_err());
    }

    #[test]
    fn hosts_choose_the_socket() {
        assert_eq!(
            Client::new(Some("unix:///tmp/x.sock")).unwrap().socket,
            PathBuf::from("/tmp/x.sock")
        );
        assert!(Client::new(Some("tcp://1.2.3.4:2375")).is_err());
    }
}
