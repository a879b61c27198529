//! The RancherOS-rs harness: builds the boot image (kernel + initrd) and boots it under QEMU,
//! for people (`harness run`) and for tests (the [`vm::Vm`] type).

pub mod accel;
pub mod bench;
pub mod consoles;
pub mod debs;
pub mod disk;
pub mod diskimage;
pub mod docker_cli;
pub mod fsutil;
pub mod image;
pub mod images;
pub mod initrd;
pub mod iso;
pub mod kernel;
pub mod osbin;
pub mod osimage;
pub mod paths;
pub mod reference;
pub mod registry;
pub mod scenario;
pub mod seed;
pub mod setup;
pub mod squashfs;
pub mod ssh;
pub mod suite;
pub mod test_images;
pub mod vm;
