//! `weight`: set a running container's CPU weight (cgroup v2 `cpu.weight`, 1–10000, default
//! 100) for a while, and give back the one it had.
//!
//! Why: under the CPU controller a process's nice value counts only inside its own cgroup, so
//! the only way to say which container goes first is its cgroup's weight. The boot uses it
//! (`system_services::boot`): the service others wait on goes first until its ready file is
//! written, and the services already started go last until `[ros] ready`.

use super::Manager;

impl Manager {
    /// The container's `cpu.weight`; `None` when it cannot be read (no CPU controller, the
    /// container gone).
    pub fn cpu_weight(&self, id: &str) -> Option<u32> {
        let file = self.cgroup_dir(id).join("cpu.weight");
        std::fs::read_to_string(&file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// Set the container's `cpu.weight` to `weight`; the weight it had, to give back later.
    /// `None` when it cannot be read or set (no CPU controller, the container gone): logged,
    /// nothing changed.
    pub fn set_cpu_weight(&self, id: &str, weight: u32) -> Option<u32> {
        let file = self.cgroup_dir(id).join("cpu.weight");
        let set = self
            .cpu_weight(id)
            .ok_or_else(|| "unreadable".to_string())
            .and_then(|before| {
                std::fs::write(&file, weight.to_string())
                    .map(|()| before)
                    .map_err(|e| e.to_string())
            });
        match set {
            Ok(before) => {
                tracing::debug!(id, before, weight, "cpu weight set");
                Some(before)
            }
            Err(e) => {
                tracing::debug!(id, file = %file.display(), weight, error = %e, "cpu weight not set");
                None
            }
        }
    }
}
