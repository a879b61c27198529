//! A service as a container: the compose entry ([`ServiceSpec`]) turned into the manager's
//! create request, in Docker's own terms (Config and HostConfig), so a system service is a
//! container like any other to the engine and to `system-docker inspect`.

use crate::engine::manager::record::{DeviceRequest, RestartPolicy};
use crate::engine::manager::{ContainerConfig, CreateRequest, HostConfig};
use crate::services::{NsMode, ServiceSpec, Volume};
use std::collections::BTreeMap;
use std::path::Path;

/// The create request of `spec`; `environment` gives the values of `environment` keys listed
/// without one (`rancher.environment`).
pub fn request(spec: &ServiceSpec, environment: &BTreeMap<String, String>) -> CreateRequest {
    let mut c = ContainerConfig {
        image: spec.image.clone(),
        labels: spec.labels.clone(),
        working_dir: spec.working_dir.clone().unwrap_or_default(),
        user: spec.user.clone().unwrap_or_default(),
        stop_signal: spec.stop_signal.clone(),
        ..ContainerConfig::default()
    };
    // The image's Entrypoint and Cmd fill what is left out (the manager does it as Docker).
    if let Some(e) = &spec.entrypoint {
        c.entrypoint = e.clone();
    }
    if let Some(cmd) = &spec.command {
        c.cmd = cmd.clone();
    }
    if spec.uts != NsMode::Host {
        c.hostname = spec.name.clone();
    }
    for (k, v) in &spec.environment {
        match v.clone().or_else(|| environment.get(k).cloned()) {
            Some(v) => c.env.push(format!("{k}={v}")),
            None => tracing::debug!(service = %spec.name, key = %k, "environment key has no value"),
        }
    }
    let mut h = HostConfig {
        privileged: spec.privileged,
        readonly_rootfs: spec.read_only,
        cap_add: spec.cap_add.clone(),
        cap_drop: spec.cap_drop.clone(),
        volumes_from: spec.volumes_from.clone(),
        device_cgroup_rules: spec.device_rules.clone(),
        restart_policy: RestartPolicy {
            name: spec.restart.to_string(),
            maximum_retry_count: 0,
        },
        memory: spec.mem_limit.map(|m| m as i64).unwrap_or(0),
        nano_cpus: spec.cpus.map(|c| (c * 1e9) as i64).unwrap_or(0),
        cpu_shares: spec.cpu_shares.map(|c| c as i64).unwrap_or(0),
        pids_limit: spec.pids_limit.map(|p| p as i64).unwrap_or(0),
        init: spec.init.then_some(true),
        ..HostConfig::default()
    };
    // A service's own network namespace is loopback only (RancherOS's system services had no
    // bridge either): `none`, not the user engine's `bridge`.
    h.network_mode = mode(spec.net, "none");
    h.pid_mode = mode(spec.pid, "");
    h.ipc_mode = mode(spec.ipc, "");
    h.uts_mode = mode(spec.uts, "");
    if spec.seccomp_unconfined {
        h.security_opt.push("seccomp=unconfined".into());
    }
    h.devices = spec
        .devices
        .iter()
        .map(|d| DeviceRequest {
            path_on_host: d.host.display().to_string(),
            path_in_container: d.container.display().to_string(),
            cgroup_permissions: d.access.clone(),
        })
        .collect();
    for v in &spec.volumes {
        match v {
            Volume::Bind {
                host,
                container,
                read_only,
            } => h.binds.push(format!(
                "{host}:{container}{}",
                if *read_only { ":ro" } else { "" }
            )),
            Volume::Anonymous { container } => {
                c.volumes.insert(container.clone(), serde_json::json!({}));
            }
        }
    }
    // The kernel command line without PID 1's arguments (after `--`), when it had some.
    if Path::new(crate::cmdline::SANITIZED_PATH).exists() {
        h.binds.push(format!(
            "{}:/proc/cmdline:ro",
            crate::cmdline::SANITIZED_PATH
        ));
    }
    CreateRequest {
        name: Some(spec.name.clone()),
        config: c,
        host: h,
        endpoints: Default::default(),
        upper: spec.upper.clone(),
    }
}

fn mode(m: NsMode, private: &str) -> String {
    match m {
        NsMode::Host => "host".into(),
        NsMode::Private => private.into(),
    }
}

/// Make the host directories a service binds that are not there yet (compose and Docker's
/// `-v` do the same); a problem is the service's to report.
pub fn make_bind_sources(spec: &ServiceSpec) -> Result<(), String> {
    for v in &spec.volumes {
        if let Volume::Bind { host, .. } = v {
            if !Path::new(host).exists() {
                std::fs::create_dir_all(host).map_err(|e| format!("volume {host}: {e}"))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> ServiceSpec {
        let v: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).unwrap();
        ServiceSpec::parse("svc", &v).unwrap()
    }

    #[test]
    fn a_compose_entry_becomes_dockers_config_and_host_config() {
        let s = spec(
            r#"
image: ros/busybox:latest
command: sh -c 'sleep 1'
privileged: true
net: host
pid: host
restart: always
volumes: [/var/log:/var/log, "/etc/x:/etc/x:ro", /data]
environment: [A=1, FROM_ENV]
devices: [/dev/fuse]
device_cgroup_rules: ["c 13:* r"]
security_opt: [seccomp=unconfined]
mem_limit: 64m
cpus: 0.5
init: true
labels: {io.rancher.os.scope: system}
"#,
        );
        let env: BTreeMap<String, String> = [("FROM_ENV".to_string(), "x".to_string())].into();
        let r = request(&s, &env);
        assert_eq!(r.name.as_deref(), Some("svc"));
        assert_eq!(r.config.cmd, ["sh", "-c", "sleep 1"]);
        assert!(r.config.entrypoint.is_empty());
        assert_eq!(r.config.env, ["A=1", "FROM_ENV=x"]);
        assert_eq!(r.config.hostname, "svc");
        assert!(r.config.volumes.contains_key("/data"));
        assert_eq!(
            &r.host.binds[..2],
            ["/var/log:/var/log", "/etc/x:/etc/x:ro"]
        );
        assert_eq!(r.host.network_mode, "host");
        assert_eq!(r.host.pid_mode, "host");
        assert_eq!(r.host.uts_mode, "");
        assert_eq!(r.host.restart_policy.name, "always");
        assert_eq!(r.host.security_opt, ["seccomp=unconfined"]);
        assert_eq!(r.host.device_cgroup_rules, ["c 13:* r"]);
        assert_eq!(r.host.devices[0].path_on_host, "/dev/fuse");
        assert_eq!(r.host.memory, 64 << 20);
        assert_eq!(r.host.nano_cpus, 500_000_000);
        assert_eq!(r.host.init, Some(true));
        assert!(r.host.privileged);
        let plain = request(
            &spec("image: a\nlabels: {io.rancher.os.scope: system}"),
            &env,
        );
        assert_eq!(plain.host.network_mode, "none");
    }
}
