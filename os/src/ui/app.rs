//! The web UI's routes and the guard in front of them. Every page but the login page needs a
//! session; every request that changes something (any method but GET and HEAD) must come from
//! this server's own pages (`Origin`) and carry the session's form token; a read-only session
//! changes nothing. Every change is written to the audit log. Responses forbid framing,
//! caching, referrers to other sites and any script or style not served here.

use super::audit::{self, Audit};
use super::auth::{self, Auth, Session};
use super::backend::Backend;
use super::pages;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;

/// The UI's shared state.
pub struct Ui {
    pub backend: Arc<dyn Backend>,
    pub auth: Auth,
    pub audit: Arc<Audit>,
    /// Live log followers now (each holds a connection to an engine).
    pub followers: AtomicUsize,
}

pub type St = State<Arc<Ui>>;

/// The largest request body taken (a configuration is well below).
const MAX_BODY: usize = 2 << 20;

/// A connection's client address, as the TLS listener saw it.
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub SocketAddr);

impl<'a>
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'a, crate::dockerd::remote::tls::TlsListener>,
    > for Remote
{
    fn connect_info(
        s: axum::serve::IncomingStream<'a, crate::dockerd::remote::tls::TlsListener>,
    ) -> Self {
        Remote(*s.remote_addr())
    }
}

/// The client's address (the guard puts it in every request).
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub IpAddr);

impl Ui {
    pub fn new(backend: Arc<dyn Backend>, dir: &std::path::Path) -> Arc<Ui> {
        Arc::new(Ui {
            backend,
            auth: Auth::default(),
            audit: Arc::new(Audit::new(dir)),
            followers: AtomicUsize::new(0),
        })
    }

    /// Write a change to the audit log.
    pub fn record(&self, session: &Session, peer: Peer, action: &str, target: &str, result: &str) {
        self.record_as(&session.tag, peer, action, target, result);
    }

    /// Write an entry for `tag` (a session's, or `-` for none) to the audit log, off the
    /// runtime's thread (the write is synced) and in order.
    pub fn record_as(&self, tag: &str, peer: Peer, action: &str, target: &str, result: &str) {
        tracing::info!(session = %tag, peer = %peer.0, action, target, result, "ui: audit");
        let entry = audit::Entry {
            time: audit::now(),
            session: tag.to_string(),
            peer: peer.0.to_string(),
            action: action.to_string(),
            target: target.to_string(),
            result: result.to_string(),
        };
        self.audit.submit(entry);
    }
}

/// Run a blocking backend call on the blocking pool.
pub async fn blocking<T: Send + 'static>(
    ui: &Arc<Ui>,
    f: impl FnOnce(&dyn Backend) -> T + Send + 'static,
) -> T {
    let ui = ui.clone();
    match tokio::task::spawn_blocking(move || f(ui.backend.as_ref())).await {
        Ok(t) => t,
        Err(e) => std::panic::resume_unwind(e.into_panic()),
    }
}

pub fn router(ui: Arc<Ui>) -> Router {
    Router::new()
        .route("/", get(pages::overview::show))
        .route("/login", get(pages::login::form).post(pages::login::login))
        .route("/logout", post(pages::login::logout))
        .route("/services", get(pages::services::list))
        .route("/services/{name}", get(pages::services::show))
        .route("/services/{name}/events", get(pages::services::events))
        .route("/services/{name}/{verb}", post(pages::services::act))
        .route("/logs", get(pages::logs::index))
        .route("/logs/{name}", get(pages::logs::show))
        .route("/kernel-log", get(pages::logs::kernel))
        .route("/kernel-log/events", get(pages::logs::kernel_events))
        .route("/containers", get(pages::containers::list))
        .route("/containers/{id}/logs", get(pages::containers::logs))
        .route("/containers/{id}/events", get(pages::containers::events))
        .route("/containers/{id}/{verb}", post(pages::containers::act))
        .route("/config", get(pages::config::show))
        .route("/config/review", post(pages::config::review))
        .route("/config/apply", post(pages::config::apply))
        .route("/config/confirm", post(pages::config::confirm))
        .route("/system", get(pages::system::show))
        .route("/system/{verb}", post(pages::system::act))
        .route("/static/ui.css", get(pages::layout::css))
        .route("/static/ui.js", get(pages::layout::js))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(ui.clone(), guard))
        .layer(axum::middleware::map_response(headers))
        .with_state(ui)
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "no such page").into_response()
}

/// What every response carries.
async fn headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: &'static str| {
        h.insert(k, HeaderValue::from_static(v));
    };
    set(
        h,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    );
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    // Not `no-referrer`: with it browsers send `Origin: null` on the pages' own form posts.
    set(h, header::REFERRER_POLICY, "same-origin");
    set(h, header::CACHE_CONTROL, "no-store");
    r
}

fn public(method: &Method, path: &str) -> bool {
    path == "/login" && (method == Method::GET || method == Method::POST)
        || path.starts_with("/static/") && method == Method::GET
}

fn refuse(status: StatusCode, why: &str) -> Response {
    (status, why.to_string()).into_response()
}

/// Sessions, origins, form tokens, read-only sessions.
async fn guard(State(ui): St, mut req: Request, next: Next) -> Response {
    let peer = req
        .extensions()
        .get::<ConnectInfo<Remote>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0 .0.ip());
    req.extensions_mut().insert(Peer(peer));
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let changes = method != Method::GET && method != Method::HEAD;
    let str_header = |req: &Request, name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    };
    if changes
        && !auth::same_origin(
            str_header(&req, header::ORIGIN).as_deref(),
            str_header(&req, header::HOST).as_deref(),
        )
    {
        return refuse(
            StatusCode::FORBIDDEN,
            "refused: not from this server's pages (Origin)",
        );
    }
    if public(&method, &path) {
        return next.run(req).await;
    }
    let id = str_header(&req, header::COOKIE)
        .as_deref()
        .and_then(auth::cookie_id)
        .map(String::from);
    let Some(session) = id.and_then(|id| ui.auth.session(&id, std::time::Instant::now())) else {
        if method == Method::GET {
            return Redirect::to("/login").into_response();
        }
        return refuse(StatusCode::UNAUTHORIZED, "refused: log in first");
    };
    if changes {
        if session.read_only && path != "/logout" {
            return refuse(StatusCode::FORBIDDEN, "refused: this session is read-only");
        }
        let (req2, token) = match csrf_of(req).await {
            Ok(r) => r,
            Err(r) => return r,
        };
        if !token.is_some_and(|t| auth::same_secret(&t, &session.csrf)) {
            return refuse(
                StatusCode::FORBIDDEN,
                "refused: missing or wrong form token",
            );
        }
        req = req2;
    }
    req.extensions_mut().insert(session);
    next.run(req).await
}

/// The form token of a change: the `X-CSRF-Token` header, or the `csrf` field of a form body
/// (the body is read, and put back for the route).
async fn csrf_of(req: Request) -> Result<(Request, Option<String>), Response> {
    if let Some(t) = req
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
    {
        let t = t.to_string();
        return Ok((req, Some(t)));
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !form {
        return Ok((req, None));
    }
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| refuse(StatusCode::PAYLOAD_TOO_LARGE, "refused: body too large"))?;
    let token = form_urlencoded::parse(&bytes)
        .find(|(k, _)| k == "csrf")
        .map(|(_, v)| v.into_owned());
    Ok((
        Request::from_parts(parts, axum::body::Body::from(bytes)),
        token,
    ))
}

/// The session the guard let through.
pub type Sess = Extension<Session>;
pub type PeerOf = Extension<Peer>;
