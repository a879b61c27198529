//! A start in two halves: `hold` does everything up to a shim holding the created container
//! (root filesystem, bundle, the runtime's namespaces, mounts and cgroup: most of a start's
//! time under TCG), `start_held` lets its process run. Between the two the container is
//! claimed (no other start, stop or removal), shown as `created`. The system services hold
//! the boot's later services created while the earlier ones run, so that their starts are the
//! last step only; `abandon` undoes a hold that is not wanted any more (the configuration
//! changed the service meanwhile). A held container's shim creates the container at a lower
//! priority ([`HOLD_NICE`]; both go back to 0 at the start), so that it fills the CPU the
//! boot's critical path leaves idle instead of slowing it. Not reachable from the Docker API: a
//! container the API created is started whole.

use super::{shim_client, Manager, Result};
use crate::engine::shim::protocol::Request;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A container whose shim holds it created, not running yet. Hand it to
/// [`Manager::start_held`] or [`Manager::abandon`]: until then the container stays
/// claimed, and a shim kills a container not started within
/// [`crate::engine::shim::START_WITHIN`].
#[must_use = "a held container stays claimed until started or abandoned"]
#[derive(Debug)]
pub struct Held {
    pub(super) id: String,
    pub(super) pid: i32,
    pub(super) leaf: String,
    pub(super) at: Instant,
}

impl Held {
    /// The container's ID.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// How long ago its shim created it.
    pub fn age(&self) -> Duration {
        self.at.elapsed()
    }
}

/// The nice value a held container's shim creates it at: it runs beside the boot's
/// critical path (a DHCP exchange, a run-to-completion service) and must not slow it down.
const HOLD_NICE: i32 = 10;

/// How long an abandoned container's shim gets to report its end.
const ABANDON_WAIT: Duration = Duration::from_secs(10);

impl Manager {
    /// The first half of a start (see the module's docs).
    pub async fn hold(self: &Arc<Self>, name_or_id: &str) -> Result<Held> {
        let id = self.find(name_or_id)?;
        let rec = self.claim(&id)?;
        let r = self.create_claimed(rec, HOLD_NICE).await;
        if r.is_err() {
            self.release(&id);
        }
        r
    }

    /// Bring a container being held (made at [`HOLD_NICE`]) back to nice 0, now that the boot
    /// waits on it: its shim's process group (the shim and the runtime's processes it forked
    /// that are still in it). Whether it was done: `false` while the shim has not said its
    /// group yet (it is being spawned; try again), or for a container not being held.
    pub fn hurry(&self, name_or_id: &str) -> bool {
        let Ok(id) = self.find(name_or_id) else {
            return false;
        };
        let f = self.shim_dir(&id).join(crate::engine::shim::PGRP_FILE);
        let Some(pgrp) = std::fs::read_to_string(&f)
            .ok()
            .and_then(|t| t.trim().parse::<i32>().ok())
            .filter(|p| *p > 1)
        else {
            return false;
        };
        match crate::priority::set_group_nice(pgrp, 0) {
            Ok(()) => tracing::debug!(id, pgrp, "held container hurried"),
            Err(e) => tracing::debug!(id, pgrp, error = %e, "hurrying a held container"),
        }
        true
    }

    /// The second half: the process runs from here on, as after [`Manager::start`].
    pub async fn start_held(self: &Arc<Self>, held: Held) -> Result<()> {
        let id = held.id.clone();
        // Its process group is said for the time it is held only (a pid is reused later).
        let _ = std::fs::remove_file(self.shim_dir(&id).join(crate::engine::shim::PGRP_FILE));
        let r = self.run_created(held).await;
        self.release(&id);
        r
    }

    /// Kill a held container's process before it ran, and leave the container as it was
    /// created (not running, nothing mounted), free for a removal.
    pub async fn abandon(self: &Arc<Self>, held: Held) {
        let id = held.id;
        let shim = self.shim_dir(&id);
        if shim_client::call(&shim, &Request::Kill { signal: 9 })
            .await
            .is_ok()
        {
            let _ =
                tokio::time::timeout(ABANDON_WAIT, shim_client::call(&shim, &Request::Wait)).await;
        }
        let _ = std::fs::remove_dir_all(&shim);
        self.network_down_id(&id).await;
        let dir = self.dir(&id);
        if let Err(e) = crate::engine::rootfs::unmount(&dir) {
            tracing::warn!(id = %id, error = %e, "unmounting an abandoned container's root");
        }
        tracing::info!(id = %id, "held container abandoned");
        self.release(&id);
    }
}
