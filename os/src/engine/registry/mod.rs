//! Registries: `docker pull`, `docker push` and `docker login` for the user engine, through
//! the OCI distribution API (the `oci-client` crate on reqwest and rustls).
//!
//! Why it is shaped this way:
//! - A pull or push runs on a thread of its own with a current-thread tokio runtime of its own
//!   ([`run_blocking`]): blobs are written and layers unpacked with blocking file I/O, which
//!   must not stall the engine's API runtime; progress comes back over a channel as Docker's
//!   JSON messages ([`progress`]).
//! - Nothing from a registry is trusted: the manifest is hashed by us (and must match the digest
//!   asked for), a manifest list is followed to linux/amd64 only, every blob is written through
//!   the store's [`BlobWriter`](crate::engine::store::BlobWriter) and named only when its digest
//!   and size match the descriptor (a blob longer than its descriptor is cut off at once), and
//!   the image enters the store's index by the same prepare-and-commit as `docker load`
//!   (diff_ids checked while unpacking).
//! - TLS is rustls with ring as the process's provider (no C crypto build); the roots are the
//!   system's CA bundle when there is one plus `rancher.docker.ca`, and nothing else
//!   ([`Registries`]). Registries in `rancher.docker.insecure_registry` (and loopback, as in
//!   Docker) are spoken to in plain HTTP.
//! - Credentials come only from the request (`X-Registry-Auth`, [`auth`]) and are never
//!   logged or kept.
//!
//! Files: [`config`] (which registries are insecure, the roots, the clients), [`auth`] (the
//! header, `docker login`), [`target`] (what the user named), [`progress`], [`pull`],
//! [`push`], [`tags`] (a repository's tags, for `rancherctl os list`), [`error`].

pub mod auth;
pub mod config;
pub mod error;
pub mod progress;
pub mod pull;
pub mod push;
pub mod tags;
pub mod target;

pub use config::Registries;
pub use error::RegistryError;
pub use progress::{Progress, ProgressTx};
pub use target::Target;

/// Run `f` on a new thread with a current-thread runtime of its own; the result comes back to
/// the caller's runtime without blocking it.
pub async fn run_blocking<T, F, Fut>(f: F) -> Result<T, RegistryError>
where
    T: Send + 'static,
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<T, RegistryError>>,
{
    tokio::task::spawn_blocking(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| RegistryError::Transport(format!("a runtime for the transfer: {e}")))?;
        rt.block_on(f())
    })
    .await
    .map_err(|e| RegistryError::Transport(format!("the transfer's thread: {e}")))?
}

#[cfg(test)]
mod tests;
