//! The web UI's pages, one file per area.

pub mod config;
pub mod containers;
pub mod follow;
pub mod layout;
pub mod login;
pub mod logs;
pub mod overview;
pub mod services;
pub mod system;
