//! Which QEMU accelerator to use. TCG by default: on these machines a KVM guest can hang forever,
//! so KVM is used only when asked for (`HARNESS_ACCEL=kvm`) or when a time-bounded probe boot
//! succeeds (`HARNESS_ACCEL=auto`; the answer is cached per host boot).

use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Tcg,
    Kvm,
}

impl Accel {
    pub fn qemu_name(self) -> &'static str {
        match self {
            Accel::Tcg => "tcg",
            Accel::Kvm => "kvm",
        }
    }

    /// `HARNESS_ACCEL`: `tcg` (default), `kvm`, or `auto` (probe).
    pub fn from_env() -> Accel {
        match std::env::var("HARNESS_ACCEL").as_deref() {
            Ok("kvm") => Accel::Kvm,
            Ok("auto") => probe_cached(),
            _ => Accel::Tcg,
        }
    }
}

/// How long a KVM probe boot may take before KVM is judged unusable.
const PROBE_TIMEOUT: Duration = Duration::from_secs(20);

fn probe_cached() -> Accel {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let cache = crate::paths::repo_root().join("target").join("kvm-probe");
    if let Ok(text) = std::fs::read_to_string(&cache) {
        if let Some((id, verdict)) = text.split_once('\n') {
            if id == boot_id.trim() {
                return if verdict.trim() == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                };
            }
        }
    }
    let verdict = probe();
    eprintln!("[harness] KVM probe: using {}", verdict.qemu_name());
    let _ = std::fs::write(
        &cache,
        format!("{}\n{}\n", boot_id.trim(), verdict.qemu_name()),
    );
    verdict
}

/// Boot the floor image under KVM; KVM is usable when its `/init` runs in time.
fn probe() -> Accel {
    if !std::path::Path::new("/dev/kvm").exists() {
        return Accel::Tcg;
    }
    let Ok(floor) = crate::image::floor() else {
        return Accel::Tcg;
    };
    let mut opts = crate::vm::VmOptions::with_image("kvm-probe", &floor.kernel, &floor.initrd);
    opts.accel = Accel::Kvm;
    let Ok(mut vm) = crate::vm::Vm::boot(opts) else {
        return Accel::Tcg;
    };
    match vm.expect(crate::image::FLOOR_MARKER, PROBE_TIMEOUT) {
        Ok(_) => Accel::Kvm,
        Err(_) => Accel::Tcg,
    }
}
