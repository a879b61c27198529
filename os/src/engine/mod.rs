pub mod api;
pub mod manager;
pub mod registry;
pub mod rootfs;
pub mod runtime;
pub mod shim;
pub mod store;
pub mod volume;
