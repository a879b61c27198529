//! `/rancheros/…`: what the Docker API has no word for, served by the system engine only.
//!
//! `POST /rancheros/services/{name}/up`: (re)create a system service from the configuration
//! saved now (the name need not be a container yet: a service just enabled). It runs to its
//! end even when the client goes away (the console's own `up` stops the console).
//!
//! `POST /rancheros/services/{name}/upgrade?image=REF[&stable=SECONDS]`: the service onto
//! another image of the store, watched, kept only if it holds (`system_services::upgrade`);
//! 200 with what was done, or the error and where the service is now. It too runs to its end
//! without its client.
//!
//! `POST /rancheros/console/{switch|enable|reset}?name=NAME`: the console verbs
//! (`system_services::console`), to their end without their client too.

use super::St;
use crate::engine::api::extract::{Path, Query};
use crate::engine::api::ApiError;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub async fn up(
    axum::extract::State(api): St,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Some(services) = api.services.clone() else {
        return Err(ApiError::not_found(
            "page not found: services are the system engine's".to_string(),
        ));
    };
    let done = tokio::spawn(async move { services.up(&name).await })
        .await
        .map_err(|e| ApiError::internal(format!("up task: {e}")))?;
    match done {
        Ok(()) => Ok(StatusCode::NO_CONTENT.into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        )),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct UpgradeQuery {
    image: String,
    /// Seconds the service must hold on the new image.
    stable: Option<u64>,
}

pub async fn upgrade(
    axum::extract::State(api): St,
    Path(name): Path<String>,
    Query(q): Query<UpgradeQuery>,
) -> Result<Response, ApiError> {
    let Some(services) = api.services.clone() else {
        return Err(ApiError::not_found(
            "page not found: services are the system engine's".to_string(),
        ));
    };
    let stable = match q.stable.map(std::time::Duration::from_secs) {
        None => crate::system_services::STABLE,
        Some(s) if !s.is_zero() && s <= crate::system_services::MAX_STABLE => s,
        Some(s) => {
            return Err(ApiError::bad_request(format!(
                "stable={}: between 1 and {} seconds",
                s.as_secs(),
                crate::system_services::MAX_STABLE.as_secs()
            )))
        }
    };
    if q.image.trim().is_empty() {
        return Err(ApiError::bad_request("image: empty".to_string()));
    }
    let done = tokio::spawn(async move { services.upgrade(&name, &q.image, stable).await })
        .await
        .map_err(|e| ApiError::internal(format!("upgrade task: {e}")))?;
    match done {
        Ok(upgraded) => Ok(axum::Json(upgraded).into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        )),
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct ConsoleQuery {
    name: String,
}

/// `POST /rancheros/console/{switch|enable|reset}?name=NAME` (`system_services::console`).
pub async fn console(
    axum::extract::State(api): St,
    Path(verb): Path<String>,
    Query(q): Query<ConsoleQuery>,
) -> Result<Response, ApiError> {
    let Some(services) = api.services.clone() else {
        return Err(ApiError::not_found(
            "page not found: services are the system engine's".to_string(),
        ));
    };
    let name = q.name;
    let done = match verb.as_str() {
        "switch" | "enable" => {
            let now = verb == "switch";
            tokio::spawn(async move { services.console_switch(&name, now).await })
                .await
                .map(|r| r.map(|s| axum::Json(s).into_response()))
        }
        "reset" => tokio::spawn(async move { services.console_reset(&name).await })
            .await
            .map(|r| {
                r.map(|layer| axum::Json(serde_json::json!({ "Removed": layer })).into_response())
            }),
        other => {
            return Err(ApiError::not_found(format!(
                "page not found: no console verb {other:?} (switch, enable, reset)"
            )))
        }
    }
    .map_err(|e| ApiError::internal(format!("console task: {e}")))?;
    done.map_err(|e| {
        ApiError::new(
            StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            e.to_string(),
        )
    })
}
