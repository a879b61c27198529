//! Serving the API: a thread of its own with a current-thread tokio runtime, on a unix socket.
//!
//! Why a thread and not the supervisor's loop: the loop is synchronous (one `poll`) and owns
//! `waitpid(-1)`; the server only reads snapshots and sends requests to it (see
//! `init::api`). The thread is started after PID 1 blocked its signals, so it inherits the mask
//! and every signal still reaches the supervisor's signalfd. Nothing in it forks.

use super::{router, strip_version, Api, Engine};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

/// Why the API could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("{what} {path}: {source}")]
    Io {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("starting the api thread: {0}")]
    Thread(std::io::Error),
}

/// Bind `path` (replacing a stale socket; mode 0660, root's) and serve `api` on it from a new
/// thread. Binding happens here, so a caller learns at once whether the socket is there.
pub fn spawn<E: Engine>(
    path: &Path,
    api: Arc<Api<E>>,
) -> Result<std::thread::JoinHandle<()>, ServeError> {
    let shown = path.display().to_string();
    let io = |what, source| ServeError::Io {
        what,
        path: shown.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io("mkdir for", e))?;
    }
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("removing stale", e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| io("binding", e))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))
        .map_err(|e| io("chmod", e))?;
    listener
        .set_nonblocking(true)
        .map_err(|e| io("set_nonblocking on", e))?;
    std::thread::Builder::new()
        .name("api".into())
        .spawn(move || serve(listener, api, &shown))
        .map_err(ServeError::Thread)
}

fn serve<E: Engine>(listener: UnixListener, api: Arc<Api<E>>, path: &str) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "api: tokio runtime");
            return;
        }
    };
    rt.block_on(async move {
        let listener = match tokio::net::UnixListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, socket = path, "api: listener");
                return;
            }
        };
        tracing::info!(socket = path, "api: serving");
        let app = tower::util::MapRequestLayer::new(strip_version);
        let app = tower::Layer::layer(&app, router(api));
        let svc = axum::ServiceExt::<axum::extract::Request>::into_make_service(app);
        if let Err(e) = axum::serve(listener, svc).await {
            tracing::error!(error = %e, socket = path, "api: server stopped");
        }
    });
}
