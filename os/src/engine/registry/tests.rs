//! Pulls against a registry of the test's own on loopback (plain HTTP, as loopback is): the
//! bearer-token dance with basic credentials, and registries that lie (wrong bytes, too many
//! bytes, a manifest that is not the digest asked for), after which the store holds nothing
//! from them.

use super::progress::ProgressTx;
use super::pull::pull;
use super::{Registries, RegistryError, Target};
use crate::engine::store::{Digest, Store};
use axum::body::Body;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use oci_client::secrets::RegistryAuth;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

/// What the fake registry serves.
#[derive(Default)]
struct Fake {
    port: u16,
    /// `repo/manifests/ref` and `repo/blobs/digest` → (content type, bytes).
    objects: HashMap<String, (String, Vec<u8>)>,
    /// Ask for a bearer token, given for `u:p` at `/token`.
    bearer: bool,
}

const TOKEN: &str = "tok-123";

async fn serve(fake: Arc<Fake>, uri: Uri, headers: HeaderMap) -> Response {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let path = uri.path();
    if path == "/token" {
        // base64("u:p")
        return if auth == "Basic dTpw" {
            axum::Json(json!({ "token": TOKEN })).into_response()
        } else {
            StatusCode::UNAUTHORIZED.into_response()
        };
    }
    if fake.bearer && auth != format!("Bearer {TOKEN}") {
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"fake\"",
            fake.port
        );
        return (
            StatusCode::UNAUTHORIZED,
            [("www-authenticate", challenge)],
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        )
            .into_response();
    }
    if path == "/v2/" {
        return axum::Json(json!({})).into_response();
    }
    match fake.objects.get(path.trim_start_matches("/v2/")) {
        Some((ct, body)) => {
            ([("content-type", ct.clone())], Body::from(body.clone())).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#,
        )
            .into_response(),
    }
}

/// Start `fake` (its port filled in) on a thread of its own.
fn start(mut fake: Fake) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    fake.port = port;
    let fake = Arc::new(fake);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap| {
                let fake = fake.clone();
                async move { serve(fake, uri, headers).await }
            });
            axum::serve(l, app).await.unwrap();
        });
    });
    port
}

/// An image of one layer holding `/hello` (uncompressed tar): (manifest, config, layer).
fn image(text: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_cksum();
    b.append_data(&mut h, "hello", text.as_bytes()).unwrap();
    let layer = b.into_inner().unwrap();
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "config": { "Cmd": ["cat", "/hello"] },
        "rootfs": { "type": "layers", "diff_ids": [Digest::of(&layer).to_string()] },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": Digest::of(&config).to_string(), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": Digest::of(&layer).to_string(), "size": layer.len() }],
    }))
    .unwrap();
    (manifest, config, layer)
}

/// A fake holding `repo:tag` → the image; `layer_bytes` is what it serves for the layer.
fn fake_with(
    repo: &str,
    tag: &str,
    image: &(Vec<u8>, Vec<u8>, Vec<u8>),
    layer_bytes: Vec<u8>,
) -> Fake {
    let (m, c, l) = image;
    let mut objects = HashMap::new();
    let mt = "application/vnd.oci.image.manifest.v1+json".to_string();
    objects.insert(format!("{repo}/manifests/{tag}"), (mt.clone(), m.clone()));
    objects.insert(
        format!("{repo}/manifests/{}", Digest::of(m)),
        (mt, m.clone()),
    );
    let ob = "application/octet-stream".to_string();
    objects.insert(
        format!("{repo}/blobs/{}", Digest::of(c)),
        (ob.clone(), c.clone()),
    );
    objects.insert(format!("{repo}/blobs/{}", Digest::of(l)), (ob, layer_bytes));
    Fake {
        objects,
        ..Default::default()
    }
}

fn do_pull(
    store: &Store,
    port: u16,
    name: &str,
    auth: RegistryAuth,
) -> Result<super::pull::Pulled, RegistryError> {
    let target = Target::parse(&format!("127.0.0.1:{port}/{name}"), "").unwrap();
    let regs = Registries::default();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(pull(store, &regs, &target, &auth, &ProgressTx::none()))
}

#[test]
fn a_bearer_token_is_asked_for_with_basic_credentials_and_the_image_lands_whole() {
    let img = image("hello from the registry\n");
    let mut fake = fake_with("team/app", "1", &img, img.2.clone());
    fake.bearer = true;
    let port = start(fake);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    // Without credentials: refused, as the registry said.
    let e = do_pull(&store, port, "team/app:1", RegistryAuth::Anonymous).unwrap_err();
    assert_eq!(e.status(), 401, "{e}");
    // With them: a token, then the image.
    let pulled = do_pull(
        &store,
        port,
        "team/app:1",
        RegistryAuth::Basic("u".into(), "p".into()),
    )
    .unwrap();
    let name = format!("127.0.0.1:{port}/team/app:1");
    assert_eq!(pulled.image.names, vec![name.clone()]);
    assert_eq!(
        pulled.image.repo_digests,
        vec![format!("127.0.0.1:{port}/team/app@{}", Digest::of(&img.0))]
    );
    let i = store.resolve(&name).unwrap();
    let lower = store.lower_dirs(&i).unwrap();
    assert_eq!(
        std::fs::read_to_string(lower[0].join("hello")).unwrap(),
        "hello from the registry\n"
    );
    // Again: up to date, nothing fetched.
    let again = do_pull(
        &store,
        port,
        "team/app:1",
        RegistryAuth::Basic("u".into(), "p".into()),
    )
    .unwrap();
    assert!(again.up_to_date);
}

#[test]
fn lying_registries_leave_nothing_in_the_store() {
    let img = image("the real content\n");
    let layer_digest = Digest::of(&img.2);
    // The same length, other bytes.
    let mut forged = img.2.clone();
    let at = forged.len() / 3;
    forged[at] ^= 0xff;
    // More bytes than the manifest says.
    let mut longer = img.2.clone();
    longer.extend_from_slice(&[0u8; 4096]);
    for (what, bytes, words) in [
        ("forged", forged, "digest"),
        ("longer", longer, "sent more than"),
    ] {
        let port = start(fake_with("x/y", "1", &img, bytes));
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let e = do_pull(&store, port, "x/y:1", RegistryAuth::Anonymous).unwrap_err();
        assert!(e.to_string().to_lowercase().contains(words), "{what}: {e}");
        assert!(!store.has_blob(&layer_digest), "{what}");
        assert!(store.list().unwrap().is_empty(), "{what}");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("blobs/sha256"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{what}: {leftovers:?}");
    }
    // Asked by digest, answered with another manifest.
    let other = image("something else\n");
    let mut fake = fake_with("x/y", "1", &img, img.2.clone());
    let wanted = Digest::of(&img.0);
    fake.objects.insert(
        format!("x/y/manifests/{wanted}"),
        (
            "application/vnd.oci.image.manifest.v1+json".into(),
            other.0.clone(),
        ),
    );
    let port = start(fake);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let e = do_pull(
        &store,
        port,
        &format!("x/y@{wanted}"),
        RegistryAuth::Anonymous,
    )
    .unwrap_err();
    assert!(store.list().unwrap().is_empty());
    assert_eq!(e.status(), 500, "{e}");
    // What is not there is a 404 with the registry's words.
    let e = do_pull(&store, port, "x/nothing:1", RegistryAuth::Anonymous).unwrap_err();
    assert_eq!(e.status(), 404, "{e}");
    assert!(e.to_string().contains("manifest unknown"), "{e}");
}
