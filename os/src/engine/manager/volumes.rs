//! The volume verbs that need to know the containers: `volume rm` (refused while a container
//! uses it, as Docker: even a stopped one) and `volume prune` (every volume no container uses).

use super::{Manager, ManagerError, Result};

impl Manager {
    pub fn volume_remove(&self, name: &str, force: bool) -> Result<()> {
        let users = self.volume_users(name);
        if !users.is_empty() {
            return Err(ManagerError::Conflict(format!(
                "remove {name}: volume is in use - [{}]",
                users.join(", ")
            )));
        }
        match self.volumes.remove(name) {
            Err(crate::engine::volume::VolumeError::NotFound(_)) if force => Ok(()),
            r => r.map_err(ManagerError::from),
        }
    }

    /// Remove every volume no container uses; their names and the bytes they held.
    pub fn volume_prune(&self) -> (Vec<String>, u64) {
        let mut deleted = Vec::new();
        let mut bytes = 0;
        for v in self.volumes.list() {
            if !self.volume_users(&v.name).is_empty() {
                continue;
            }
            let size = self.volumes.size(&v.name);
            match self.volumes.remove(&v.name) {
                Ok(()) => {
                    bytes += size;
                    deleted.push(v.name);
                }
                Err(e) => tracing::warn!(volume = %v.name, error = %e, "prune"),
            }
        }
        (deleted, bytes)
    }
}
