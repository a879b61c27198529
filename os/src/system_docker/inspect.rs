//! `system-docker inspect NAME…`: the containers' JSON, as an array (docker's output).

use super::client::{Client, ClientError};
use super::encode;

pub fn inspect(client: &Client, names: &[String]) -> Result<(), ClientError> {
    if names.is_empty() {
        return Err(ClientError::Usage("inspect NAME…".into()));
    }
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for n in names {
        match client.json::<serde_json::Value>(
            "GET",
            &format!("/containers/{}/json", encode(n)),
            None,
        ) {
            Ok(v) => found.push(v),
            Err(ClientError::Daemon { status: 404, .. }) => missing.push(n.clone()),
            Err(e) => return Err(e),
        }
    }
    let text = serde_json::to_string_pretty(&found).unwrap_or_else(|_| "[]".into());
    println!("{text}");
    match missing.as_slice() {
        [] => Ok(()),
        _ => Err(ClientError::Daemon {
            status: 404,
            message: format!("No such object: {}", missing.join(", ")),
        }),
    }
}
