//! The RancherOS-rs harness: builds the boot image (kernel + initrd) and boots it under QEMU,
//! for people (`harness run`) and for tests (the [`vm::Vm`] type).

pub mod kernel;
pub mod paths;
