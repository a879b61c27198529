//! `ros cloud-init save`: ask the datasources in order and save what the first one that answers
//! gave, as configuration layers of the datasource kind (`cloud-config.d/`), for PID 1 to load
//! when this run-to-completion service ends (`io.rancher.os.reloadconfig`).
//!
//! Files written (all atomically), under the OS config directory:
//! - `cloud-config.d/ds-10-meta.yml`: the metadata (hostname, SSH keys) as cloud-config;
//! - `cloud-config.d/ds-20-user-data.yml`: `#cloud-config` user-data, as given. A malformed
//!   one is saved all the same: the configuration loader reports its line and key and leaves
//!   it out, boot goes on with the other layers, and `rancherctl config validate` names it;
//! - `cloud-config.d/ds-30-keys.yml`: when both the metadata and `#cloud-config` user-data
//!   give SSH keys, their union (as cloud-init installs both), since between layers a list
//!   replaces the one below it;
//! - `cloud-config-script`: `#!` user-data, run by `ros cloud-init execute` like `runcmd`.
//!
//! When a datasource answers, the files of an earlier boot are replaced; when none does (a
//! metadata service briefly down), they are kept, so a machine still boots as it was set up.

use super::datasource::{self, Env, Fetched, Source};
use crate::config::atomic::write_atomic;
use std::path::{Path, PathBuf};

pub const META_FILE: &str = "cloud-config.d/ds-10-meta.yml";
pub const USER_DATA_FILE: &str = "cloud-config.d/ds-20-user-data.yml";
pub const KEYS_FILE: &str = "cloud-config.d/ds-30-keys.yml";
pub const SCRIPT_FILE: &str = "cloud-config-script";

/// The metadata's keys followed by the user-data's, without duplicates; None when the
/// user-data gives no keys (the metadata layer alone then holds them).
pub fn union_keys(meta: &[String], user_data: &[u8]) -> Option<Vec<String>> {
    let v: serde_yaml_ng::Value = serde_yaml_ng::from_slice(user_data).ok()?;
    let user: Vec<String> = v
        .get("ssh_authorized_keys")?
        .as_sequence()?
        .iter()
        .filter_map(|k| k.as_str().map(|s| s.trim().to_string()))
        .collect();
    if meta.is_empty() {
        return None;
    }
    let mut all: Vec<String> = meta.to_vec();
    for k in user {
        if !all.contains(&k) {
            all.push(k);
        }
    }
    Some(all)
}

/// What the user-data is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UserData {
    CloudConfig(Vec<u8>),
    Script(Vec<u8>),
    Empty,
    Unknown(String),
}

pub fn classify(data: &[u8]) -> UserData {
    let text = String::from_utf8_lossy(data);
    let first = text.lines().next().unwrap_or("").trim_end();
    if text.trim().is_empty() {
        UserData::Empty
    } else if first.starts_with("#cloud-config") {
        UserData::CloudConfig(data.to_vec())
    } else if first.starts_with("#!") {
        UserData::Script(data.to_vec())
    } else {
        UserData::Unknown(first.chars().take(40).collect())
    }
}

/// The metadata as a cloud-config layer.
pub fn meta_layer(f: &Fetched) -> String {
    let mut m = serde_yaml_ng::Mapping::new();
    if let Some(h) = &f.hostname {
        m.insert("hostname".into(), h.clone().into());
    }
    if !f.keys.is_empty() {
        m.insert(
            "ssh_authorized_keys".into(),
            serde_yaml_ng::Value::Sequence(f.keys.iter().map(|k| k.clone().into()).collect()),
        );
    }
    if m.is_empty() {
        return "#cloud-config\n{}\n".into();
    }
    format!(
        "#cloud-config\n{}",
        serde_yaml_ng::to_string(&m).unwrap_or_default()
    )
}

/// Save `f` (from `source`) under `conf`; lines describing what was done.
pub fn write(conf: &Path, source: &str, f: &Fetched) -> Result<Vec<String>, String> {
    let path = |rel: &str| conf.join(rel);
    let w = |p: PathBuf, data: &[u8], mode: u32| {
        if let Some(d) = p.parent() {
            std::fs::create_dir_all(d).map_err(|e| format!("mkdir {}: {e}", d.display()))?;
        }
        write_atomic(&p, data, mode).map_err(|e| format!("{}: {e}", p.display()))
    };
    let rm = |p: PathBuf| match std::fs::remove_file(&p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    };
    let mut notes = Vec::new();
    w(path(META_FILE), meta_layer(f).as_bytes(), 0o600)?;
    notes.push(format!(
        "{source}: hostname {}, {} SSH key(s)",
        f.hostname.as_deref().unwrap_or("(none)"),
        f.keys.len()
    ));
    let ud = f
        .user_data
        .as_deref()
        .map(classify)
        .unwrap_or(UserData::Empty);
    match &ud {
        UserData::CloudConfig(b) => {
            w(path(USER_DATA_FILE), b, 0o600)?;
            rm(path(SCRIPT_FILE))?;
            match union_keys(&f.keys, b) {
                Some(keys) => {
                    let layer = meta_layer(&Fetched {
                        keys,
                        ..Default::default()
                    });
                    w(path(KEYS_FILE), layer.as_bytes(), 0o600)?;
                }
                None => rm(path(KEYS_FILE))?,
            }
            notes.push(format!(
                "{source}: user-data: cloud-config, {} bytes",
                b.len()
            ));
        }
        UserData::Script(b) => {
            w(path(SCRIPT_FILE), b, 0o700)?;
            rm(path(USER_DATA_FILE))?;
            rm(path(KEYS_FILE))?;
            notes.push(format!("{source}: user-data: script, {} bytes", b.len()));
        }
        UserData::Empty => {
            rm(path(USER_DATA_FILE))?;
            rm(path(SCRIPT_FILE))?;
            rm(path(KEYS_FILE))?;
            notes.push(format!("{source}: no user-data"));
        }
        UserData::Unknown(head) => {
            rm(path(USER_DATA_FILE))?;
            rm(path(SCRIPT_FILE))?;
            rm(path(KEYS_FILE))?;
            notes.push(format!(
                "{source}: user-data ignored: starts with {head:?}, neither #cloud-config nor #!"
            ));
        }
    }
    Ok(notes)
}

/// Try `sources` in order; save the first answer. Lines for the log; Err when none answered.
pub fn run(sources: &[Source], env: &Env, conf: &Path) -> Result<Vec<String>, Vec<String>> {
    let mut tried = Vec::new();
    for s in sources {
        match datasource::fetch(s, env) {
            Ok(Some(f)) => {
                return write(conf, &s.name(), &f).map_err(|e| {
                    tried.push(format!("{}: saving: {e}", s.name()));
                    tried.clone()
                });
            }
            Ok(None) => tried.push(format!("{}: nothing there", s.name())),
            Err(e) => tried.push(format!("{}: {e}", s.name())),
        }
    }
    Err(tried)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_kinds() {
        assert!(matches!(
            classify(b"#cloud-config\na: 1\n"),
            UserData::CloudConfig(_)
        ));
        assert!(matches!(
            classify(b"#!/bin/sh\necho hi\n"),
            UserData::Script(_)
        ));
        assert_eq!(classify(b"  \n"), UserData::Empty);
        assert_eq!(
            classify(b"Content-Type: multipart/mixed"),
            UserData::Unknown("Content-Type: multipart/mixed".into())
        );
    }

    #[test]
    fn saving_replaces_the_last_boots_files() {
        let conf = tempfile::tempdir().unwrap();
        let f = Fetched {
            user_data: Some(b"#!/bin/sh\ntouch /x\n".to_vec()),
            hostname: Some("h1".into()),
            keys: vec!["ssh-ed25519 AAAA a".into()],
        };
        write(conf.path(), "nocloud", &f).unwrap();
        assert!(conf.path().join(SCRIPT_FILE).exists());
        let meta = std::fs::read_to_string(conf.path().join(META_FILE)).unwrap();
        assert_eq!(
            meta,
            "#cloud-config\nhostname: h1\nssh_authorized_keys:\n- ssh-ed25519 AAAA a\n"
        );
        let f2 = Fetched {
            user_data: Some(b"#cloud-config\nhostname: h2\n".to_vec()),
            ..Default::default()
        };
        let notes = write(conf.path(), "url:http://x", &f2).unwrap();
        assert!(
            !conf.path().join(SCRIPT_FILE).exists(),
            "stale script removed"
        );
        assert_eq!(
            std::fs::read_to_string(conf.path().join(USER_DATA_FILE)).unwrap(),
            "#cloud-config\nhostname: h2\n"
        );
        assert_eq!(
            notes,
            [
                "url:http://x: hostname (none), 0 SSH key(s)",
                "url:http://x: user-data: cloud-config, 27 bytes"
            ]
        );
    }

    #[test]
    fn metadata_and_user_data_keys_are_both_kept() {
        let meta = vec!["ssh-rsa M meta".to_string()];
        let ud =
            b"#cloud-config\nssh_authorized_keys:\n  - ssh-ed25519 U user\n  - ssh-rsa M meta\n";
        assert_eq!(
            union_keys(&meta, ud),
            Some(vec!["ssh-rsa M meta".into(), "ssh-ed25519 U user".into()])
        );
        assert_eq!(union_keys(&meta, b"#cloud-config\nhostname: x\n"), None);
        assert_eq!(union_keys(&[], ud), None);
        let conf = tempfile::tempdir().unwrap();
        let f = Fetched {
            user_data: Some(ud.to_vec()),
            hostname: None,
            keys: meta,
        };
        write(conf.path(), "nocloud", &f).unwrap();
        assert_eq!(
            std::fs::read_to_string(conf.path().join(KEYS_FILE)).unwrap(),
            "#cloud-config\nssh_authorized_keys:\n- ssh-rsa M meta\n- ssh-ed25519 U user\n"
        );
    }

    #[test]
    fn the_first_source_that_answers_wins() {
        let conf = tempfile::tempdir().unwrap();
        let drive = tempfile::tempdir().unwrap();
        let latest = drive.path().join("openstack/latest");
        std::fs::create_dir_all(&latest).unwrap();
        std::fs::write(latest.join("meta_data.json"), r#"{"hostname":"cd"}"#).unwrap();
        let env = Env {
            dev: "/nonexistent".into(),
            mnt: conf.path().join("mnt"),
            cmdline: String::new(),
        };
        let sources = [
            Source::Cmdline,
            Source::ConfigDrive(Some(drive.path().to_path_buf())),
        ];
        let notes = run(&sources, &env, conf.path()).unwrap();
        assert!(notes[0].contains("hostname cd"), "{notes:?}");
        let none = run(&[Source::Cmdline], &env, conf.path()).unwrap_err();
        assert_eq!(none, ["cmdline: nothing there"]);
        assert!(
            conf.path().join(META_FILE).exists(),
            "kept when nothing answered"
        );
    }
}
