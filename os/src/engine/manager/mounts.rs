//! A container's mounts: what `-v` (`Binds`), `--mount` (`Mounts`), `--tmpfs`, `--volumes-from`
//! and the `Volumes` of the image and of the request make of them, resolved once at create into
//! [`MountPoint`]s kept in the record, and turned into bind and tmpfs mounts at each start.
//!
//! Precedence as Docker's: binds and `--mount` first (two at one destination is an error),
//! then the mounts of `--volumes-from` containers, then anonymous volumes for every `Volumes`
//! path nothing else covers. A named volume that does not exist is created; an anonymous one
//! gets a random 64-hex name and goes with its container on `rm -v` and `--rm`. A new volume
//! is filled from the image's content at its destination on the first start (not with
//! `nocopy`), without following the image's symlinks.

use super::record::{Config, HostConfig, MountPoint, Record};
use super::{Manager, ManagerError, Result};
use crate::engine::runtime::{BindMount, TmpfsMount};
use crate::engine::volume::{check_name, NewVolume};
use std::path::{Path, PathBuf};

/// `--mount type=tmpfs`'s `TmpfsOptions` (`SizeBytes`, `Mode`) as tmpfs options.
fn tmpfs_options(m: &super::record::MountRequest) -> Result<String> {
    let Some(o) = &m.tmpfs_options else {
        return Ok(String::new());
    };
    let mut opts = Vec::new();
    if let Some(size) = o
        .get("SizeBytes")
        .and_then(|v| v.as_i64())
        .filter(|s| *s > 0)
    {
        opts.push(format!("size={size}"));
    }
    if let Some(mode) = o.get("Mode").and_then(|v| v.as_u64()).filter(|m| *m > 0) {
        if mode > 0o7777 {
            return Err(ManagerError::BadRequest(format!(
                "invalid mount config for type \"tmpfs\": mode {mode:o}"
            )));
        }
        opts.push(format!("mode={mode:o}"));
    }
    Ok(opts.join(","))
}

/// `-v SRC:DST[:OPTS]` split: source (a path or a volume name), destination, read-write, copy.
fn parse_bind_text(b: &str) -> Result<(String, String, bool, bool)> {
    let bad =
        |why: &str| ManagerError::BadRequest(format!("invalid volume specification: '{b}': {why}"));
    let parts: Vec<&str> = b.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        _ => return Err(bad("not SRC:DST[:OPTIONS]")),
    };
    if src.is_empty() {
        return Err(bad("empty source"));
    }
    let (mut rw, mut copy) = (true, true);
    for o in opts.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => copy = false,
            // SELinux labels: nothing to relabel here.
            "z" | "Z" => {}
            "private" | "rprivate" => {}
            other => return Err(bad(&format!("option {other:?} is not supported"))),
        }
    }
    Ok((src.to_string(), dst.to_string(), rw, copy))
}

/// An absolute destination without `..`, as a clean string.
fn destination(d: &str) -> Result<String> {
    if !d.starts_with('/') || d.split('/').any(|c| c == "..") {
        return Err(ManagerError::BadRequest(format!(
            "invalid mount config: mount path must be absolute: {d:?}"
        )));
    }
    let clean = d.trim_end_matches('/');
    Ok(if clean.is_empty() {
        "/".into()
    } else {
        clean.to_string()
    })
}

fn bind_source(src: &str) -> Result<String> {
    if src.split('/').any(|c| c == "..") {
        return Err(ManagerError::BadRequest(format!(
            "invalid mount config for type \"bind\": source path must not hold '..': {src}"
        )));
    }
    if !Path::new(src).exists() {
        return Err(ManagerError::BadRequest(format!(
            "invalid mount config for type \"bind\": bind source path does not exist: {src}"
        )));
    }
    Ok(src.to_string())
}

/// What can be told from the request alone (before the image is looked up and anything is
/// made): the syntax of every bind, volume names, destinations, mount types.
pub(super) fn check(host: &HostConfig) -> Result<()> {
    for b in &host.binds {
        let (src, dst, _, _) = parse_bind_text(b)?;
        destination(&dst)?;
        if !src.starts_with('/') {
            check_name(&src).map_err(|e| ManagerError::BadRequest(e.to_string()))?;
        }
    }
    for (dst, opts) in &host.tmpfs {
        TmpfsMount::parse(dst, opts).map_err(|e| ManagerError::BadRequest(e.to_string()))?;
    }
    for m in &host.mounts {
        destination(&m.target)?;
        match m.typ.as_str() {
            "bind" | "volume" => {}
            "tmpfs" => {
                TmpfsMount::parse(&m.target, &tmpfs_options(m)?)
                    .map_err(|e| ManagerError::BadRequest(e.to_string()))?;
            }
            other => {
                return Err(ManagerError::BadRequest(format!(
                    "mount type unknown: {other:?}"
                )))
            }
        }
    }
    Ok(())
}

impl Manager {
    /// The mounts of a container being created, and the anonymous volumes made for it (which
    /// a create that fails after this removes).
    pub(super) fn resolve_mounts(
        &self,
        config: &Config,
        host: &HostConfig,
    ) -> Result<(Vec<MountPoint>, Vec<String>)> {
        let mut made = Vec::new();
        let r = self.resolve_into(config, host, &mut made);
        if r.is_err() {
            for name in &made {
                let _ = self.volumes.remove(name);
            }
        }
        r.map(|m| (m, made))
    }

    fn resolve_into(
        &self,
        config: &Config,
        host: &HostConfig,
        made: &mut Vec<String>,
    ) -> Result<Vec<MountPoint>> {
        let mut out: Vec<MountPoint> = Vec::new();
        let explicit = |m: MountPoint, out: &mut Vec<MountPoint>| -> Result<()> {
            if out.iter().any(|o| o.destination == m.destination) {
                return Err(ManagerError::BadRequest(format!(
                    "Duplicate mount point: {}",
                    m.destination
                )));
            }
            out.push(m);
            Ok(())
        };
        for b in &host.binds {
            let (src, dst, rw, copy) = parse_bind_text(b)?;
            let destination = destination(&dst)?;
            let m = if src.starts_with('/') {
                MountPoint {
                    kind: "bind".into(),
                    name: String::new(),
                    source: bind_source(&src)?,
                    destination,
                    rw,
                    copy: false,
                    options: String::new(),
                }
            } else {
                check_name(&src).map_err(|e| ManagerError::BadRequest(e.to_string()))?;
                let new = self.volume(Some(src.clone()), Default::default(), made)?;
                MountPoint {
                    kind: "volume".into(),
                    name: src,
                    source: String::new(),
                    destination,
                    rw,
                    copy: copy && new,
                    options: String::new(),
                }
            };
            explicit(m, &mut out)?;
        }
        for m in &host.mounts {
            let destination = destination(&m.target)?;
            let mp = match m.typ.as_str() {
                "bind" => {
                    if let Some(p) = m
                        .bind_options
                        .as_ref()
                        .and_then(|o| o.get("Propagation"))
                        .and_then(|p| p.as_str())
                        .filter(|p| !matches!(*p, "" | "private" | "rprivate"))
                    {
                        return Err(ManagerError::BadRequest(format!(
                            "invalid mount config for type \"bind\": propagation {p:?} is not supported"
                        )));
                    }
                    if !m.source.starts_with('/') {
                        return Err(ManagerError::BadRequest(format!(
                            "invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute",
                            m.source
                        )));
                    }
                    MountPoint {
                        kind: "bind".into(),
                        name: String::new(),
                        source: bind_source(&m.source)?,
                        destination,
                        rw: !m.read_only,
                        copy: false,
                        options: String::new(),
                    }
                }
                "volume" => {
                    let opts = m.volume_options.clone().unwrap_or_default();
                    if let Some(d) = opts
                        .driver_config
                        .as_ref()
                        .and_then(|d| d.get("Name"))
                        .and_then(|n| n.as_str())
                        .filter(|n| !matches!(*n, "" | "local"))
                    {
                        return Err(ManagerError::BadRequest(format!(
                            "volume driver {d:?}: only the local driver is served"
                        )));
                    }
                    let name = (!m.source.is_empty()).then(|| m.source.clone());
                    if let Some(n) = &name {
                        check_name(n).map_err(|e| ManagerError::BadRequest(e.to_string()))?;
                    }
                    let before = made.len();
                    let new = self.volume(name.clone(), opts.labels.clone(), made)?;
                    // An anonymous one was just listed in `made`.
                    let name = name.unwrap_or_else(|| made[before].clone());
                    MountPoint {
                        kind: "volume".into(),
                        name,
                        source: String::new(),
                        destination,
                        rw: !m.read_only,
                        copy: !opts.no_copy && new,
                        options: String::new(),
                    }
                }
                "tmpfs" => MountPoint {
                    kind: "tmpfs".into(),
                    name: String::new(),
                    source: String::new(),
                    destination,
                    rw: !m.read_only,
                    copy: false,
                    options: tmpfs_options(m)?,
                },
                other => {
                    return Err(ManagerError::BadRequest(format!(
                        "mount type unknown: {other:?}"
                    )))
                }
            };
            explicit(mp, &mut out)?;
        }
        for (dst, opts) in &host.tmpfs {
            let tm = TmpfsMount::parse(dst, opts)
                .map_err(|e| ManagerError::BadRequest(e.to_string()))?;
            explicit(
                MountPoint {
                    kind: "tmpfs".into(),
                    name: String::new(),
                    source: String::new(),
                    destination: tm.destination.display().to_string(),
                    rw: true,
                    copy: false,
                    options: opts.clone(),
                },
                &mut out,
            )?;
        }
        for from in &host.volumes_from {
            let (name, mode) = match from.rsplit_once(':') {
                Some((n, m @ ("ro" | "rw"))) => (n, Some(m == "rw")),
                _ => (from.as_str(), None),
            };
            let theirs = self.get(name)?;
            for m in theirs.mounts {
                // A tmpfs is its container's own: there is nothing to share.
                if m.kind == "tmpfs" || out.iter().any(|o| o.destination == m.destination) {
                    continue;
                }
                out.push(MountPoint {
                    rw: mode.unwrap_or(m.rw),
                    copy: false,
                    ..m
                });
            }
        }
        for path in config.volumes.keys() {
            let destination = destination(path)?;
            if out.iter().any(|o| o.destination == destination) {
                continue;
            }
            let before = made.len();
            self.volume(None, Default::default(), made)?;
            out.push(MountPoint {
                kind: "volume".into(),
                name: made[before].clone(),
                source: String::new(),
                destination,
                rw: true,
                copy: true,
                options: String::new(),
            });
        }
        Ok(out)
    }

    /// Make (or find) a volume; true when it is new. Anonymous ones (no name) are listed in
    /// `made`.
    fn volume(
        &self,
        name: Option<String>,
        labels: std::collections::BTreeMap<String, String>,
        made: &mut Vec<String>,
    ) -> Result<bool> {
        let anonymous = name.is_none();
        let (v, new) = self
            .volumes
            .create(NewVolume {
                name,
                labels,
                ..Default::default()
            })
            .map_err(ManagerError::from)?;
        if anonymous {
            made.push(v.name);
        }
        Ok(new)
    }

    /// The bind mounts of a start: binds as they are, volumes as their data directories (a
    /// new one filled from the image first).
    pub(super) fn mount_binds(&self, rec: &Record, rootfs: &Path) -> Result<Vec<BindMount>> {
        if rec.mounts.is_empty() {
            // A record from before volumes: its binds, parsed as then.
            return rec
                .host
                .binds
                .iter()
                .map(|b| super::start::parse_bind(b))
                .collect();
        }
        let mut out = Vec::new();
        let mut copied = false;
        for m in rec.mounts.iter().filter(|m| m.kind != "tmpfs") {
            let source = match m.kind.as_str() {
                "volume" => {
                    self.volumes.get(&m.name).map_err(ManagerError::from)?;
                    let data = self.volumes.data_dir(&m.name);
                    let empty = std::fs::read_dir(&data)
                        .map(|mut d| d.next().is_none())
                        .unwrap_or(false);
                    if m.copy && empty {
                        if let Err(e) =
                            crate::engine::rootfs::copy_up(rootfs, &m.destination, &data)
                        {
                            tracing::warn!(id = %rec.id, volume = %m.name, error = %e, "filling a new volume from the image");
                        }
                        copied = true;
                    }
                    data
                }
                _ => PathBuf::from(&m.source),
            };
            out.push(BindMount {
                source,
                destination: PathBuf::from(&m.destination),
                read_only: !m.rw,
            });
        }
        if copied {
            // Filled once: a volume emptied later by its user stays empty.
            let _ = self.update(&rec.id, |r| {
                for m in &mut r.mounts {
                    m.copy = false;
                }
            });
        }
        Ok(out)
    }

    /// The tmpfs mounts of a start.
    pub(super) fn tmpfs_mounts(&self, rec: &Record) -> Result<Vec<TmpfsMount>> {
        rec.mounts
            .iter()
            .filter(|m| m.kind == "tmpfs")
            .map(|m| {
                let mut t = TmpfsMount::parse(&m.destination, &m.options)
                    .map_err(|e| ManagerError::BadRequest(e.to_string()))?;
                if !m.rw {
                    t.options.push("ro".into());
                }
                Ok(t)
            })
            .collect()
    }

    /// The ids of the containers that mount volume `name`.
    pub fn volume_users(&self, name: &str) -> Vec<String> {
        self.lock()
            .values()
            .filter(|e| {
                e.rec
                    .mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
            })
            .map(|e| e.rec.id.clone())
            .collect()
    }

    /// Remove the anonymous volumes of a removed container that no other container uses.
    pub(super) fn remove_anonymous(&self, rec: &Record) {
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let anonymous = self.volumes.get(&m.name).is_ok_and(|v| v.anonymous);
            if anonymous && self.volume_users(&m.name).is_empty() {
                if let Err(e) = self.volumes.remove(&m.name) {
                    tracing::warn!(volume = %m.name, error = %e, "removing an anonymous volume");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_texts() {
        assert_eq!(
            parse_bind_text("/a:/b").unwrap(),
            ("/a".into(), "/b".into(), true, true)
        );
        assert_eq!(
            parse_bind_text("data:/b:ro,nocopy").unwrap(),
            ("data".into(), "/b".into(), false, false)
        );
        assert!(parse_bind_text("/a").is_err());
        assert!(parse_bind_text("/a:/b:shared").is_err());
        assert!(parse_bind_text(":/b").is_err());
        assert!(destination("relative").is_err());
        assert!(destination("/a/../etc").is_err());
        assert_eq!(destination("/data/").unwrap(), "/data");
    }
}
