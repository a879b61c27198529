//! `ros console-start`: the console container's start (the `ros/console` image's command).
//! It readies the `rancher` user from what PID 1 wrote in [`IN`] (the `console-config` boot
//! step): the configured SSH keys appended to `authorized_keys`, each once (keys the user added
//! by hand stay: the file is on the state partition with `/home`); the password, only when
//! `rancher.password` is set (password logins are off otherwise); the SSH host key, made once
//! and kept in `/var/lib/rancher/ssh`. Then it becomes `ros consoled` with dropbear.
//!
//! Why in the binary and not the shell script it replaces: the script gave the plain password
//! to `mkpasswd` as an argument, readable in `/proc/PID/cmdline` by every user of the host's pid
//! namespace while it ran (here it goes on a pipe, with a salt from the kernel's random bytes); it glued a
//! configured key onto a hand-added last line without a newline; and the same steps are what
//! any console image will need, whatever userland it has. (Boot time: measured the same, SSH
//! 0.9–1.0 s after `[ros] ready` either way, `cargo harness bench ssh -n 3`.)

use super::full::{self, Server};
use super::hostkey::Ed25519;
use std::io::Write;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What PID 1 wrote for the console (`init::console_config`).
pub const IN: &str = "/run/ros/console";
const HOSTKEY: &str = "/var/lib/rancher/ssh/dropbear_ed25519_host_key";
const HOME: &str = "/home/rancher";
/// The console user's uid and gid (the image's /etc/passwd; a full console's is made so).
pub const RANCHER: u32 = 1100;

/// Entry point of `ros console-start` (no arguments).
pub fn main(args: &[String]) -> ExitCode {
    if !args.is_empty() {
        eprintln!("usage: ros console-start");
        return ExitCode::from(2);
    }
    let root = Path::new("/");
    let prepared = Server::detect(root)
        .and_then(|server| prepare(root, Path::new(IN), server).map(|password| (server, password)));
    let (server, password) = match prepared {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ros-console: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ttys = format!("{IN}/ttys");
    let mut words: Vec<String> = ["--ttys", &ttys, "--ready", crate::consoles::READY]
        .map(String::from)
        .to_vec();
    let server_words: Vec<&str> = match server {
        Server::Dropbear => ["dropbear", "-F", "-E", "-w"]
            .into_iter()
            .chain((!password).then_some("-s"))
            .chain(["-p", "22", "-r", HOSTKEY, "-P", "/run/dropbear.pid"])
            .collect(),
        Server::OpenSsh => {
            // util-linux's agetty where there is one (Debian, Ubuntu, Fedora), else busybox's.
            if ["/sbin/agetty", "/usr/sbin/agetty"]
                .iter()
                .any(|p| Path::new(p).exists())
            {
                words.extend(["--getty".to_string(), "agetty".to_string()]);
            }
            vec!["/usr/sbin/sshd", "-D", "-e", "-f", full::SSHD_CONFIG]
        }
    };
    println!(
        "ros-console: {} on port 22 (password logins {})",
        server_words[0],
        if password { "on" } else { "off" }
    );
    let _ = std::io::stdout().flush();
    words.push("--".into());
    words.extend(server_words.into_iter().map(String::from));
    super::main(&words)
}

/// Everything before the servers start, with `root` as `/` (tests use a directory) and `input`
/// as [`IN`], for the image's SSH `server`. Whether password logins are on.
pub fn prepare(root: &Path, input: &Path, server: Server) -> Result<bool, String> {
    let at = |p: &str| root.join(p.trim_start_matches('/'));
    if root == Path::new("/") {
        // The host's /dev (bound at /host/dev), so that the terminals and ptys are the host's.
        nix::mount::mount(
            Some("/host/dev"),
            "/dev",
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(|e| format!("binding /host/dev on /dev: {e}"))?;
    }
    // The user engine serves /run/docker/docker.sock; the docker CLI's default is
    // /var/run/docker.sock (/var/run is /run, the host's).
    replace_symlink("docker/docker.sock", &at("/run/docker.sock"))?;
    if server == Server::OpenSsh {
        full::prepare_user(root)?;
    }
    if at("/etc/sudoers").exists() {
        chmod(&at("/etc/sudoers"), 0o440)?;
    }
    chmod(&at("/etc/shadow"), 0o640)?;
    let home = at(HOME);
    let ssh = home.join(".ssh");
    std::fs::create_dir_all(&ssh).map_err(|e| format!("mkdir {}: {e}", ssh.display()))?;
    for d in [&home, &ssh] {
        own(d)?;
    }
    chmod(&ssh, 0o700)?;
    let keys = read_optional(&input.join("authorized_keys"))?;
    let ak = ssh.join("authorized_keys");
    let have = read_optional(&ak)?;
    let added = keys_to_add(&have, &keys);
    if !added.is_empty() || !ak.exists() {
        // Rewritten whole (temp, fsync, rename): a cut mid-write leaves the old file.
        let mut text = have;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        for k in &added {
            text.push_str(k);
            text.push('\n');
        }
        crate::config::atomic::write_atomic(&ak, text.as_bytes(), 0o600)
            .map_err(|e| format!("{}: {e}", ak.display()))?;
    }
    own(&ak)?;
    chmod(&ak, 0o600)?;
    let password = read_optional(&input.join("password"))?;
    let password = password.trim_end_matches('\n');
    let on = !password.is_empty();
    if on {
        if password.starts_with('$') {
            // Already a crypt(3) hash.
            set_shadow_hash(&at("/etc/shadow"), "rancher", password)?;
        } else if server == Server::OpenSsh {
            // A distribution's own tool (shadow's chpasswd: its hash, its locking).
            feed("chpasswd", &[], &format!("rancher:{password}\n"))?;
        } else {
            set_shadow_hash(&at("/etc/shadow"), "rancher", &mkpasswd(password)?)?;
        }
    } else if server == Server::OpenSsh {
        // A full console's /etc/shadow is kept across boots: a password set once and then
        // removed from the configuration must stop working everywhere (su, the terminals'
        // login prompts), not only for SSH.
        set_shadow_hash(&at("/etc/shadow"), "rancher", "*")?;
    }
    let key = at(HOSTKEY);
    if let Some(dir) = key.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    }
    if server == Server::OpenSsh {
        full::prepare_server(root, &key, on)?;
        return Ok(on);
    }
    let made = std::fs::metadata(&key).is_ok_and(|m| m.len() > 0);
    if !made {
        let k = Ed25519::generate()?;
        // Atomic and synced: the directory is on the state partition when there is one, and a
        // key cut short by a power loss would stop SSH at every later boot.
        crate::config::atomic::write_atomic(&key, &k.to_dropbear(), 0o600)
            .map_err(|e| format!("{}: {e}", key.display()))?;
        println!(
            "ros-console: made the SSH host key {HOSTKEY} ({})",
            k.fingerprint()
        );
    }
    Ok(on)
}

/// The lines of `wanted` (blank ones aside) that `have` does not hold as a whole line, each
/// once, in order.
pub fn keys_to_add<'a>(have: &str, wanted: &'a str) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for k in wanted.lines() {
        if k.trim().is_empty() || have.lines().any(|l| l == k) || out.contains(&k) {
            continue;
        }
        out.push(k);
    }
    out
}

/// `/etc/shadow` with `user`'s hash replaced (written atomically); an error if the user has no
/// line or the hash could break the file.
pub fn set_shadow_hash(shadow: &Path, user: &str, hash: &str) -> Result<(), String> {
    if hash.contains([':', '\n']) {
        return Err("the password hash holds ':' or a newline".into());
    }
    let text = std::fs::read_to_string(shadow).map_err(|e| format!("{}: {e}", shadow.display()))?;
    let prefix = format!("{user}:");
    let mut found = false;
    let mut out = String::with_capacity(text.len() + hash.len());
    for line in text.lines() {
        match line.strip_prefix(&prefix) {
            Some(rest) if !found => {
                found = true;
                let after = rest.split_once(':').map(|(_, a)| a).unwrap_or("");
                out.push_str(&format!("{prefix}{hash}:{after}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if !found {
        return Err(format!("{}: no line for {user}", shadow.display()));
    }
    crate::config::atomic::write_atomic(shadow, out.as_bytes(), 0o640)
        .map_err(|e| format!("{}: {e}", shadow.display()))
}

/// A SHA-512 crypt(3) hash of `password` by busybox `mkpasswd` (the password on its stdin,
/// never on a command line).
fn mkpasswd(password: &str) -> Result<String, String> {
    let out = feed(
        "mkpasswd",
        &["-m", "sha512", "-S", &salt(), "-P", "0"],
        password,
    )?;
    let hash = String::from_utf8_lossy(&out).trim().to_string();
    if !hash.starts_with("$6$") {
        return Err("mkpasswd gave no SHA-512 hash".into());
    }
    Ok(hash)
}

/// Run `program` with `input` on its stdin (never on a command line); its stdout.
fn feed(program: &str, args: &[&str], input: &str) -> Result<Vec<u8>, String> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("{program}: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{program}: {e}"))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("{program}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{program} failed ({})", out.status));
    }
    Ok(out.stdout)
}

/// 16 characters of crypt's salt alphabet, from the kernel's random bytes.
fn salt() -> String {
    const ALPHABET: &[u8] = b"./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut b = [0u8; 16];
    crate::random::fill(&mut b);
    b.iter()
        .map(|x| ALPHABET[(*x & 63) as usize] as char)
        .collect()
}

fn read_optional(p: &Path) -> Result<String, String> {
    match std::fs::read_to_string(p) {
        Ok(s) => Ok(s),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!("{}: {e}", p.display())),
    }
}

fn chmod(p: &Path, mode: u32) -> Result<(), String> {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {mode:o} {}: {e}", p.display()))
}

fn own(p: &Path) -> Result<(), String> {
    chown(p, Some(RANCHER), Some(RANCHER)).map_err(|e| format!("chown {}: {e}", p.display()))
}

/// `ln -sfn target link`: a new link beside, renamed over the old one.
pub(super) fn replace_symlink(target: &str, link: &Path) -> Result<(), String> {
    let tmp: PathBuf = link.with_extension("ros-tmp");
    let _ = std::fs::remove_file(&tmp);
    symlink(target, &tmp)
        .and_then(|()| std::fs::rename(&tmp, link))
        .map_err(|e| format!("ln -s {target} {}: {e}", link.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_added_once_and_hand_added_ones_stay() {
        let have = "ssh-ed25519 AAAA mine\nssh-ed25519 BBBB conf\n";
        let wanted = "ssh-ed25519 BBBB conf\n\nssh-ed25519 CCCC new\nssh-ed25519 CCCC new\n";
        assert_eq!(keys_to_add(have, wanted), ["ssh-ed25519 CCCC new"]);
        assert!(keys_to_add(have, "").is_empty());
        // A line is a key only whole: a prefix of one is another key.
        assert_eq!(
            keys_to_add("ssh-ed25519 AAAA mine", "ssh-ed25519 AAAA"),
            ["ssh-ed25519 AAAA"]
        );
    }

    #[test]
    fn the_shadow_hash_is_replaced_for_that_user_only() {
        let dir = tempfile::tempdir().unwrap();
        let shadow = dir.path().join("shadow");
        std::fs::write(
            &shadow,
            "root:*:19000:0:99999:7:::\nrancher:!:19000:0:99999:7:::\nrancherx:!:1::::::\n",
        )
        .unwrap();
        set_shadow_hash(&shadow, "rancher", "$6$salt$hash").unwrap();
        assert_eq!(
            std::fs::read_to_string(&shadow).unwrap(),
            "root:*:19000:0:99999:7:::\nrancher:$6$salt$hash:19000:0:99999:7:::\nrancherx:!:1::::::\n"
        );
        assert!(set_shadow_hash(&shadow, "rancher", "a:b").is_err());
        assert!(set_shadow_hash(&shadow, "nobody", "$6$x").is_err());
    }

    #[test]
    fn prepare_writes_keys_once_and_says_whether_passwords_are_on() {
        if !nix::unistd::geteuid().is_root() {
            // chown to 1100 needs root; CI runs as root, and there this test must run.
            assert!(std::env::var_os("CI").is_none(), "needs root under CI");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let input = tempfile::tempdir().unwrap();
        let r = root.path();
        for d in ["etc", "run", "var/lib/rancher/ssh"] {
            std::fs::create_dir_all(r.join(d)).unwrap();
        }
        std::fs::write(r.join("etc/sudoers"), "").unwrap();
        std::fs::write(r.join("etc/shadow"), "rancher:!:1::::::\n").unwrap();
        // A host key already made is kept as it is.
        std::fs::write(r.join(HOSTKEY.trim_start_matches('/')), "key").unwrap();
        std::fs::write(input.path().join("authorized_keys"), "ssh-ed25519 K1\n").unwrap();
        assert!(!prepare(r, input.path(), Server::Dropbear).unwrap());
        assert!(!prepare(r, input.path(), Server::Dropbear).unwrap());
        let ak = r.join("home/rancher/.ssh/authorized_keys");
        assert_eq!(std::fs::read_to_string(&ak).unwrap(), "ssh-ed25519 K1\n");
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&ak).unwrap();
        assert_eq!((m.uid(), m.mode() & 0o777), (RANCHER, 0o600));
        assert_eq!(
            std::fs::read_link(r.join("run/docker.sock")).unwrap(),
            Path::new("docker/docker.sock")
        );
        std::fs::write(input.path().join("password"), "$6$s$h\n").unwrap();
        assert!(prepare(r, input.path(), Server::Dropbear).unwrap());
        assert_eq!(
            std::fs::read_to_string(r.join("etc/shadow")).unwrap(),
            "rancher:$6$s$h:1::::::\n"
        );
    }
}
