//! The watchdog of a trial boot: what resets a machine whose new version hangs instead of
//! failing (an init that never gets to `ready`, a health gate that never decides, a shutdown
//! that never ends), so that GRUB, finding the trial spent, boots the other slot.
//!
//! GRUB puts [`KERNEL_ARGS`] on a trial boot's kernel line: the kernel's `softdog` starts at
//! boot with a margin that covers a boot to `ready` (nothing feeds it meanwhile: the kernel's
//! own feeding until `/dev/watchdog` is opened is for watchdogs that say they run, which
//! softdog on 6.1 does not). The health gate opens it, shortens its timeout to [`GATE_TIMEOUT`],
//! feeds it while it watches, and stops it (the "magic close": a `V`, then close) once the slot
//! is marked good. An init that never gets the gate started, a gate that dies or runs past its
//! deadline, a reboot that never ends: the watchdog is no longer fed, and resets the machine.
//! Outside a trial nothing arms it.
//!
//! Softdog is a kernel timer: it catches a hung userland and most kernel hangs, not one with
//! interrupts off (a hardware watchdog would; the gate feeds whichever `/dev/watchdog` is).

use anyhow::Context;
use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The watchdog's device.
pub const DEVICE: &str = "/dev/watchdog";
/// What GRUB adds to a trial boot's kernel line (`harness/src/diskimage.rs` writes it into
/// `grub.cfg`): the watchdog runs from boot and resets the machine unless the gate has it
/// within 3 minutes.
pub const KERNEL_ARGS: &str = "softdog.soft_active_on_boot=1 softdog.soft_margin=180";
/// The timeout the gate sets once it has the watchdog: how long a hung gate or shutdown lasts.
pub const GATE_TIMEOUT: Duration = Duration::from_secs(60);

nix::ioctl_read!(wdioc_gettimeout, b'W', 7, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

/// An open watchdog, fed by a thread of its own until a deadline or until stopped.
pub struct Watchdog {
    dev: Arc<Mutex<Option<File>>>,
    /// The watchdog's timeout, as the driver reports it.
    pub timeout: Duration,
}

/// Whether this boot's kernel line armed the watchdog.
pub fn armed_by(cmdline: &str) -> bool {
    cmdline
        .split_whitespace()
        .any(|w| w == "softdog.soft_active_on_boot=1")
}

impl Watchdog {
    /// Opens `path` (opening starts a watchdog that was not running), sets its timeout to
    /// `timeout` where the driver allows, and feeds it from a thread, every third of the
    /// timeout it reports, until `feed_until`. `Ok(None)`: there is none.
    pub fn open(
        path: &Path,
        timeout: Duration,
        feed_until: Instant,
    ) -> anyhow::Result<Option<Watchdog>> {
        let file = match std::fs::OpenOptions::new().write(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
        };
        let mut want = timeout.as_secs().min(i32::MAX as u64) as libc::c_int;
        // SAFETY: WDIOC_SETTIMEOUT reads and writes one int through the pointer, valid for the
        // call; the fd is open. A driver that refuses keeps its own timeout, read next.
        let _ = unsafe { wdioc_settimeout(file.as_raw_fd(), &mut want) };
        let mut secs: libc::c_int = 0;
        // SAFETY: WDIOC_GETTIMEOUT writes one int through the pointer, which is valid and
        // lives across the call; the fd is open.
        let timeout = match unsafe { wdioc_gettimeout(file.as_raw_fd(), &mut secs) } {
            Ok(_) if secs > 0 => Duration::from_secs(secs as u64),
            _ => timeout,
        };
        let dev = Arc::new(Mutex::new(Some(file)));
        let fed = dev.clone();
        let every = (timeout / 3).max(Duration::from_secs(1));
        std::thread::spawn(move || loop {
            if Instant::now() >= feed_until {
                // Unfed from now on: the machine resets when the timeout runs out, unless
                // the watchdog was stopped first.
                return;
            }
            match fed.lock() {
                Ok(mut g) => match g.as_mut() {
                    // Any byte but `V` feeds it (and cancels a magic close begun before).
                    Some(f) => {
                        let _ = f.write_all(b"\0");
                    }
                    None => return,
                },
                Err(_) => return,
            }
            std::thread::sleep(every);
        });
        Ok(Some(Watchdog { dev, timeout }))
    }

    /// Stops the watchdog: the magic close. A driver built with `NOWAYOUT` keeps counting,
    /// which [`Watchdog::stop`] cannot see; the kernel config leaves it out.
    pub fn stop(self) -> anyhow::Result<()> {
        let mut g = self
            .dev
            .lock()
            .map_err(|_| anyhow::anyhow!("the watchdog's lock is poisoned"))?;
        if let Some(mut f) = g.take() {
            f.write_all(b"V")
                .with_context(|| format!("writing the magic close to {DEVICE}"))?;
            drop(f);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_trial_argument_arms_it() {
        assert!(armed_by(&format!(
            "console=ttyS0 rancher.boot.slot=SLOT_B {KERNEL_ARGS}"
        )));
        assert!(!armed_by("console=ttyS0 rancher.boot.slot=SLOT_B"));
        assert!(!armed_by("softdog.soft_active_on_boot=0"));
    }

    #[test]
    fn it_is_fed_at_once_and_stopped_with_a_v() {
        // A plain file stands in for the device: the feeding thread's writes are its bytes.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("watchdog");
        std::fs::write(&path, b"").unwrap();
        let wd = Watchdog::open(
            &path,
            Duration::from_secs(30),
            Instant::now() + Duration::from_millis(1500),
        )
        .unwrap()
        .unwrap();
        // Not a device: the timeout ioctls fail, so the one asked for, fed every 10 s: one
        // byte at once.
        assert_eq!(wd.timeout, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(std::fs::read(&path).unwrap(), b"\0");
        wd.stop().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"\0V");
        assert!(
            Watchdog::open(&dir.path().join("none"), GATE_TIMEOUT, Instant::now())
                .unwrap()
                .is_none()
        );
    }
}
