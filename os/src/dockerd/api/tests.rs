//! Routes in-process on a manager with an empty store (no containers can run here: those
//! paths are proven in VMs by harness/tests/user_docker.rs).

use super::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

fn api(dir: &std::path::Path) -> Arc<Api> {
    let mgr = Manager::open(crate::engine::manager::Config::new(
        dir.join("root"),
        dir.join("run"),
        "/docker".into(),
        "/bin/false".into(),
    ))
    .unwrap();
    Api::new(mgr, dir.join("tmp"), Default::default(), None)
}

async fn call(
    api: &Arc<Api>,
    method: &str,
    uri: &str,
    body: &str,
) -> (StatusCode, axum::http::HeaderMap, String) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let r = app(api.clone()).oneshot(req).await.unwrap();
    let status = r.status();
    let headers = r.headers().clone();
    let bytes = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (
        status,
        headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

#[tokio::test]
async fn every_answer_carries_the_version_headers_and_any_prefix_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path());
    for uri in ["/_ping", "/v1.24/_ping", "/v1.51/_ping"] {
        let (s, h, b) = call(&a, "GET", uri, "").await;
        assert_eq!((s, b.as_str()), (StatusCode::OK, "OK"), "{uri}");
        assert_eq!(h["api-version"], API_VERSION);
        assert_eq!(h["ostype"], "linux");
        assert!(h["server"].to_str().unwrap().starts_with("Docker/"));
    }
    let (s, h, b) = call(&a, "GET", "/v1.41/nothing/here", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h["api-version"], API_VERSION);
    assert!(b.contains("\"message\""), "{b}");
}

#[tokio::test]
async fn bad_requests_get_dockers_messages() {
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path());
    let (s, _, b) = call(
        &a,
        "POST",
        "/v1.41/containers/create",
        r#"{"Image":"nosuch","Cmd":["true"]}"#,
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("No such image: nosuch"), "{b}");
    // What is not served is refused, not ignored (checked before the image is looked up).
    for host in [
        r#"{"Tmpfs":{"/run":"size=1m,lowerdir=/etc"}}"#,
        r#"{"RestartPolicy":{"Name":"sometimes"}}"#,
        r#"{"Binds":["bad$name:/x"]}"#,
        r#"{"Binds":["data:relative"]}"#,
        r#"{"Mounts":[{"Type":"tmpfs","Target":"relative"}]}"#,
        r#"{"Mounts":[{"Type":"npipe","Target":"/t"}]}"#,
        r#"{"NetworkMode":"mynet"}"#,
    ] {
        let body = format!(r#"{{"Image":"nosuch","Cmd":["true"],"HostConfig":{host}}}"#);
        let (s, _, b) = call(&a, "POST", "/containers/create", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{host}: {b}");
    }
    let (s, _, b) = call(
        &a,
        "POST",
        "/containers/create?name=-bad",
        r#"{"Image":"nosuch"}"#,
    )
    .await;
    assert_eq!(
        s,
        StatusCode::NOT_FOUND,
        "the image is looked up before the name: {b}"
    );
    let (s, _, b) = call(&a, "POST", "/containers/create", "{not json").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = call(&a, "GET", "/containers/abc/json", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("No such container: abc"), "{b}");
    let (s, _, b) = call(&a, "DELETE", "/containers/abc", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    let (s, _, b) = call(
        &a,
        "GET",
        "/containers/json?filters=%7B%22bogus%22%3A%5B%22x%22%5D%7D",
        "",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
    let (s, _, b) = call(&a, "GET", "/containers/json", "").await;
    assert_eq!((s, b.as_str()), (StatusCode::OK, "[]"));
    let (s, _, b) = call(&a, "GET", "/images/nosuch/json", "").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(b.contains("No such image: nosuch"), "{b}");
    let (s, _, b) = call(&a, "POST", "/images/load", "not a tar").await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{b}");
}

#[tokio::test]
async fn info_and_version_say_what_we_are() {
    let dir = tempfile::tempdir().unwrap();
    let a = api(dir.path());
    let (s, _, b) = call(&a, "GET", "/version", "").await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["ApiVersion"], API_VERSION);
    assert_eq!(v["MinAPIVersion"], MIN_API_VERSION);
    let (_, _, b) = call(&a, "GET", "/info", "").await;
    let v: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!(v["Containers"], 0);
    assert_eq!(v["CgroupVersion"], "2");
}
