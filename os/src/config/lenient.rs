//! Serde helpers that read values as tolerantly as RancherOS's Go YAML decoding did, so existing
//! cloud-config files are accepted as they are.
//!
//! Go decodes `null` (an empty `rancher:` with every key commented out) into a zero value; serde
//! would reject it for a struct, a list or a bool. These helpers read `null` as the default
//! instead. Scalars for string-typed keys (`hostname: 5`, `vm.max_map_count: 262144`) are already
//! taken as their text by serde_yaml_ng when the model is read from YAML text, which is why the
//! typed model is read from text (see `validate.rs`), or from a `Value` only where that gives the
//! same.

use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `null` reads as `T::default()`.
pub fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A map whose `null` values (`eth0:` with nothing under it) read as `T::default()`.
pub fn map_or_default<'de, D, T>(d: D) -> Result<BTreeMap<String, T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    let map: Option<BTreeMap<String, Option<T>>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.unwrap_or_default()))
        .collect())
}
