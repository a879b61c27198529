//! PID 1's side of the control API: the [`Engine`] the API thread serves, and the [`Bridge`]
//! the supervisor loop owns.
//!
//! The loop is single-threaded and alone calls `waitpid(-1)`, so every action that spawns, stops
//! or waits on a process is done there: the API thread sends a [`Request`] over a channel and
//! writes the eventfd the loop polls; the loop does it with `SystemServices`' own start/stop
//! logic and answers on a oneshot. Reads never wait for the loop: the loop publishes a snapshot
//! of the services after every round. An exec helper's pid is registered with the bridge, and
//! when the loop reaps it, its exit code goes to the exec's watch channel.

use super::services::{ServiceOpError, SystemServices, STORE_ROOT};
use super::Boot;
use crate::engine::api::{self, ApiError, ContainerInfo, Engine, ExecProcess, ExecSpec, ImageInfo};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Seconds `stop` and `restart` give a service before KILL when the caller names none (Docker's).
const DEFAULT_STOP_TIMEOUT: u64 = 10;

/// What the API asks the supervisor to do.
pub enum Request {
    Start(String, oneshot::Sender<Result<(), ApiError>>),
    Stop(String, Duration, oneshot::Sender<Result<(), ApiError>>),
    Restart(String, Duration, oneshot::Sender<Result<(), ApiError>>),
    Up(String, oneshot::Sender<Result<(), ApiError>>),
    Exec(
        String,
        ExecSpec,
        oneshot::Sender<Result<ExecProcess, ApiError>>,
    ),
}

/// The supervisor's end.
pub struct Bridge {
    requests: mpsc::Receiver<Request>,
    wake: Arc<EventFd>,
    snapshot: Arc<Mutex<Vec<ContainerInfo>>>,
    /// Exec helpers still running: pid → where their exit code goes.
    execs: HashMap<i32, watch::Sender<Option<i32>>>,
    /// Stops, restarts and ups in progress: ticket → who waits for the answer.
    waiting: HashMap<u64, oneshot::Sender<Result<(), ApiError>>>,
    next_ticket: u64,
}

/// The API thread's end.
pub struct SupervisorEngine {
    requests: Mutex<mpsc::Sender<Request>>,
    wake: Arc<EventFd>,
    snapshot: Arc<Mutex<Vec<ContainerInfo>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn op_error(e: ServiceOpError) -> ApiError {
    match e {
        ServiceOpError::NotFound(_) => ApiError::not_found(e.to_string()),
        ServiceOpError::NotRunning(_) => ApiError::conflict(e.to_string()),
        ServiceOpError::Invalid { .. } => ApiError::bad_request(e.to_string()),
        ServiceOpError::Start { .. } => ApiError::internal(e.to_string()),
    }
}

/// Boot step: bind the socket and start the API thread (signals are blocked by now, so the
/// thread inherits the mask and the signalfd keeps receiving them).
pub fn start(boot: &mut Boot) -> anyhow::Result<()> {
    // `/var/run` is where Docker's clients look; our run-time directory is `/run`.
    let var_run = std::path::Path::new("/var/run");
    if std::fs::symlink_metadata(var_run).is_err() {
        std::os::unix::fs::symlink("/run", var_run)
            .map_err(|e| anyhow::anyhow!("symlink /var/run -> /run: {e}"))?;
    }
    let wake = Arc::new(
        EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| anyhow::anyhow!("eventfd: {e}"))?,
    );
    let (tx, rx) = mpsc::channel();
    let snapshot = Arc::new(Mutex::new(boot.services.snapshot()));
    let engine = SupervisorEngine {
        requests: Mutex::new(tx),
        wake: wake.clone(),
        snapshot: snapshot.clone(),
    };
    api::server::spawn(std::path::Path::new(api::SOCKET), api::Api::new(engine))?;
    boot.api = Some(Bridge {
        requests: rx,
        wake,
        snapshot,
        execs: HashMap::new(),
        waiting: HashMap::new(),
        next_ticket: 0,
    });
    Ok(())
}

impl Bridge {
    /// The fd the supervisor polls: readable when requests wait.
    pub fn wake_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.wake.as_fd()
    }

    /// Do every waiting request.
    pub fn serve(&mut self, services: &mut SystemServices, config_timeout: u64) {
        let _ = self.wake.read(); // reset the counter (EAGAIN when already zero: fine)
        let secs = |t: Option<u64>| Duration::from_secs(t.unwrap_or(config_timeout));
        while let Ok(req) = self.requests.try_recv() {
            // Each answer goes out after the snapshot shows its effect, so a client's next read
            // (`stop`, then `ps`) never sees the state from before.
            match req {
                Request::Start(name, reply) => {
                    let r = services.start_service(&name).map_err(op_error);
                    self.publish(services);
                    let _ = reply.send(r);
                }
                // These answer when the stop is done (see `settle`): the loop only records a
                // deadline, so a container that ignores SIGTERM delays nobody else.
                Request::Stop(name, t, reply) => {
                    let ticket = self.ticket(reply);
                    let r = services.begin_stop(&name, t, false, ticket);
                    self.refuse(ticket, r.map_err(op_error));
                }
                Request::Restart(name, t, reply) => {
                    let ticket = self.ticket(reply);
                    let r = services.begin_stop(&name, t, true, ticket);
                    self.refuse(ticket, r.map_err(op_error));
                }
                Request::Up(name, reply) => {
                    let ticket = self.ticket(reply);
                    let r = up(services, &name, secs(None), ticket);
                    self.refuse(ticket, r);
                }
                Request::Exec(name, spec, reply) => {
                    let r = match services.exec(&name, &spec) {
                        Ok((pid, stdin, stdout, stderr)) => {
                            let (tx, rx) = watch::channel(None);
                            self.execs.insert(pid, tx);
                            Ok(ExecProcess {
                                pid,
                                stdin,
                                stdout,
                                stderr,
                                exit: rx,
                            })
                        }
                        Err(e) => Err(op_error(e)),
                    };
                    let _ = reply.send(r);
                }
            }
        }
    }

    /// Keep `reply` until its ticket completes.
    fn ticket(&mut self, reply: oneshot::Sender<Result<(), ApiError>>) -> u64 {
        self.next_ticket += 1;
        self.waiting.insert(self.next_ticket, reply);
        self.next_ticket
    }

    /// A request refused before it began is answered at once.
    fn refuse(&mut self, ticket: u64, r: Result<(), ApiError>) {
        if let Err(e) = r {
            if let Some(reply) = self.waiting.remove(&ticket) {
                let _ = reply.send(Err(e));
            }
        }
    }

    /// After every round of the loop: publish the services, then answer the stops, restarts
    /// and ups that have completed (so a client's next read sees their effect).
    pub fn settle(&mut self, services: &mut SystemServices) {
        self.publish(services);
        for (ticket, r) in services.take_completed() {
            if let Some(reply) = self.waiting.remove(&ticket) {
                let _ = reply.send(r.map_err(op_error));
            }
        }
    }

    /// The supervisor reaped `pid`: true when it was an exec helper (its code is passed on).
    pub fn on_exit(&mut self, pid: i32, code: i32) -> bool {
        match self.execs.remove(&pid) {
            Some(tx) => {
                tracing::debug!(pid, code, "exec ended");
                let _ = tx.send(Some(code));
                true
            }
            None => false,
        }
    }

    /// Publish the services as they are now.
    pub fn publish(&self, services: &SystemServices) {
        *lock(&self.snapshot) = services.snapshot();
    }
}

/// `up`: the configuration as it is on disk now (a `rancherctl service enable` just changed it).
fn up(
    services: &mut SystemServices,
    name: &str,
    timeout: Duration,
    ticket: u64,
) -> Result<(), ApiError> {
    let (config, errors) = crate::config::load_running();
    for e in &errors {
        tracing::warn!(error = %e, "config problem (up)");
    }
    if config.rancher.services_include.get(name) == Some(&false) {
        return Err(ApiError::conflict(format!(
            "service {name} is disabled (rancher.services_include.{name}: false)"
        )));
    }
    services
        .up(name, &config, timeout, ticket)
        .map_err(op_error)
}

impl SupervisorEngine {
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, ApiError>>) -> Request,
    ) -> Result<T, ApiError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.requests)
            .send(make(tx))
            .map_err(|_| ApiError::internal("the supervisor is not taking requests"))?;
        if let Err(e) = self.wake.write(1) {
            tracing::warn!(error = %e, "api: waking the supervisor");
        }
        rx.await
            .map_err(|_| ApiError::internal("the supervisor dropped the request"))?
    }
}

impl Engine for SupervisorEngine {
    fn containers(&self) -> Vec<ContainerInfo> {
        lock(&self.snapshot).clone()
    }

    fn images(&self) -> Result<Vec<ImageInfo>, ApiError> {
        let store = crate::engine::store::Store::open(STORE_ROOT)
            .map_err(|e| ApiError::internal(format!("opening {STORE_ROOT}: {e}")))?;
        let images = store
            .list()
            .map_err(|e| ApiError::internal(format!("listing images: {e}")))?;
        Ok(images
            .iter()
            .map(|i| ImageInfo {
                id: i.id.to_string(),
                names: i.names.clone(),
                created: i
                    .created
                    .as_deref()
                    .and_then(api::time::parse_rfc3339)
                    .unwrap_or(0),
                size: i.layers.iter().map(|l| l.size).sum(),
            })
            .collect())
    }

    async fn load(&self, path: PathBuf) -> Result<Vec<String>, ApiError> {
        // The store is files with atomic renames; loading beside the supervisor is safe.
        let loaded = tokio::task::spawn_blocking(move || {
            let store = crate::engine::store::Store::open(STORE_ROOT)
                .map_err(|e| ApiError::internal(format!("opening {STORE_ROOT}: {e}")))?;
            store
                .load(&path, &crate::engine::store::LoadOptions::default())
                .map_err(|e| ApiError::bad_request(format!("loading images: {e}")))
        })
        .await
        .map_err(|e| ApiError::internal(format!("load task: {e}")))??;
        Ok(loaded
            .iter()
            .map(|l| {
                l.image
                    .names
                    .first()
                    .cloned()
                    .unwrap_or_else(|| l.image.id.to_string())
            })
            .collect())
    }

    async fn start(&self, name: &str) -> Result<(), ApiError> {
        let name = name.to_string();
        self.ask(|tx| Request::Start(name, tx)).await
    }

    async fn stop(&self, name: &str, timeout: Option<u64>) -> Result<(), ApiError> {
        let (name, t) = (name.to_string(), timeout.unwrap_or(DEFAULT_STOP_TIMEOUT));
        self.ask(|tx| Request::Stop(name, Duration::from_secs(t), tx))
            .await
    }

    async fn restart(&self, name: &str, timeout: Option<u64>) -> Result<(), ApiError> {
        let (name, t) = (name.to_string(), timeout.unwrap_or(DEFAULT_STOP_TIMEOUT));
        self.ask(|tx| Request::Restart(name, Duration::from_secs(t), tx))
            .await
    }

    async fn up(&self, name: &str) -> Result<(), ApiError> {
        let name = name.to_string();
        self.ask(|tx| Request::Up(name, tx)).await
    }

    async fn exec(&self, name: &str, spec: ExecSpec) -> Result<ExecProcess, ApiError> {
        let name = name.to_string();
        self.ask(|tx| Request::Exec(name, spec, tx)).await
    }
}
