//! The console's terminals: which ttys get a session and how (a login prompt, or `rancher`
//! logged in without one), and hanging a terminal up.
//!
//! As in RancherOS, the sessions belong to the console container, not to PID 1: the user lands
//! in the same userland (busybox, sudo) on the serial line as over SSH. PID 1 decides the list
//! from the kernel command line (every `console=` tty) and `rancher.autologin` (the ttys that
//! log in `rancher` without a password), writes it for the container ([`render`]), and the
//! container's `ros consoled` reads it back ([`parse`]) and keeps a getty on each.

use std::fmt;

/// One terminal and what runs on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The device name under `/dev` (`ttyS0`).
    pub tty: String,
    /// `rancher` is logged in without a prompt; otherwise getty asks for a login.
    pub autologin: bool,
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.autologin { "autologin" } else { "login" };
        write!(f, "{} {how}", self.tty)
    }
}

/// A tty name as the kernel and users write it (`ttyS0`, `/dev/ttyS0`, `tty1`, `hvc0`: letters
/// then digits), or None for what is not a terminal we could run a session on (`null`, `lp0`,
/// paths).
pub fn tty_name(raw: &str) -> Option<String> {
    let name = raw.trim().trim_start_matches("/dev/");
    let digits = name.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let ok = digits.len() < name.len()
        && !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit())
        && !name.starts_with("lp");
    ok.then(|| name.to_string())
}

/// The ttys named by `rancher.autologin`: a name or several, split by commas or spaces.
pub fn autologin_ttys(value: &str) -> Vec<String> {
    value
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter_map(tty_name)
        .collect()
}

/// The kernel's console ttys, from every `console=NAME[,options]` word; `tty0` (the current
/// virtual terminal) is `tty1`.
pub fn kernel_consoles(cmdline: &crate::cmdline::Cmdline) -> Vec<String> {
    cmdline
        .kernel
        .iter()
        .filter_map(|w| w.strip_prefix("console="))
        .filter_map(|v| tty_name(v.split(',').next().unwrap_or("")))
        .map(|t| if t == "tty0" { "tty1".to_string() } else { t })
        .collect()
}

/// Every console tty gets a session: the autologin ones log `rancher` in, the others get a
/// login prompt. An autologin tty that is not a kernel console gets its session too; with
/// neither, `tty1`.
pub fn sessions(cmdline: &crate::cmdline::Cmdline, autologin: &str) -> Vec<Session> {
    let auto = autologin_ttys(autologin);
    let mut ttys = kernel_consoles(cmdline);
    ttys.extend(auto.iter().cloned());
    if ttys.is_empty() {
        ttys.push("tty1".into());
    }
    let mut out: Vec<Session> = Vec::new();
    for tty in ttys {
        if !out.iter().any(|s| s.tty == tty) {
            out.push(Session {
                autologin: auto.contains(&tty),
                tty,
            });
        }
    }
    out
}

/// The recovery console's tty (`rancher.recovery`): the first autologin tty, else the first
/// kernel console, else `tty1`.
pub fn recovery_tty(cmdline: &crate::cmdline::Cmdline, autologin: &str) -> String {
    autologin_ttys(autologin)
        .into_iter()
        .chain(kernel_consoles(cmdline))
        .next()
        .unwrap_or_else(|| "tty1".into())
}

/// The file PID 1 writes for the console container: a session a line.
pub fn render(sessions: &[Session]) -> String {
    sessions.iter().map(|s| format!("{s}\n")).collect()
}

/// Read [`render`]'s file back. Blank lines and `#` comments are skipped; anything else that
/// is not `TTY autologin|login` is an error naming the line.
pub fn parse(text: &str) -> Result<Vec<Session>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let session = match words.as_slice() {
            [tty, how @ ("autologin" | "login")] => tty_name(tty).map(|tty| Session {
                tty,
                autologin: *how == "autologin",
            }),
            _ => None,
        };
        out.push(session.ok_or_else(|| {
            format!(
                "line {}: {line:?}: expected `TTY autologin` or `TTY login`",
                n + 1
            )
        })?);
    }
    Ok(out)
}

/// `vhangup` a terminal, as a modem line dropping would: its sessions get SIGHUP and their
/// reads end, which ends interactive shells (they ignore SIGTERM, and busybox ash survives a
/// bare SIGHUP). Needs CAP_SYS_TTY_CONFIG.
pub fn hang_up(tty: &str) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let path = format!("/dev/{tty}");
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK)
        .open(&path)?;
    // SAFETY: TIOCVHANGUP takes no argument; the fd is valid for the call.
    if unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCVHANGUP) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::Cmdline;

    fn names(s: &[Session]) -> Vec<String> {
        s.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn tty_names() {
        assert_eq!(tty_name("/dev/ttyS0").as_deref(), Some("ttyS0"));
        assert_eq!(tty_name("hvc0").as_deref(), Some("hvc0"));
        assert_eq!(tty_name("tty1").as_deref(), Some("tty1"));
        for bad in ["", "null", "lp0", "../tty1", "tty 1", "0"] {
            assert_eq!(tty_name(bad), None, "{bad:?}");
        }
        assert_eq!(
            autologin_ttys("ttyS0, tty1 ttyS1"),
            ["ttyS0", "tty1", "ttyS1"]
        );
        assert!(autologin_ttys("").is_empty());
    }

    #[test]
    fn every_console_gets_a_session_and_autologin_picks_which_skip_the_prompt() {
        let c = Cmdline::parse("quiet console=tty0 console=ttyS0,115200n8 -- console=ttyS3");
        assert_eq!(kernel_consoles(&c), ["tty1", "ttyS0"]);
        assert_eq!(
            names(&sessions(&c, "ttyS0")),
            ["tty1 login", "ttyS0 autologin"]
        );
        assert_eq!(names(&sessions(&c, "")), ["tty1 login", "ttyS0 login"]);
        // An autologin tty that is not a kernel console still gets its session.
        assert_eq!(
            names(&sessions(&Cmdline::parse("console=ttyS0"), "ttyS1")),
            ["ttyS0 login", "ttyS1 autologin"]
        );
        assert_eq!(
            names(&sessions(&Cmdline::parse("quiet"), "")),
            ["tty1 login"]
        );
        assert_eq!(recovery_tty(&c, ""), "tty1");
        assert_eq!(recovery_tty(&c, "ttyS0"), "ttyS0");
        assert_eq!(recovery_tty(&Cmdline::parse("quiet"), ""), "tty1");
    }

    #[test]
    fn the_file_reads_back_and_a_bad_line_is_named() {
        let s = sessions(&Cmdline::parse("console=ttyS0 console=tty1"), "ttyS0");
        assert_eq!(parse(&render(&s)).unwrap(), s);
        assert_eq!(parse("# none\n\n").unwrap(), []);
        let err = parse("ttyS0 autologin\nttyS1 maybe\n").unwrap_err();
        assert!(
            err.contains("line 2") && err.contains("ttyS1 maybe"),
            "{err}"
        );
    }
}
