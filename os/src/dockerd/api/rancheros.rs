//! `/rancheros/…`: what the Docker API has no word for, served by the system engine only.
//!
//! `POST /rancheros/services/{name}/up`: (re)create a system service from the configuration
//! saved now (the name need not be a container yet: a service just enabled). It runs to its
//! end even when the client goes away (the console's own `up` stops the console).

use super::St;
use crate::engine::api::extract::Path;
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
