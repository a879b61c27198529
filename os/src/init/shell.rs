//! PID 1's own shells. The console's terminal sessions belong to the console container
//! (`ros consoled`); PID 1 runs a root shell on a terminal only as the recovery console
//! (`rancher.recovery=true` on the kernel command line, for when the console container cannot
//! start), respawned when it exits. The emergency shell is the last resort when PID 1's own
//! loop cannot run.

use anyhow::Context;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};

const SHELL: &str = "/bin/sh";

/// Start a login shell on `/dev/<tty>` as its controlling terminal.
pub fn spawn_on(tty: &str) -> anyhow::Result<Child> {
    let path = format!("/dev/{tty}");
    let open = || {
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("open {path}"))
    };
    let mut cmd = Command::new(SHELL);
    cmd.arg("-l")
        .env_clear()
        .env("HOME", "/root")
        .env("USER", "root")
        .env("TERM", "vt100")
        .env(
            "PATH",
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        )
        .current_dir("/root")
        .stdin(Stdio::from(open()?))
        .stdout(Stdio::from(open()?))
        .stderr(Stdio::from(open()?));
    // Not PID 1's blocked signals (its signalfd's): Ctrl-C and the shutdown's hangup must reach
    // the shell and what it runs.
    crate::signals::clean_child(&mut cmd);
    // SAFETY: between fork and exec we only call async-signal-safe functions (setsid, ioctl).
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()?;
            if libc::ioctl(0, libc::TIOCSCTTY, 1) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn()
        .with_context(|| format!("start {SHELL} on {path}"))
}

/// The `recovery-console` step: with `rancher.recovery`, a root shell on the first autologin
/// tty, else the first console tty (the console container then runs no terminal sessions).
pub fn start_recovery(boot: &mut super::Boot) -> anyhow::Result<()> {
    if !boot.config.rancher.recovery {
        return Ok(());
    }
    let tty = crate::tty::recovery_tty(&boot.cmdline, &boot.config.rancher.autologin);
    std::fs::create_dir_all("/root").context("mkdir /root")?;
    let child = spawn_on(&tty)?;
    crate::console::say(format!("recovery console: a root shell on {tty}"));
    boot.console = Some((tty, child.id() as i32));
    Ok(())
}

/// The last resort: a shell on the console, again and again, reaping everything.
pub fn emergency_forever() -> ! {
    loop {
        match crate::signals::clean_child(Command::new("/bin/busybox").arg("sh")).spawn() {
            Ok(child) => loop {
                // Reap everything until our shell is gone; then start another.
                match nix::sys::wait::wait() {
                    Ok(status) if status.pid().map(|p| p.as_raw()) == Some(child.id() as i32) => {
                        break
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            },
            Err(e) => {
                crate::console::say(format!("emergency shell failed to start: {e}"));
                std::thread::sleep(std::time::Duration::from_secs(5));
            }
        }
    }
}
