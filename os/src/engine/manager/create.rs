//! `create`: a record, no process. The image is resolved now (its ID is kept: a later tag of
//! the same name to another image does not change the container), its config fills what the
//! request left out (Cmd, Entrypoint, Env, WorkingDir, User, StopSignal, Volumes), its mounts
//! are resolved (volumes made: see `mounts`), and the name is checked unique under the lock that
//! inserts it.

use super::record::{self, Config, HostConfig, Record, State};
use super::{id, Entry, Manager, ManagerError, Result};

/// What a client asks for.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    /// Without a leading `/`; `None`: made up.
    pub name: Option<String>,
    pub config: Config,
    pub host: HostConfig,
    /// `NetworkingConfig.EndpointsConfig`: per network, its aliases and address.
    pub endpoints: std::collections::BTreeMap<String, super::ConnectRequest>,
    /// Where the container's writable layer lives (`upper/`, `work/` in it) instead of its own
    /// directory, kept when the container is removed: system services only (the Docker API
    /// never sets it).
    pub upper: Option<std::path::PathBuf>,
}

impl Manager {
    pub fn create(&self, req: CreateRequest) -> Result<Record> {
        let CreateRequest {
            name,
            mut config,
            host,
            endpoints,
            upper,
        } = req;
        if config.image.is_empty() {
            return Err(ManagerError::BadRequest(
                "config cannot be empty in order to create a container".into(),
            ));
        }
        check_host(&host)?;
        let attached = self.attach_at_create(&host, &endpoints)?;
        if let Some(target) = host.network_mode.strip_prefix("container:") {
            self.find(target)?;
        }
        let image = self.store.resolve(&config.image).map_err(|e| match e {
            crate::engine::store::StoreError::NotFound(_) => {
                ManagerError::NoSuchImage(config.image.clone())
            }
            other => other.into(),
        })?;
        let ic = self.store.image_config(&image)?;
        // Docker: an Entrypoint given replaces the image's Cmd too, unless Cmd is given.
        if config.entrypoint.is_empty() {
            config.entrypoint = ic.entrypoint.clone();
            if config.cmd.is_empty() {
                config.cmd = ic.cmd.clone();
            }
        }
        if config.cmd.is_empty() && config.entrypoint.is_empty() {
            return Err(ManagerError::BadRequest("No command specified".into()));
        }
        let mut env = ic.env.clone();
        for e in &config.env {
            let key = e.split('=').next().unwrap_or_default();
            env.retain(|x| x.split('=').next() != Some(key));
            env.push(e.clone());
        }
        config.env = env;
        if config.working_dir.is_empty() {
            config.working_dir = ic.working_dir.clone().unwrap_or_default();
        }
        if config.user.is_empty() {
            config.user = ic.user.clone().unwrap_or_default();
        }
        if config.stop_signal.is_none() {
            config.stop_signal = ic.stop_signal.clone();
        }
        for (k, v) in &ic.labels {
            config.labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
        for p in &ic.exposed_ports {
            config
                .exposed_ports
                .entry(p.clone())
                .or_insert(serde_json::json!({}));
        }
        for p in host.port_bindings.keys() {
            // Docker: a published port is an exposed one.
            let key = if p.contains('/') {
                p.clone()
            } else {
                format!("{p}/tcp")
            };
            config
                .exposed_ports
                .entry(key)
                .or_insert(serde_json::json!({}));
        }
        for v in &ic.volumes {
            config
                .volumes
                .entry(v.clone())
                .or_insert(serde_json::json!({}));
        }
        let (mounts, made) = self.resolve_mounts(&config, &host)?;
        let forget = |m: &Manager| {
            for v in &made {
                let _ = m.volumes.remove(v);
            }
        };
        for l in &host.links {
            let (target, alias) = record::parse_link(l);
            if self.find(&target).is_err() {
                forget(self);
                return Err(ManagerError::BadRequest(format!(
                    "could not get container for {target}"
                )));
            }
            if !id::valid_name(&alias) {
                forget(self);
                return Err(ManagerError::BadRequest(format!(
                    "invalid alias {alias:?} in --link {l:?}"
                )));
            }
        }
        let id = id::new_id();
        if config.hostname.is_empty() {
            config.hostname = if host.uts_mode == "host" {
                nix::unistd::gethostname()
                    .map(|h| h.to_string_lossy().into_owned())
                    .unwrap_or_default()
            } else {
                id[..12].to_string()
            };
        }
        let mut map = self.lock();
        let name = match name.map(|n| n.trim_start_matches('/').to_string()) {
            Some(n) if !n.is_empty() => {
                if !id::valid_name(&n) {
                    forget(self);
                    return Err(ManagerError::BadRequest(format!(
                        "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
                    )));
                }
                if let Some(other) = map.values().find(|e| e.rec.name == n) {
                    forget(self);
                    return Err(ManagerError::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        other.rec.id
                    )));
                }
                n
            }
            _ => id::new_name(|n| map.values().any(|e| e.rec.name == n)),
        };
        let rec = Record {
            id: id.clone(),
            name,
            created: record::now(),
            image_id: image.id.to_string(),
            config,
            host,
            state: State::default(),
            mounts,
            network: record::Lease {
                attached,
                ..Default::default()
            },
            upper,
        };
        let dir = self.dir(&id);
        if let Err(e) = std::fs::create_dir_all(&dir) {
            forget(self);
            return Err(ManagerError::io(&dir, e));
        }
        if let Err(e) = rec.save(&dir) {
            let _ = std::fs::remove_dir_all(&dir);
            forget(self);
            return Err(ManagerError::io(&dir, e));
        }
        let (changed, _) = tokio::sync::watch::channel(0);
        map.insert(
            id.clone(),
            Entry {
                rec: rec.clone(),
                changed,
                pending: Vec::new(),
                busy: false,
            },
        );
        drop(map);
        self.emit(&rec, "create", None, None);
        tracing::info!(id = %rec.id, name = %rec.name, image = %rec.config.image, "created");
        Ok(rec)
    }
}

/// What `start` would refuse anyway, refused at create (Docker checks mounts and the restart
/// policy at create too).
fn check_host(h: &HostConfig) -> Result<()> {
    super::mounts::check(h)?;
    check_names(h)?;
    match h.restart_policy.name.as_str() {
        "" | "no" | "always" | "unless-stopped" | "on-failure" => {}
        other => {
            return Err(ManagerError::BadRequest(format!(
                "invalid restart policy '{other}'"
            )))
        }
    }
    if h.restart_policy.maximum_retry_count > 0 && h.restart_policy.name != "on-failure" {
        return Err(ManagerError::BadRequest(
            "invalid restart policy: maximum retry count can only be used with 'on-failure'".into(),
        ));
    }
    if h.auto_remove && !matches!(h.restart_policy.name.as_str(), "" | "no") {
        return Err(ManagerError::BadRequest(
            "can't create 'AutoRemove' container with restart policy".into(),
        ));
    }
    // Other names are user-defined networks, looked up by `attach_at_create`.
    if h.network_mode == "container:" {
        return Err(ManagerError::BadRequest(
            "invalid network mode \"container:\": a container's name or id must follow".into(),
        ));
    }
    for (key, mode, ok) in [
        ("pid", &h.pid_mode, &["", "host"][..]),
        (
            "ipc",
            &h.ipc_mode,
            &["", "host", "private", "shareable"][..],
        ),
        ("uts", &h.uts_mode, &["", "host"][..]),
    ] {
        if !ok.contains(&mode.as_str()) {
            return Err(ManagerError::BadRequest(format!(
                "invalid {key} mode {mode:?}: only \"host\" or the container's own is supported"
            )));
        }
    }
    for (key, bindings) in &h.port_bindings {
        record::parse_port_key(key).map_err(ManagerError::BadRequest)?;
        for b in bindings {
            b.parse().map_err(ManagerError::BadRequest)?;
        }
    }
    if (!h.port_bindings.is_empty() || h.publish_all_ports)
        && (h.network_mode == "none" || h.network_mode.starts_with("container:"))
    {
        return Err(ManagerError::BadRequest(
            "conflicting options: port publishing and the container type network mode".into(),
        ));
    }
    h.device_mappings().map_err(ManagerError::BadRequest)?;
    // As dockerd: a device that is not there is refused now, not when `run` starts it.
    for d in &h.devices {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::metadata(&d.path_on_host) {
            Ok(m) if m.file_type().is_char_device() || m.file_type().is_block_device() => {}
            Ok(_) => {
                return Err(ManagerError::BadRequest(format!(
                    "error gathering device information while adding custom device {:?}: not a device node",
                    d.path_on_host
                )))
            }
            Err(e) => {
                return Err(ManagerError::BadRequest(format!(
                    "error gathering device information while adding custom device {:?}: {e}",
                    d.path_on_host
                )))
            }
        }
    }
    h.device_rules().map_err(ManagerError::BadRequest)?;
    h.seccomp_unconfined().map_err(ManagerError::BadRequest)?;
    if h.memory < 0 || h.nano_cpus < 0 || h.cpu_shares < 0 {
        return Err(ManagerError::BadRequest(
            "negative resource limits are not allowed".into(),
        ));
    }
    Ok(())
}

/// `--dns` and `--add-host` end up as lines of the container's `/etc/resolv.conf` and
/// `/etc/hosts`: addresses must be addresses and names names (no line of one's own slipped in).
fn check_names(h: &HostConfig) -> Result<()> {
    let bad = |m: String| Err(ManagerError::BadRequest(m));
    for d in &h.dns {
        if d.parse::<std::net::IpAddr>().is_err() {
            return bad(format!("{d:?} is not an ip address (--dns)"));
        }
    }
    for e in &h.extra_hosts {
        let Some((name, ip)) = e.split_once(':') else {
            return bad(format!("invalid host {e:?} (--add-host NAME:IP)"));
        };
        let name_ok = !name.is_empty()
            && name.len() <= 253
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
        if !name_ok || ip.parse::<std::net::IpAddr>().is_err() {
            return bad(format!("invalid host {e:?} (--add-host NAME:IP)"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod name_tests {
    use super::*;

    #[test]
    fn dns_and_extra_hosts_are_addresses_and_names() {
        let mut h = HostConfig {
            dns: vec!["10.0.0.1".into(), "::1".into()],
            extra_hosts: vec!["db:10.0.0.2".into(), "v6.local:fe80::1".into()],
            ..HostConfig::default()
        };
        assert!(check_names(&h).is_ok());
        h.dns = vec!["1.1.1.1\nnameserver 6.6.6.6".into()];
        assert!(check_names(&h).is_err());
        h.dns.clear();
        for bad in [
            "db",
            "db:10.0.0.x",
            "a b:10.0.0.1",
            "db\n1.2.3.4 evil:10.0.0.1",
            ":1.2.3.4",
        ] {
            h.extra_hosts = vec![bad.into()];
            assert!(check_names(&h).is_err(), "{bad}");
        }
    }
}
