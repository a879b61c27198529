//! A repository's tags from its registry (`GET /v2/<name>/tags/list`, the OCI distribution
//! API): what `rancherctl os list` reads when `rancher.upgrade.image` names a repository
//! instead of `rancher.upgrade.url` an index (which tags are versions is
//! [`crate::bootstate::tags`]' business).
//!
//! - Anonymous, as a public pull: a registry that wants a bearer token gets one asked for by
//!   `oci-client` ([`RegistryAuth::Anonymous`]); the trust roots and the plain-HTTP registries
//!   are the engine's ([`Registries`]).
//! - The pages are fetched here, not by `oci-client`'s `list_tags`, which reads a body of any
//!   size and follows no `Link`: each page is at most [`MAX_PAGE_BYTES`], at most [`MAX_TAGS`]
//!   tags and [`MAX_PAGES`] pages are read, and the next page is the `Link: <…>; rel="next"`
//!   of the last one only when it stays on the same registry and repository (the token goes
//!   nowhere else).

use super::error::{chain, RegistryError};
use super::{Registries, Target};
use oci_client::secrets::RegistryAuth;
use oci_client::RegistryOperation;

/// More tags than this is refused (the releases are read from at most as many).
pub const MAX_TAGS: usize = crate::bootstate::releases::MAX_ENTRIES;
/// A page of tags larger than this is refused.
pub const MAX_PAGE_BYTES: usize = 1 << 20;
/// More pages than this is refused.
pub const MAX_PAGES: usize = 100;
/// The tags asked for per page (`?n=`).
const PAGE: usize = 100;

/// One page: `{"name": "…", "tags": […]}` (`tags` is `null` in an empty repository).
#[derive(serde::Deserialize)]
struct Page {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The registry reference of `repository` (`rancher/os`, `10.0.2.100:5000/rancheros/os`): a
/// repository alone, without a tag or digest.
pub fn repository(repository: &str) -> Result<Target, RegistryError> {
    let r = repository.trim();
    if r.contains('@') || super::target::has_tag(r) {
        return Err(RegistryError::BadRequest(format!(
            "{r:?} names a tag or digest: give the repository alone (rancher/os)"
        )));
    }
    Target::parse(r, "")
}

/// Every tag of `repository`, in the registry's order.
pub async fn list(regs: &Registries, repository_name: &str) -> Result<Vec<String>, RegistryError> {
    let target = repository(repository_name)?;
    let registry = target.registry().to_string();
    let name = target.reference.repository().to_string();
    let what = format!("the tags of {}", repository_name.trim());
    let client = regs.oci_client(&registry)?;
    let token = client
        .auth(
            &target.reference,
            &RegistryAuth::Anonymous,
            RegistryOperation::Pull,
        )
        .await
        .map_err(|e| RegistryError::from_oci(e, &what))?;
    let http = regs.http_client()?;
    let origin = format!("{}://{registry}", regs.scheme(&registry));
    let path = format!("/v2/{name}/tags/list");
    let mut url = format!("{origin}{path}?n={PAGE}");
    let mut tags = Vec::new();
    for _ in 0..MAX_PAGES {
        let (page, next) = get_page(&http, &url, token.as_deref(), &what).await?;
        tags.extend(page);
        if tags.len() > MAX_TAGS {
            return Err(RegistryError::Invalid(format!(
                "{what}: more than {MAX_TAGS} tags (name a release index in \
                 rancher.upgrade.url instead)"
            )));
        }
        match next {
            None => return Ok(tags),
            Some(link) => url = next_url(&origin, &path, &link, &what)?,
        }
    }
    Err(RegistryError::Invalid(format!(
        "{what}: more than {MAX_PAGES} pages"
    )))
}

/// [`list`] for a caller without a runtime (`rancherctl`): on a current-thread runtime of its
/// own.
pub fn list_blocking(regs: &Registries, repository: &str) -> Result<Vec<String>, RegistryError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| RegistryError::Transport(format!("a runtime for the tags: {e}")))?;
    rt.block_on(list(regs, repository))
}

/// One page's tags and its `Link` to the next, if any.
async fn get_page(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    what: &str,
) -> Result<(Vec<String>, Option<String>), RegistryError> {
    let mut req = http.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let transport = |e: reqwest::Error| RegistryError::Transport(format!("{what}: {}", chain(&e)));
    let mut res = req.send().await.map_err(transport)?;
    let status = res.status().as_u16();
    match status {
        200 => {}
        404 => {
            return Err(RegistryError::NotFound(format!(
                "{what}: {url} answered 404: no such repository"
            )))
        }
        401 | 403 => {
            return Err(RegistryError::Unauthorized(format!(
                "{what}: {url} answered {status}: the repository is not public (only \
                 anonymous access is tried)"
            )))
        }
        _ => {
            return Err(RegistryError::Transport(format!(
                "{what}: {url} answered {status}"
            )))
        }
    }
    let next = res
        .headers()
        .get_all(reqwest::header::LINK)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(next_link);
    let too_big = || {
        RegistryError::Invalid(format!(
            "{what}: {url}: a page larger than {MAX_PAGE_BYTES} bytes"
        ))
    };
    if res
        .content_length()
        .is_some_and(|n| n > MAX_PAGE_BYTES as u64)
    {
        return Err(too_big());
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(transport)? {
        if body.len() + chunk.len() > MAX_PAGE_BYTES {
            return Err(too_big());
        }
        body.extend_from_slice(&chunk);
    }
    let page: Page = serde_json::from_slice(&body)
        .map_err(|e| RegistryError::Invalid(format!("{what}: {url}: not a list of tags: {e}")))?;
    Ok((page.tags.unwrap_or_default(), next))
}

/// The target of the `rel="next"` link of a `Link` header value (`<url>; rel="next"`, links
/// separated by commas).
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.trim().strip_prefix('<')?.split_once('>')?;
        params
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .any(|(k, v)| {
                k.trim().eq_ignore_ascii_case("rel")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("next")
            })
            .then(|| target.trim().to_string())
    })
}

/// The URL of the next page: `link` relative to `origin` or absolute on it, and on the same
/// `path`; anything else is refused.
fn next_url(origin: &str, path: &str, link: &str, what: &str) -> Result<String, RegistryError> {
    let rest = if link.starts_with('/') {
        link
    } else {
        link.strip_prefix(origin)
            .filter(|r| r.starts_with('/'))
            .unwrap_or("")
    };
    let same = rest
        .strip_prefix(path)
        .is_some_and(|q| q.is_empty() || q.starts_with('?'));
    if !same {
        return Err(RegistryError::Invalid(format!(
            "{what}: the next page is elsewhere ({link:?}), not followed"
        )));
    }
    Ok(format!("{origin}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// Serve on loopback, one connection per request: `answer(request head, port)` gives the
    /// whole response. The port.
    fn serve(answer: impl Fn(&str, u16) -> String + Send + 'static) -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let r = answer(&String::from_utf8_lossy(&req), port);
                let _ = c.write_all(r.as_bytes());
            }
        });
        port
    }

    fn response(status: &str, headers: &[String], body: &str) -> String {
        let mut r = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
        for h in headers {
            r.push_str(h);
            r.push_str("\r\n");
        }
        r.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
        r
    }

    fn list_of(port: u16, repo: &str) -> Result<Vec<String>, RegistryError> {
        list_blocking(&Registries::default(), &format!("127.0.0.1:{port}/{repo}"))
    }

    /// The request line's target (`/v2/…?n=100`).
    fn target(req: &str) -> &str {
        req.split(' ').nth(1).unwrap_or("")
    }

    #[test]
    fn pages_are_followed_with_an_anonymous_token() {
        let port = serve(|req, port| {
            let t = target(req);
            let authed = req
                .lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: Bearer tok"));
            if t.starts_with("/token?") {
                return if t.contains("scope=repository%3Arancheros%2Fos%3Apull") {
                    response("200 OK", &[], r#"{"token":"tok"}"#)
                } else {
                    response("400 Bad Request", &[], "")
                };
            }
            if !authed {
                let challenge = format!(
                    "WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"fake\""
                );
                return response("401 Unauthorized", &[challenge], "{}");
            }
            match t {
                "/v2/" => response("200 OK", &[], "{}"),
                "/v2/rancheros/os/tags/list?n=100" => response(
                    "200 OK",
                    &["Link: </v2/rancheros/os/tags/list?last=4.0.0&n=100>; rel=\"next\"".into()],
                    r#"{"name":"rancheros/os","tags":["latest","4.0.0"]}"#,
                ),
                "/v2/rancheros/os/tags/list?last=4.0.0&n=100" => response(
                    "200 OK",
                    &[],
                    r#"{"name":"rancheros/os","tags":["5.0.0-up"]}"#,
                ),
                _ => response("404 Not Found", &[], "{}"),
            }
        });
        assert_eq!(
            list_of(port, "rancheros/os").unwrap(),
            ["latest", "4.0.0", "5.0.0-up"]
        );
    }

    #[test]
    fn lying_or_unhelpful_registries_are_named() {
        let port = serve(|req, port| match target(req) {
            "/v2/" => response("200 OK", &[], "{}"),
            "/v2/empty/tags/list?n=100" => {
                response("200 OK", &[], r#"{"name":"empty","tags":null}"#)
            }
            "/v2/away/tags/list?n=100" => response(
                "200 OK",
                &["Link: <http://10.9.9.9/v2/away/tags/list?last=a>; rel=\"next\"".into()],
                r#"{"tags":["a"]}"#,
            ),
            "/v2/other/tags/list?n=100" => response(
                "200 OK",
                &[format!(
                    "Link: <http://127.0.0.1:{port}/v2/else/tags/list?last=a>; rel=\"next\""
                )],
                r#"{"tags":["a"]}"#,
            ),
            "/v2/big/tags/list?n=100" => {
                let body = format!(r#"{{"tags":["{}"]}}"#, "a".repeat(MAX_PAGE_BYTES));
                response("200 OK", &[], &body)
            }
            "/v2/many/tags/list?n=100" => {
                let tags: Vec<String> = (0..=MAX_TAGS).map(|i| format!("1.0.{i}")).collect();
                response(
                    "200 OK",
                    &[],
                    &serde_json::json!({ "tags": tags }).to_string(),
                )
            }
            "/v2/loop/tags/list?n=100" | "/v2/loop/tags/list?last=a" => response(
                "200 OK",
                &["Link: </v2/loop/tags/list?last=a>; rel=\"next\"".into()],
                r#"{"tags":[]}"#,
            ),
            "/v2/garbage/tags/list?n=100" => response("200 OK", &[], "<html>"),
            "/v2/private/tags/list?n=100" => response("401 Unauthorized", &[], "{}"),
            _ => response(
                "404 Not Found",
                &[],
                r#"{"errors":[{"code":"NAME_UNKNOWN"}]}"#,
            ),
        });
        assert_eq!(list_of(port, "empty").unwrap(), Vec::<String>::new());
        for (repo, says) in [
            ("away", "the next page is elsewhere (\"http://10.9.9.9/"),
            ("other", "the next page is elsewhere"),
            ("big", "a page larger than 1048576 bytes"),
            ("many", "more than 1000 tags"),
            ("loop", "more than 100 pages"),
            ("garbage", "not a list of tags"),
            ("private", "answered 401: the repository is not public"),
            ("gone", "answered 404: no such repository"),
        ] {
            let e = list_of(port, repo).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("the tags of 127.0.0.1:{port}/{repo}: "))
                    && e.contains(says),
                "{repo}: {says}: {e}"
            );
        }
    }

    #[test]
    fn only_a_repository_is_listed() {
        for r in [
            "rancher/os:1.0",
            "rancher/os@sha256:00",
            "localhost:5000",
            "Rancher/OS",
            "",
        ] {
            let e = repository(r).unwrap_err();
            assert!(matches!(e, RegistryError::BadRequest(_)), "{r}: {e}");
        }
        let t = repository(" 10.0.2.100:5000/rancheros/os ").unwrap();
        assert_eq!(t.registry(), "10.0.2.100:5000");
        assert_eq!(t.reference.repository(), "rancheros/os");
        assert_eq!(
            repository("rancher/os").unwrap().reference.repository(),
            "rancher/os"
        );
    }

    #[test]
    fn link_headers() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=x&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=x&n=2")
        );
        assert_eq!(
            next_link(r#"<http://a/prev>; rel="prev", <http://a/n>; REL=next"#).as_deref(),
            Some("http://a/n")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
        assert_eq!(next_link("garbage"), None);
        let o = "http://r:5000";
        let p = "/v2/a/tags/list";
        assert_eq!(
            next_url(o, p, "/v2/a/tags/list?last=x", "w").unwrap(),
            "http://r:5000/v2/a/tags/list?last=x"
        );
        assert_eq!(
            next_url(o, p, "http://r:5000/v2/a/tags/list?last=x", "w").unwrap(),
            "http://r:5000/v2/a/tags/list?last=x"
        );
        for bad in [
            "http://r:50001/v2/a/tags/list",
            "https://r:5000/v2/a/tags/list",
            "/v2/a/tags/listing",
            "/v2/b/tags/list",
            "//evil/v2/a/tags/list",
            "v2/a/tags/list",
        ] {
            assert!(next_url(o, p, bad, "w").is_err(), "{bad}");
        }
    }
}
