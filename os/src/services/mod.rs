//! System services as data. A service is a compose-style entry under `rancher.services.<name>`
//! (RancherOS's schema, so users' existing files work). This module turns that permissive YAML
//! into a checked [`ServiceSpec`] (every error names the service and the key), orders services by
//! their `io.rancher.os.after`/`before` labels and `volumes_from` ([`order`]), and reads the
//! `restart:` policy ([`restart`]). `crate::system_services` acts on these through the system
//! engine; nothing here touches processes, so all of it is tested without a VM.

pub mod order;
pub mod restart;
pub mod spec;
pub mod words;

pub use order::{plan, Plan};
pub use restart::RestartPolicy;
pub use spec::{NsMode, Scope, ServiceError, ServiceSpec, Volume};
