//! The ACPI power button, read straight from its evdev device (`/dev/input/eventN` whose name is
//! "Power Button"), as systemd-logind does. QEMU's `system_powerdown` arrives here. PID 1 reads it
//! itself only when no `acpid` system service is running (it is disabled, or failed to start),
//! so that a press always shuts the machine down; otherwise the button is acpid's.

use anyhow::Context;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;

/// The system service that owns the power button when it runs.
const ACPID: &str = "acpid";
const EV_KEY: u16 = 0x01;
const KEY_POWER: u16 = 116;
/// `struct input_event` on 64-bit Linux: timeval (16) + type (2) + code (2) + value (4).
const EVENT_SIZE: usize = 24;

pub fn open(boot: &mut super::Boot) -> anyhow::Result<()> {
    let _ = boot;
    if crate::system_services::status::is_running(ACPID) {
        tracing::info!(
            service = ACPID,
            "power button left to the acpid system service"
        );
        return Ok(());
    }
    crate::console::say("power button: no acpid service running; PID 1 listens itself");
    let dir = std::fs::read_dir("/sys/class/input").context("/sys/class/input")?;
    for entry in dir.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !name.starts_with("event") {
            continue;
        }
        let label = std::fs::read_to_string(entry.path().join("device/name")).unwrap_or_default();
        if label.trim() != "Power Button" {
            continue;
        }
        let dev = format!("/dev/input/{name}");
        let f = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(&dev)
            .with_context(|| format!("open {dev}"))?;
        tracing::debug!(device = %dev, "power button");
        boot.power_buttons.push(f);
    }
    if boot.power_buttons.is_empty() {
        anyhow::bail!("no \"Power Button\" input device (ACPI off?)");
    }
    Ok(())
}

/// Drain pending events from one device; true when the power key was pressed.
pub fn pressed(dev: &mut File) -> bool {
    let mut buf = [0u8; EVENT_SIZE * 16];
    let mut hit = false;
    while let Ok(n) = dev.read(&mut buf) {
        if n == 0 {
            break;
        }
        hit |= buf[..n].chunks_exact(EVENT_SIZE).any(is_power_press);
    }
    hit
}

fn is_power_press(ev: &[u8]) -> bool {
    let ty = u16::from_ne_bytes([ev[16], ev[17]]);
    let code = u16::from_ne_bytes([ev[18], ev[19]]);
    let value = i32::from_ne_bytes([ev[20], ev[21], ev[22], ev[23]]);
    ty == EV_KEY && code == KEY_POWER && value == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_key_press() {
        let mut ev = [0u8; EVENT_SIZE];
        ev[16..18].copy_from_slice(&EV_KEY.to_ne_bytes());
        ev[18..20].copy_from_slice(&KEY_POWER.to_ne_bytes());
        ev[20..24].copy_from_slice(&1i32.to_ne_bytes());
        assert!(is_power_press(&ev));
        ev[20..24].copy_from_slice(&0i32.to_ne_bytes());
        assert!(!is_power_press(&ev), "a release is not a press");
    }
}
