//! The `console-config` boot step: what the console container needs from the configuration,
//! written where it reads it ([`DIR`], bound into the container with `/run`). The container's
//! start, `ros console-start` (`crate::consoled::start`), installs the keys for the
//! `rancher` user and turns password logins on only when a password is set; its `ros consoled`
//! runs a getty on each terminal of `ttys` ([`crate::tty`]). PID 1 writes the files rather than
//! the container parsing YAML in shell.

use super::Boot;
use anyhow::Context;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// Where the console's inputs are written.
pub const DIR: &str = "/run/ros/console";

pub fn write(boot: &mut Boot) -> anyhow::Result<()> {
    write_to(Path::new(DIR), &boot.config, &boot.cmdline)
}

/// `authorized_keys` (one key a line, from `ssh_authorized_keys`), `ttys` (the terminal
/// sessions: none in recovery mode, where PID 1 has the console) and, only when
/// `rancher.password` is set, `password`; all readable by root alone.
pub fn write_to(
    dir: &Path,
    config: &crate::config::Config,
    cmdline: &crate::cmdline::Cmdline,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("mkdir {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("chmod {}", dir.display()))?;
    let keys: String = config
        .ssh_authorized_keys
        .iter()
        .map(|k| k.trim())
        .filter(|k| !k.is_empty())
        .map(|k| format!("{k}\n"))
        .collect();
    let put = |name: &str, data: &str| -> anyhow::Result<()> {
        crate::config::atomic::write_atomic(&dir.join(name), data.as_bytes(), 0o600)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", dir.join(name).display()))
    };
    put("authorized_keys", &keys)?;
    let sessions = if config.rancher.recovery {
        Vec::new()
    } else {
        crate::tty::sessions(cmdline, &config.rancher.autologin)
    };
    put("ttys", &crate::tty::render(&sessions))?;
    let pw = dir.join("password");
    match config.rancher.password.as_deref().filter(|p| !p.is_empty()) {
        Some(p) => put("password", p)?,
        None => match std::fs::remove_file(&pw) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", pw.display())),
        },
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_one_a_line_and_no_password_file_without_a_password() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = crate::config::Config {
            ssh_authorized_keys: vec![
                "ssh-ed25519 AAAA a".into(),
                " ".into(),
                "ssh-rsa B b ".into(),
            ],
            ..Default::default()
        };
        let line = crate::cmdline::Cmdline::parse("console=ttyS0");
        write_to(dir.path(), &c, &line).unwrap();
        let keys = std::fs::read_to_string(dir.path().join("authorized_keys")).unwrap();
        assert_eq!(keys, "ssh-ed25519 AAAA a\nssh-rsa B b\n");
        assert!(!dir.path().join("password").exists());
        let ttys = std::fs::read_to_string(dir.path().join("ttys")).unwrap();
        assert_eq!(ttys, "ttyS0 autologin\n");
        c.rancher.password = Some("s3cret".into());
        c.rancher.recovery = true;
        write_to(dir.path(), &c, &line).unwrap();
        let ttys = std::fs::read_to_string(dir.path().join("ttys")).unwrap();
        assert_eq!(ttys, "", "PID 1 has the console in recovery mode");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("password")).unwrap(),
            "s3cret"
        );
        let mode = std::fs::metadata(dir.path().join("password"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
