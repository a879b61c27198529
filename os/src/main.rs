//! `ros`: the one static binary of RancherOS-rs. It is `/init` (PID 1) and every command of the
//! OS; which one runs is chosen by the name it was started as (`init`, `rancherctl`, …) or, when
//! started as `ros`, by its first argument. One binary keeps the initrd small and the parts in step.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    os::dispatch(args)
}
