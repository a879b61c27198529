//! The UI's routes in-process, against a fake host: every page, and every refusal (no cookie,
//! a wrong Origin, no form token, an expired or spent token, a read-only session's change).

use super::app::{router, Ui};
use super::backend::*;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Request, StatusCode};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tower::ServiceExt;

#[derive(Default)]
struct Fake {
    calls: Mutex<Vec<String>>,
    /// The kernel's log as it is now.
    kernel: Mutex<String>,
}

impl Fake {
    fn call(&self, c: String) {
        self.calls.lock().unwrap().push(c);
    }
}

const CONFIG: &str = "#cloud-config\nhostname: box\nrancher:\n  debug: false\n";

impl Backend for Fake {
    fn services(&self) -> Result<Vec<Service>, String> {
        Ok(vec![Service {
            name: "ntp".into(),
            image: "ros/busybox:latest".into(),
            state: "running".into(),
            pid: Some(42),
            restarts: 1,
            last_exit: None,
            error: None,
        }])
    }
    fn definition(&self, name: &str) -> Result<String, String> {
        Ok(format!("image: ros/busybox:latest # {name}\n"))
    }
    fn config(&self) -> Result<ConfigView, String> {
        Ok(ConfigView {
            text: CONFIG.into(),
            version: "v1".into(),
            revert_in: None,
        })
    }
    fn config_check(&self, text: &str) -> Result<Applied, ConfigRefused> {
        self.call(format!("check {}", text.len()));
        if text.contains('[') {
            return Err(ConfigRefused::Problems(vec![Problem {
                line: Some(3),
                column: Some(10),
                path: String::new(),
                message: "did not find expected node content".into(),
            }]));
        }
        Ok(Applied {
            changed: vec!["hostname".into()],
            ..Applied::default()
        })
    }
    fn config_apply(&self, text: &str, version: &str) -> Result<Applied, ConfigRefused> {
        self.call(format!(
            "apply {version} {}",
            text.contains("hostname: web1")
        ));
        Ok(Applied {
            changed: vec!["hostname".into()],
            ..Applied::default()
        })
    }
    fn config_confirm(&self) -> Result<(), String> {
        self.call("confirm".into());
        Ok(())
    }
    fn act(&self, engine: Engine, verb: &str, name: &str) -> Result<(), String> {
        self.call(format!("act {engine:?} {verb} {name}"));
        Ok(())
    }
    fn include(&self, name: &str, on: bool) -> Result<Applied, ConfigRefused> {
        self.call(format!("include {name} {on}"));
        Ok(Applied::default())
    }
    fn logs(
        &self,
        engine: Engine,
        name: &str,
        _: usize,
        follow: bool,
    ) -> Result<Box<dyn std::io::Read + Send>, String> {
        let _ = (engine, follow);
        Ok(Box::new(std::io::Cursor::new(format!(
            "{name} line one\n{name} ERROR two\n"
        ))))
    }
    fn boot_log(&self) -> Result<String, String> {
        Ok("step mounts ok 3.0ms\nstep system-services ok 900.0ms\nready 2.500\n".into())
    }
    fn kernel_log(&self) -> Result<String, String> {
        let now = self.kernel.lock().unwrap().clone();
        Ok(if now.is_empty() {
            "[    0.000000] Linux version 6.1\n[    5.140900] virtio_net eth0: up\n".into()
        } else {
            now
        })
    }
    fn containers(&self) -> Result<Vec<Container>, String> {
        Ok(vec![Container {
            id: "abc".into(),
            name: "web".into(),
            image: "nginx".into(),
            state: "running".into(),
            status: "Up 2 minutes".into(),
        }])
    }
    fn images(&self) -> Result<Vec<Image>, String> {
        Ok(vec![Image {
            id: "sha256:0123456789abcdef0123".into(),
            tags: vec!["nginx:latest".into()],
            size: 1_000_000,
        }])
    }
    fn power(&self, verb: &str) -> Result<(), String> {
        self.call(format!("power {verb}"));
        Ok(())
    }
    fn os_read(&self, verb: &str) -> Result<String, String> {
        match verb {
            "version" => Ok("version: 1.0.0-v1\nslot: SLOT_A\n".into()),
            _ => Err("rancher.upgrade: neither url nor image is set".into()),
        }
    }
    fn os_change(&self, verb: &str, image: &str) -> Result<Box<dyn std::io::Read + Send>, String> {
        self.call(format!("os {verb} {image}"));
        Ok(Box::new(std::io::Cursor::new(format!(
            "upgrading to <2.0.0> from {image}\nSLOT_B holds 2.0.0 and boots next, on trial\n[exit 0]\n"
        ))))
    }
}

const HOST: &str = "10.0.0.5:9443";
const ORIGIN: &str = "https://10.0.0.5:9443";

struct T {
    ui: Arc<Ui>,
    fake: Arc<Fake>,
    _dir: tempfile::TempDir,
}

fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(Fake::default());
    let ui = Ui::new(fake.clone(), dir.path());
    T {
        ui,
        fake,
        _dir: dir,
    }
}

struct Answer {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: String,
}

fn send(t: &T, req: Request<Body>) -> Answer {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = req;
        req.extensions_mut().insert(ConnectInfo(super::app::Remote(
            "10.0.2.2:5555".parse::<SocketAddr>().unwrap(),
        )));
        let r = router(t.ui.clone()).oneshot(req).await.unwrap();
        let status = r.status();
        let headers = r.headers().clone();
        let body = axum::body::to_bytes(r.into_body(), 1 << 22).await.unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
}

fn get(path: &str, cookie: Option<&str>) -> Request<Body> {
    let mut b = Request::get(path).header(header::HOST, HOST);
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-ros-session={c}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post(path: &str, cookie: Option<&str>, origin: Option<&str>, form: &str) -> Request<Body> {
    let mut b = Request::post(path)
        .header(header::HOST, HOST)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(c) = cookie {
        b = b.header(header::COOKIE, format!("__Host-ros-session={c}"));
    }
    if let Some(o) = origin {
        b = b.header(header::ORIGIN, o);
    }
    b.body(Body::from(form.to_string())).unwrap()
}

/// Log in with a fresh token: the session id and its form token.
fn login(t: &T, read_only: bool) -> (String, String) {
    let token =
        t.ui.auth
            .issue(Duration::from_secs(60), read_only, Instant::now());
    let a = send(
        t,
        post("/login", None, Some(ORIGIN), &format!("token={token}")),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let cookie = a.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    for attr in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attr), "{cookie}");
    }
    let id = cookie
        .strip_prefix("__Host-ros-session=")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let csrf = t.ui.auth.session(&id, Instant::now()).unwrap().csrf;
    (id, csrf)
}

#[test]
fn every_page_needs_a_session_and_renders_with_one() {
    let t = setup();
    let a = send(&t, get("/", None));
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.headers[header::LOCATION], "/login");
    assert_eq!(
        send(&t, get("/login?token=abc", None)).status,
        StatusCode::OK
    );
    assert_eq!(send(&t, get("/static/ui.js", None)).status, StatusCode::OK);
    let (id, _) = login(&t, false);
    for (path, wants) in [
        ("/", "boot-chart"),
        ("/services", "ros/busybox:latest"),
        ("/services/ntp", "restarts 1"),
        ("/logs", "/logs/ntp"),
        ("/kernel-log?filter=virtio", "virtio_net eth0: up"),
        ("/logs/ntp?filter=error", "ntp ERROR two"),
        ("/containers", "nginx:latest"),
        ("/containers/web/logs", "web line one"),
        ("/config", "hostname: box"),
        ("/system", "version: 1.0.0-v1"),
    ] {
        let a = send(&t, get(path, Some(&id)));
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert!(a.body.contains(wants), "{path}: {wants} not in {}", a.body);
        let csp = a.headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    }
    let filtered = send(&t, get("/logs/ntp?filter=error", Some(&id))).body;
    assert!(
        !filtered.contains("ntp line one"),
        "the filter leaves other lines out"
    );
    let a = send(&t, get("/logs/ntp?download=1", Some(&id)));
    assert!(a.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("attachment"));
    assert_eq!(
        send(&t, get("/services/..%2Fetc", Some(&id))).status,
        StatusCode::BAD_REQUEST
    );
}

#[test]
fn changes_are_refused_without_cookie_origin_or_form_token() {
    let t = setup();
    let (id, csrf) = login(&t, false);
    let form = format!("csrf={csrf}");
    let a = send(&t, post("/services/ntp/restart", None, Some(ORIGIN), &form));
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = send(
        &t,
        post(
            "/services/ntp/restart",
            Some(&id),
            Some("https://evil.example"),
            &form,
        ),
    );
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(&t, post("/services/ntp/restart", Some(&id), None, &form));
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(
        &t,
        post(
            "/services/ntp/restart",
            Some(&id),
            Some(ORIGIN),
            "csrf=nope",
        ),
    );
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    let a = send(
        &t,
        post("/services/ntp/restart", Some(&id), Some(ORIGIN), ""),
    );
    assert_eq!(a.status, StatusCode::FORBIDDEN);
    assert!(
        t.fake.calls.lock().unwrap().is_empty(),
        "nothing reached the host"
    );
    let a = send(
        &t,
        post("/services/ntp/restart", Some(&id), Some(ORIGIN), &form),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let a = send(
        &t,
        post("/containers/web/rm", Some(&id), Some(ORIGIN), &form),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        *t.fake.calls.lock().unwrap(),
        ["act System restart ntp", "act User rm web"]
    );
    // The audit line is written by the log's writer thread: it may land just
    // after the answer.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let audit = loop {
        let audit = std::fs::read_to_string(t.ui.audit.path()).unwrap_or_default();
        let both = audit.contains("\"target\":\"ntp\"") && audit.contains("\"action\":\"login\"");
        if both || std::time::Instant::now() >= deadline {
            break audit;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(
        audit.contains("\"action\":\"service restart\"") && audit.contains("\"target\":\"ntp\""),
        "{audit}"
    );
    assert!(audit.contains("\"action\":\"login\""));
    assert!(
        !audit.contains(&id),
        "the audit log never holds a session id"
    );
}

#[test]
fn spent_expired_and_wrong_tokens_are_refused() {
    let t = setup();
    let a = send(&t, post("/login", None, Some(ORIGIN), "token=wrong"));
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.body.contains("not valid"));
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    let old = Instant::now() - Duration::from_secs(120);
    let token = t.ui.auth.issue(Duration::from_secs(60), false, old);
    let a = send(
        &t,
        post("/login", None, Some(ORIGIN), &format!("token={token}")),
    );
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "an expired token");
    let token =
        t.ui.auth
            .issue(Duration::from_secs(60), false, Instant::now());
    let a = send(
        &t,
        post(
            "/login",
            None,
            Some("https://evil.example"),
            &format!("token={token}"),
        ),
    );
    assert_eq!(a.status, StatusCode::FORBIDDEN, "a login from another site");
    let a = send(
        &t,
        post("/login", None, Some(ORIGIN), &format!("token={token}")),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let a = send(
        &t,
        post("/login", None, Some(ORIGIN), &format!("token={token}")),
    );
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "a spent token");
}

#[test]
fn a_read_only_session_reads_and_changes_nothing() {
    let t = setup();
    let (id, csrf) = login(&t, true);
    assert_eq!(send(&t, get("/config", Some(&id))).status, StatusCode::OK);
    for path in [
        "/services/ntp/restart",
        "/config/apply",
        "/system/reboot",
        "/containers/web/stop",
    ] {
        let a = send(
            &t,
            post(
                path,
                Some(&id),
                Some(ORIGIN),
                &format!("csrf={csrf}&text=x&version=v1"),
            ),
        );
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{path}");
    }
    assert!(t.fake.calls.lock().unwrap().is_empty());
    let a = send(
        &t,
        post("/logout", Some(&id), Some(ORIGIN), &format!("csrf={csrf}")),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        send(&t, get("/config", Some(&id))).status,
        StatusCode::SEE_OTHER
    );
}

#[test]
fn an_upgrade_streams_its_progress_escaped_and_a_bad_image_never_reaches_the_host() {
    let t = setup();
    let (id, csrf) = login(&t, false);
    let a = send(
        &t,
        post(
            "/system/upgrade",
            Some(&id),
            Some(ORIGIN),
            &format!("csrf={csrf}&image=%2Fdev%2Fvdb"),
        ),
    );
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        a.body.contains("upgrading to &lt;2.0.0&gt; from /dev/vdb"),
        "{}",
        a.body
    );
    assert!(
        a.body.contains("id=\"reboot\""),
        "a reboot is offered: {}",
        a.body
    );
    let a = send(
        &t,
        post(
            "/system/upgrade",
            Some(&id),
            Some(ORIGIN),
            &format!("csrf={csrf}&image=-f"),
        ),
    );
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert_eq!(*t.fake.calls.lock().unwrap(), ["os upgrade /dev/vdb"]);
}

#[test]
fn the_editor_reviews_then_applies_and_shows_problems_at_their_line() {
    let t = setup();
    let (id, csrf) = login(&t, false);
    let enc = |s: &str| crate::system_docker::encode(s);
    let bad = "#cloud-config\nhostname: web1\nrancher: [\n";
    let a = send(
        &t,
        post(
            "/config/review",
            Some(&id),
            Some(ORIGIN),
            &format!("csrf={csrf}&version=v1&text={}", enc(bad)),
        ),
    );
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.body.contains("line 3, column 10"), "{}", a.body);
    assert!(
        !a.body.contains("id=\"apply\""),
        "no apply for a text with problems"
    );
    let good = CONFIG.replace("hostname: box", "hostname: web1");
    let a = send(
        &t,
        post(
            "/config/review",
            Some(&id),
            Some(ORIGIN),
            &format!("csrf={csrf}&version=v1&text={}", enc(&good)),
        ),
    );
    assert!(
        a.body.contains("- hostname: box") && a.body.contains("+ hostname: web1"),
        "{}",
        a.body
    );
    assert!(a.body.contains("id=\"apply\""));
    let a = send(
        &t,
        post(
            "/config/apply",
            Some(&id),
            Some(ORIGIN),
            &format!("csrf={csrf}&version=v1&text={}", enc(&good)),
        ),
    );
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let calls = t.fake.calls.lock().unwrap().clone();
    assert_eq!(calls.last().unwrap(), "apply v1 true", "{calls:?}");
}

#[test]
fn a_followed_log_arrives_as_server_sent_events() {
    let t = setup();
    let (id, _) = login(&t, false);
    *t.fake.kernel.lock().unwrap() = "[    5.140900] virtio_net eth0: up\n".into();
    let fake = t.fake.clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut req = get("/kernel-log/events", Some(&id));
        req.extensions_mut().insert(ConnectInfo(super::app::Remote(
            "10.0.2.2:5555".parse::<SocketAddr>().unwrap(),
        )));
        let r = router(t.ui.clone()).oneshot(req).await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(500));
            fake.kernel
                .lock()
                .unwrap()
                .push_str("[    9.000000] a record\n");
        });
        let mut body = r.into_body().into_data_stream();
        use futures_util::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .unwrap();
        let text = String::from_utf8_lossy(&chunk).into_owned();
        assert!(
            text.contains("event: log") && text.contains("a record"),
            "{text}"
        );
        assert!(
            !text.contains("virtio_net"),
            "what was there is the page's: {text}"
        );
    });
    assert_eq!(t.ui.followers.load(std::sync::atomic::Ordering::SeqCst), 1);
}
