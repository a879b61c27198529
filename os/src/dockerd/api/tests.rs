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
    ] {
        let body = format!(r#"{{"Image":"nosuch","Cmd":["true"],"HostConfig":{host}}}"#);
        let (s, _, b) = call(&a, "POST", "/containers/create", &body).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{host}: {b}");
    }
    // A network it does not have: dockerd's 404, before the image is looked up.
    let body = r#"{"Image":"nosuch","Cmd":["true"],"HostConfig":{"NetworkMode":"mynet"}}"#;
    let (s, _, b) = call(&a, "POST", "/containers/create", body).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{b}");
    assert!(b.contains("network mynet not found"), "{b}");
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

/// User-defined networks through the API, in a network namespace of the test's own: the
/// bridge made and gone with the network, its rules in and out of the engine's table,
/// Docker's answers for what is refused.
#[test]
fn user_defined_networks_are_made_listed_and_removed() {
    crate::engine::network::in_new_netns(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            use crate::engine::network::{ipam::Bip, nft, rtnl::Rtnl, Bridge};
            let dir = tempfile::tempdir().unwrap();
            let mut cfg = crate::engine::manager::Config::new(
                dir.path().join("root"),
                dir.path().join("run"),
                "/docker".into(),
                "/bin/false".into(),
            );
            cfg.network = Some(Bridge::new(Bip::DEFAULT, &dir.path().join("run")));
            let mgr = Manager::open(cfg).unwrap();
            mgr.setup_network().unwrap();
            let a = Api::new(mgr, dir.path().join("tmp"), Default::default(), None);
            let count = || nft::rule_count(nft::Family::Ip, "ros-docker").unwrap().unwrap();
            let base = count();

            let (s, _, b) = call(
                &a,
                "POST",
                "/v1.41/networks/create",
                r#"{"Name":"front","Driver":"bridge","Labels":{"com.example":"x"},"CheckDuplicate":true,"IPAM":{"Driver":"default","Config":[],"Options":{}},"Options":{}}"#,
            )
            .await;
            assert_eq!(s, StatusCode::CREATED, "{b}");
            let id = serde_json::from_str::<serde_json::Value>(&b).unwrap()["Id"]
                .as_str()
                .unwrap()
                .to_string();
            let mut rtnl = Rtnl::open().unwrap();
            assert!(rtnl.index(&format!("br-{}", &id[..12])).unwrap().is_some());
            assert!(count() > base, "the network's rules are in");

            let (s, _, b) = call(&a, "GET", "/networks/front", "").await;
            assert_eq!(s, StatusCode::OK, "{b}");
            let v: serde_json::Value = serde_json::from_str(&b).unwrap();
            assert_eq!(v["Id"], id.as_str());
            assert_eq!(v["IPAM"]["Config"][0]["Subnet"], "172.18.0.0/16");
            assert_eq!(v["Labels"]["com.example"], "x");
            assert_eq!(v["Driver"], "bridge");
            let (_, _, b) = call(&a, "GET", "/networks?filters=%7B%22label%22%3A%5B%22com.example%3Dx%22%5D%7D", "").await;
            let listed: serde_json::Value = serde_json::from_str(&b).unwrap();
            assert_eq!(listed.as_array().unwrap().len(), 1, "{b}");
            let (_, _, b) = call(&a, "GET", "/networks", "").await;
            assert_eq!(serde_json::from_str::<serde_json::Value>(&b).unwrap().as_array().unwrap().len(), 4);

            for (body, status, says) in [
                (r#"{"Name":"front"}"#, StatusCode::CONFLICT, "already exists"),
                (r#"{"Name":"bridge"}"#, StatusCode::CONFLICT, "already exists"),
                (r#"{"Name":"o","IPAM":{"Config":[{"Subnet":"172.18.5.0/24"}]}}"#, StatusCode::BAD_REQUEST, "overlaps"),
                (r#"{"Name":"v6","EnableIPv6":true}"#, StatusCode::BAD_REQUEST, "IPv6"),
                (r#"{"Name":"ov","Driver":"overlay"}"#, StatusCode::NOT_FOUND, "overlay"),
                (r#"{"Name":"bad/name"}"#, StatusCode::BAD_REQUEST, "invalid network name"),
            ] {
                let (s, _, b) = call(&a, "POST", "/networks/create", body).await;
                assert_eq!(s, status, "{body}: {b}");
                assert!(b.contains(says), "{body}: {b}");
            }
            let (s, _, b) = call(&a, "DELETE", "/networks/bridge", "").await;
            assert_eq!(s, StatusCode::FORBIDDEN, "{b}");
            let (s, _, _) = call(&a, "GET", "/networks/nosuch", "").await;
            assert_eq!(s, StatusCode::NOT_FOUND);
            let (s, _, b) = call(&a, "POST", "/networks/front/connect", r#"{"Container":"nosuch"}"#).await;
            assert_eq!(s, StatusCode::NOT_FOUND, "{b}");

            // A second one, pruned with the first gone by rm.
            let (s, _, _) = call(&a, "POST", "/networks/create", r#"{"Name":"spare"}"#).await;
            assert_eq!(s, StatusCode::CREATED);
            let (s, _, b) = call(&a, "DELETE", &format!("/networks/{}", &id[..8]), "").await;
            assert_eq!(s, StatusCode::NO_CONTENT, "{b}");
            assert!(rtnl.index(&format!("br-{}", &id[..12])).unwrap().is_none());
            let (s, _, b) = call(&a, "POST", "/networks/prune", "").await;
            assert_eq!((s, b.contains("spare")), (StatusCode::OK, true), "{b}");
            assert_eq!(count(), base, "no rule left behind");
        });
    });
}
