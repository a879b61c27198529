//! `POST /images/create` (pull), `POST /images/{name}/push` and `POST /auth` (login): the
//! translation between Docker's API and `engine::registry`.
//!
//! A transfer runs on its own thread; its first message decides the answer: a failure before
//! any progress is an HTTP error with dockerd's status (404 for an unknown image, 401 for
//! refused credentials), so `docker run` of an image that exists nowhere says so plainly; once
//! progress has been sent the status is 200 and a failure ends the stream with Docker's error
//! line.

use super::St;
use crate::engine::api::extract::Query;
use crate::engine::api::{ApiError, ChannelBody};
use crate::engine::registry::auth::{self, AuthConfig};
use crate::engine::registry::progress::error_line;
use crate::engine::registry::{
    pull, push, run_blocking, Progress, ProgressTx, RegistryError, Target,
};
use axum::body::{Body, Bytes};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;
use std::future::Future;

pub(crate) fn reg_err(e: RegistryError) -> ApiError {
    ApiError::new(
        StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        e.to_string(),
    )
}

fn credentials(headers: &HeaderMap) -> Result<AuthConfig, ApiError> {
    let value = headers
        .get("X-Registry-Auth")
        .map(|v| v.to_str())
        .transpose()
        .map_err(|_| ApiError::bad_request("X-Registry-Auth: not ASCII"))?;
    AuthConfig::from_header(value).map_err(reg_err)
}

#[derive(Debug, Default, Deserialize)]
pub struct CreateQuery {
    #[serde(rename = "fromImage")]
    from_image: Option<String>,
    #[serde(rename = "fromSrc")]
    from_src: Option<String>,
    tag: Option<String>,
    platform: Option<String>,
}

/// `POST /images/create?fromImage=…&tag=…`: a pull.
pub async fn create(
    axum::extract::State(api): St,
    Query(q): Query<CreateQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if q.from_src.is_some() {
        return Err(ApiError::bad_request(
            "importing a root filesystem (fromSrc, docker import) is not supported by this engine",
        ));
    }
    if let Some(p) = q.platform.as_deref().filter(|p| !p.is_empty()) {
        if !matches!(p, "linux" | "linux/amd64" | "amd64") {
            return Err(ApiError::bad_request(format!(
                "platform {p:?}: this engine runs linux/amd64 images only"
            )));
        }
    }
    let image = q.from_image.unwrap_or_default();
    let tag = q.tag.unwrap_or_default();
    let last = image.rsplit('/').next().unwrap_or("");
    if tag.is_empty() && !last.contains(':') && !image.contains('@') {
        return Err(ApiError::bad_request(
            "pulling every tag of a repository (--all-tags) is not supported by this engine: name a tag",
        ));
    }
    let target = Target::parse(&image, &tag).map_err(reg_err)?;
    let registry_auth = credentials(&headers)?.registry_auth().map_err(reg_err)?;
    let mgr = api.mgr.clone();
    let regs = api.registries.clone();
    transfer(move |tx| async move {
        pull::pull(&mgr.store, &regs, &target, &registry_auth, &tx).await?;
        mgr.emit_image("pull", &target.display(), &target.repository);
        Ok(())
    })
    .await
}

/// `POST /images/{name}/push?tag=…`.
pub async fn push(
    api: std::sync::Arc<super::Api>,
    name: &str,
    tag: Option<String>,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let tag = tag.unwrap_or_default();
    let target = Target::parse(name, &tag).map_err(reg_err)?;
    if target.reference.digest().is_some() {
        return Err(ApiError::bad_request("push names a tag, not a digest"));
    }
    let local = target.name.clone().unwrap_or_default();
    let image = api.mgr.store.resolve(&local).map_err(|_| {
        ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            target.repository
        ))
    })?;
    let registry_auth = credentials(headers)?.registry_auth().map_err(reg_err)?;
    let mgr = api.mgr.clone();
    let regs = api.registries.clone();
    transfer(move |tx| async move {
        push::push(&mgr.store, &regs, &image, &target, &registry_auth, &tx).await?;
        mgr.emit_image("push", &target.display(), &target.repository);
        Ok(())
    })
    .await
}

/// `POST /auth`: check credentials against a registry (`docker login`).
pub async fn login(
    axum::extract::State(api): St,
    body: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let cfg = AuthConfig::from_json(&body, "the request body").map_err(reg_err)?;
    let regs = api.registries.clone();
    run_blocking(move || async move { auth::login(&regs, &cfg).await })
        .await
        .map_err(reg_err)?;
    Ok(Json(
        json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

/// Run a transfer and answer with its progress (see the module docs).
async fn transfer<F, Fut>(job: F) -> Result<Response, ApiError>
where
    F: FnOnce(ProgressTx) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), RegistryError>> + 'static,
{
    let (ptx, mut prx) = tokio::sync::mpsc::unbounded_channel::<Progress>();
    let mut done = tokio::spawn(run_blocking(move || job(ProgressTx::new(ptx))));
    // The first message, or the end.
    let first = tokio::select! {
        p = prx.recv() => p,
        r = &mut done => {
            let r = r.map_err(|e| ApiError::internal(format!("transfer task: {e}")))?;
            r.map_err(reg_err)?;
            // Done without a word (cannot happen: both verbs report); answer what there is.
            prx.recv().await
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        let mut pending = first;
        while let Some(p) = pending {
            if tx.send(Bytes::from(p.to_line())).await.is_err() {
                // The client went away; the transfer finishes on its own.
                return;
            }
            pending = prx.recv().await;
        }
        // Every sender is gone: the transfer has ended.
        let end = match done.await {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(e) => Some(format!("transfer task: {e}")),
        };
        if let Some(msg) = end {
            tracing::warn!(error = %msg, "image transfer failed");
            let _ = tx.send(Bytes::from(error_line(&msg))).await;
        }
    });
    let mut r = Response::new(Body::from_stream(ChannelBody::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(r.into_response())
}
