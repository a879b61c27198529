//! What a full console (an image with OpenSSH: `debian`, any distribution's image) needs before
//! its SSH server starts, beyond what [`super::start`] does for every console: the `rancher`
//! user (uid 1100) with sudo and the user engine's socket group (gid 233), the links to our
//! commands, the host key in OpenSSH's format, and the server's configuration.
//!
//! Everything here runs at every start of the console, on a root whose changes are kept
//! (`crate::consoles`): each file we manage is either ours whole, rewritten atomically each time
//! (`/etc/sudoers.d/rancher`, `/etc/ssh/ros_sshd_config`, the host key), or a line we add only
//! when it is missing (`rancher` in `/etc/passwd`, `/etc/group`, `/etc/shadow`). Nothing is
//! appended twice and nothing a person edited is overwritten: the image's own
//! `/etc/ssh/sshd_config` is not touched (sshd is started with ours, which includes
//! `/etc/ssh/sshd_config.d/*.conf` first, so a person's settings there win).

use super::hostkey::Ed25519;
use std::path::Path;
use std::process::Command;

/// The server configuration we start sshd with.
pub const SSHD_CONFIG: &str = "/etc/ssh/ros_sshd_config";
const HOSTKEY: &str = "/etc/ssh/ssh_host_ed25519_key";
/// The user engine's socket group (os-config.yml's docker service).
const DOCKER_GID: u32 = 233;
const RANCHER: u32 = super::start::RANCHER;

/// The SSH server of a console image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Server {
    /// OpenSSH's `sshd`: a full console.
    OpenSsh,
    /// Dropbear: the default (busybox) console.
    Dropbear,
}

impl Server {
    /// The image's server under `root` (OpenSSH first), or why there is none.
    pub fn detect(root: &Path) -> Result<Server, String> {
        let at = |p: &str| root.join(p.trim_start_matches('/'));
        if at("/usr/sbin/sshd").exists() {
            Ok(Server::OpenSsh)
        } else if at("/usr/sbin/dropbear").exists() {
            Ok(Server::Dropbear)
        } else {
            Err("this console image has no SSH server (/usr/sbin/sshd or /usr/sbin/dropbear): install openssh-server in it".into())
        }
    }
}

/// The user, groups, sudo rule and command links, under `root`.
pub fn prepare_user(root: &Path) -> Result<(), String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let shell = if at("/bin/bash").exists() {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    add_line(
        &at("/etc/passwd"),
        "rancher",
        &format!("rancher:x:{RANCHER}:{RANCHER}:rancher:/home/rancher:{shell}"),
        0o644,
    )?;
    add_line(
        &at("/etc/group"),
        "rancher",
        &format!("rancher:x:{RANCHER}:"),
        0o644,
    )?;
    // `*`: no password, and not locked (`!`), which OpenSSH without PAM takes as "no login at
    // all", keys included.
    add_line(
        &at("/etc/shadow"),
        "rancher",
        "rancher:*:19000:0:99999:7:::",
        0o640,
    )?;
    join_group(&at("/etc/group"), DOCKER_GID, "docker", "rancher")?;
    let sudoers_d = at("/etc/sudoers.d");
    if at("/etc/sudoers").exists() {
        std::fs::create_dir_all(&sudoers_d)
            .map_err(|e| format!("mkdir {}: {e}", sudoers_d.display()))?;
        write(
            &sudoers_d.join("rancher"),
            b"# Written by ros console-start at every start.\nrancher ALL=(ALL:ALL) NOPASSWD: ALL\n",
            0o440,
        )?;
    }
    // Our commands; and PID 1's shutdown, which a distribution's own `reboot` (systemd's, when
    // there is one) cannot ask for.
    let ours = ["rancherctl", "system-docker", "docker"].map(|c| (format!("/usr/bin/{c}"), "ros"));
    let power = ["reboot", "poweroff", "halt"].map(|c| (format!("/usr/sbin/{c}"), "/usr/bin/ros"));
    for (path, target) in ours.iter().chain(power.iter()) {
        let link = at(path);
        // A program a person installed under that name (docker.io's docker) stays.
        match std::fs::symlink_metadata(&link) {
            Ok(m) if !m.file_type().is_symlink() => continue,
            _ => {}
        }
        super::start::replace_symlink(target, &link)?;
    }
    Ok(())
}

/// `line` (whose first field is `name`) added to the colon-separated file `path` when no line
/// of `name` is there; the file rewritten atomically with `mode`.
fn add_line(path: &Path, name: &str, line: &str, mode: u32) -> Result<(), String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let prefix = format!("{name}:");
    if text.lines().any(|l| l.starts_with(&prefix)) {
        return Ok(());
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(line);
    out.push('\n');
    write(path, out.as_bytes(), mode)
}

/// `user` a member of the group of `gid` in `/etc/group` (`path`); with no group of that id,
/// one is added, named `name` (or `ros-NAME` when `name` is taken by another id).
fn join_group(path: &Path, gid: u32, name: &str, user: &str) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut found = false;
    let mut changed = false;
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(':').collect();
        if f.len() == 4 && f[2].parse::<u32>() == Ok(gid) && !found {
            found = true;
            let members: Vec<&str> = f[3].split(',').filter(|m| !m.is_empty()).collect();
            if !members.contains(&user) {
                let mut m = members.clone();
                m.push(user);
                lines.push(format!("{}:{}:{}:{}", f[0], f[1], f[2], m.join(",")));
                changed = true;
                continue;
            }
        }
        lines.push(l.to_string());
    }
    if !found {
        let taken = lines.iter().any(|l| l.starts_with(&format!("{name}:")));
        let group = if taken {
            format!("ros-{name}")
        } else {
            name.to_string()
        };
        lines.push(format!("{group}:x:{gid}:{user}"));
        changed = true;
    }
    if !changed {
        return Ok(());
    }
    let mut out = lines.join("\n");
    out.push('\n');
    write(path, out.as_bytes(), 0o644)
}

/// The host key kept in dropbear's format at `kept` (made when there is none yet), written for
/// OpenSSH under `root`, and the server configuration; `password`: whether password logins are
/// on.
pub fn prepare_server(root: &Path, kept: &Path, password: bool) -> Result<(), String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    let read = match std::fs::metadata(kept) {
        // A key file is some hundred bytes: anything larger is not one.
        Ok(m) if m.len() > 4096 => return Err(format!("{}: not a key file", kept.display())),
        _ => std::fs::read(kept),
    };
    let key = match read {
        Ok(b) if !b.is_empty() => {
            Ed25519::from_dropbear(&b).map_err(|e| format!("{}: {e}", kept.display()))?
        }
        // Made only when there is none: a key that cannot be read is an error, never replaced.
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(format!("{}: {e}", kept.display()))
        }
        _ => {
            let k = Ed25519::generate()?;
            println!(
                "ros-console: made the SSH host key {} ({})",
                kept.display(),
                k.fingerprint()
            );
            write(kept, &k.to_dropbear(), 0o600)?;
            k
        }
    };
    // OpenSSH's privilege separation directory (`sshd -t` below wants it too).
    let sep = at("/run/sshd");
    std::fs::create_dir_all(&sep).map_err(|e| format!("mkdir {}: {e}", sep.display()))?;
    write(&at(HOSTKEY), key.to_openssh().as_bytes(), 0o600)?;
    write(
        &at(&format!("{HOSTKEY}.pub")),
        key.public_line().as_bytes(),
        0o644,
    )?;
    let sftp = [
        "/usr/lib/openssh/sftp-server",
        "/usr/libexec/openssh/sftp-server",
        "/usr/lib/ssh/sftp-server",
    ]
    .into_iter()
    .find(|p| at(p).exists());
    write(
        &at(SSHD_CONFIG),
        sshd_config(password, sftp, true).as_bytes(),
        0o644,
    )?;
    if root == Path::new("/") && !sshd_takes(SSHD_CONFIG)? {
        // OpenSSH before 8.2 (RancherOS's older console images) knows no `Include`.
        write(
            &at(SSHD_CONFIG),
            sshd_config(password, sftp, false).as_bytes(),
            0o644,
        )?;
        if !sshd_takes(SSHD_CONFIG)? {
            return Err(format!(
                "this image's sshd refuses {SSHD_CONFIG} (`sshd -t -f {SSHD_CONFIG}`)"
            ));
        }
    }
    Ok(())
}

/// Whether the image's sshd takes the configuration `file` (`sshd -t`, its complaint said).
fn sshd_takes(file: &str) -> Result<bool, String> {
    let out = Command::new("/usr/sbin/sshd")
        .args(["-t", "-f", file])
        .output()
        .map_err(|e| format!("/usr/sbin/sshd -t: {e}"))?;
    if !out.status.success() {
        eprintln!(
            "ros-console: sshd -t -f {file}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.status.success())
}

/// The configuration sshd runs with (see the module docs); `include`: the drop-in directory
/// first (OpenSSH 8.2 and later).
pub fn sshd_config(password: bool, sftp: Option<&str>, include: bool) -> String {
    let yes = |b: bool| if b { "yes" } else { "no" };
    let include = if include {
        "# Put your own settings in /etc/ssh/sshd_config.d/*.conf (read first: they win).\n\
         Include /etc/ssh/sshd_config.d/*.conf\n"
    } else {
        ""
    };
    let mut c = format!(
        "# Written by ros console-start at every start of the console: edits here are lost.\n\
         {include}\
         Port 22\n\
         HostKey {HOSTKEY}\n\
         PermitRootLogin no\n\
         PubkeyAuthentication yes\n\
         AuthorizedKeysFile .ssh/authorized_keys\n\
         PasswordAuthentication {}\n\
         KbdInteractiveAuthentication no\n\
         UsePAM no\n\
         PrintMotd no\n\
         AcceptEnv LANG LC_*\n\
         PidFile /run/sshd.pid\n",
        yes(password)
    );
    if let Some(s) = sftp {
        c.push_str(&format!("Subsystem sftp {s}\n"));
    }
    c
}

/// Rewrite `path` atomically with `mode`, keeping its owner and group when it exists
/// (Debian's /etc/shadow is group `shadow`).
fn write(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let owner = std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.is_file())
        .map(|m| (m.uid(), m.gid()));
    crate::config::atomic::write_atomic(path, data, mode)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::chown(path, Some(uid), Some(gid))
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_and_groups_are_added_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc")).unwrap();
        std::fs::write(r.join("etc/passwd"), "root:x:0:0:root:/root:/bin/bash\n").unwrap();
        std::fs::write(r.join("etc/group"), "root:x:0:\ndocker:x:999:\n").unwrap();
        std::fs::write(r.join("etc/shadow"), "root:*:1:0:99999:7:::").unwrap();
        std::fs::write(r.join("etc/sudoers"), "@includedir /etc/sudoers.d\n").unwrap();
        std::fs::create_dir_all(r.join("usr/bin")).unwrap();
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        std::fs::write(r.join("usr/bin/docker"), "a program of its own").unwrap();
        for _ in 0..3 {
            prepare_user(r).unwrap();
        }
        let read = |p: &str| std::fs::read_to_string(r.join(p)).unwrap();
        assert_eq!(
            read("etc/passwd"),
            "root:x:0:0:root:/root:/bin/bash\nrancher:x:1100:1100:rancher:/home/rancher:/bin/sh\n"
        );
        // `docker` is another group's name here: ours is ros-docker, gid 233.
        assert_eq!(
            read("etc/group"),
            "root:x:0:\ndocker:x:999:\nrancher:x:1100:\nros-docker:x:233:rancher\n"
        );
        assert_eq!(
            read("etc/shadow"),
            "root:*:1:0:99999:7:::\nrancher:*:19000:0:99999:7:::\n"
        );
        assert!(read("etc/sudoers.d/rancher").contains("rancher ALL=(ALL:ALL) NOPASSWD: ALL"));
        assert_eq!(read("usr/bin/docker"), "a program of its own");
        assert_eq!(
            std::fs::read_link(r.join("usr/bin/rancherctl")).unwrap(),
            Path::new("ros")
        );
        assert_eq!(
            std::fs::read_link(r.join("usr/sbin/reboot")).unwrap(),
            Path::new("/usr/bin/ros")
        );
        // A group of gid 233 already there gets the member, once.
        std::fs::write(r.join("etc/group"), "dock:x:233:alice\n").unwrap();
        prepare_user(r).unwrap();
        prepare_user(r).unwrap();
        assert_eq!(
            read("etc/group"),
            "dock:x:233:alice,rancher\nrancher:x:1100:\n"
        );
    }

    #[test]
    fn the_server_gets_the_kept_key_and_our_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        std::fs::create_dir_all(r.join("etc/ssh")).unwrap();
        std::fs::create_dir_all(r.join("usr/lib/openssh")).unwrap();
        std::fs::write(r.join("usr/lib/openssh/sftp-server"), "").unwrap();
        let kept = r.join("kept");
        let k = Ed25519 {
            seed: [1; 32],
            public: [2; 32],
        };
        std::fs::write(&kept, k.to_dropbear()).unwrap();
        prepare_server(r, &kept, false).unwrap();
        let pem = std::fs::read_to_string(r.join("etc/ssh/ssh_host_ed25519_key")).unwrap();
        assert_eq!(Ed25519::from_openssh(&pem).unwrap(), k);
        let conf = std::fs::read_to_string(r.join(SSHD_CONFIG.trim_start_matches('/'))).unwrap();
        assert!(conf.contains("PasswordAuthentication no\n"));
        assert!(conf.contains("Subsystem sftp /usr/lib/openssh/sftp-server\n"));
        assert!(conf.starts_with("# Written by"));
        // A damaged kept key is an error that names it, not a new key.
        std::fs::write(&kept, b"junk").unwrap();
        assert!(prepare_server(r, &kept, false)
            .unwrap_err()
            .contains("kept"));
    }

    #[test]
    fn the_server_is_found_by_its_program() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        assert!(Server::detect(r).unwrap_err().contains("no SSH server"));
        std::fs::create_dir_all(r.join("usr/sbin")).unwrap();
        std::fs::write(r.join("usr/sbin/dropbear"), "").unwrap();
        assert_eq!(Server::detect(r), Ok(Server::Dropbear));
        std::fs::write(r.join("usr/sbin/sshd"), "").unwrap();
        assert_eq!(Server::detect(r), Ok(Server::OpenSsh));
    }
}
