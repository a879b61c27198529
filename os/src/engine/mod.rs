pub mod api;
pub mod runtime;
pub mod store;
pub mod shim;
pub mod rootfs;
pub mod manager;
