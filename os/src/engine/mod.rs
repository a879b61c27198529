pub mod api;
pub mod runtime;
pub mod store;
