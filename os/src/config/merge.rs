//! How configuration layers combine. This is the one place these rules are written down.
//!
//! Layers, lowest first: built-in defaults (`/usr/share/ros/os-config.yml`), OEM config
//! (`/usr/share/ros/oem/oem-config.yml`), datasource data (`/var/lib/rancher/conf/cloud-config.d/
//! *.yml`, by file name, later names win), the `rancherctl config` layer
//! (`/var/lib/rancher/conf/cloud-config.yml`), then the kernel command line (`rancher.*` and `cc.*`
//! words, both sides of `--`, later words win). An upper layer is merged into the result of the
//! layers below it with [`merge`]:
//!
//! * **maps merge deeply**: key by key, recursively, so an upper layer that sets
//!   `rancher.network.dns.nameservers` keeps every other `rancher.*` key of the lower layers;
//! * **lists replace**: an upper `ssh_authorized_keys: [b]` over `[a]` gives `[b]`, never `[a, b]`
//!   (write `[]` to clear a list);
//! * **scalars replace**, whatever their types (a map over a scalar, or a scalar over a map,
//!   replaces too: the upper layer wins);
//! * **`null` is "not said"**: an upper `rancher:` with nothing under it (every key commented out)
//!   changes nothing below it. There is no way to delete a lower key from an upper layer; give it
//!   a value instead.
//!
//! Merging works on the raw YAML trees, never on the typed model, so keys the model does not know
//! merge by the same rules and survive. Each layer is type-checked on its own before it is merged,
//! so a bad value is reported with the file, line and key path it came from.
//!
//! The rules are pinned by the snapshot `snapshots/config/merge_table.snap`.

use serde_yaml_ng::{Mapping, Value};

/// Merge `upper` into `base`, by the rules above.
pub fn merge(base: &mut Value, upper: Value) {
    match (base, upper) {
        (_, Value::Null) => {}
        (Value::Mapping(b), Value::Mapping(u)) => {
            for (k, v) in u {
                match b.get_mut(&k) {
                    Some(slot) => merge(slot, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Set `path` (`["rancher", "debug"]`) in `root` to `value`, creating maps on the way (a `null`
/// on the way counts as an empty map). Fails when a step of the path already holds something that
/// is not a map.
pub fn set_path(root: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    if path.is_empty() || path.iter().any(|p| p.is_empty()) {
        return Err("empty key".into());
    }
    let mut cur = root;
    for (i, part) in path.iter().enumerate() {
        if cur.is_null() {
            *cur = Value::Mapping(Mapping::new());
        }
        let Value::Mapping(map) = cur else {
            return Err(format!("{} is not a map", path[..i].join(".")));
        };
        let key = Value::String((*part).to_string());
        if i + 1 == path.len() {
            map.insert(key, value);
            return Ok(());
        }
        cur = map
            .entry(key)
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    unreachable!("loop returns on the last part")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn maps_merge_lists_replace() {
        let mut b = yaml("a: {x: 1, y: [1, 2]}\nb: 2");
        merge(&mut b, yaml("a: {y: [3], z: 4}"));
        assert_eq!(b, yaml("a: {x: 1, y: [3], z: 4}\nb: 2"));
    }

    #[test]
    fn set_path_refuses_to_descend_into_scalars() {
        let mut b = yaml("a: 1");
        assert_eq!(
            set_path(&mut b, &["a", "b"], yaml("2")),
            Err("a is not a map".into())
        );
        set_path(&mut b, &["c", "d"], yaml("2")).unwrap();
        assert_eq!(b, yaml("a: 1\nc: {d: 2}"));
        let mut n = yaml("rancher:\n");
        set_path(&mut n, &["rancher", "debug"], yaml("true")).unwrap();
        assert_eq!(n, yaml("rancher: {debug: true}"));
    }

    /// The merge rules as a table: each row is a lower layer, an upper layer, and the result.
    #[test]
    fn merge_table() {
        let rows: &[(&str, &str, &str)] = &[
            ("maps merge key by key", "a: 1\nb: 2", "b: 3\nc: 4"),
            (
                "nested maps merge deeply",
                "rancher: {debug: false, network: {dns: {nameservers: [8.8.8.8]}, mtu: 1500}}",
                "rancher: {network: {dns: {search: [lan]}}}",
            ),
            (
                "lists replace, never append",
                "ssh_authorized_keys: [key-a, key-b]",
                "ssh_authorized_keys: [key-c]",
            ),
            ("an empty list clears", "runcmd: [a, b]", "runcmd: []"),
            ("scalars replace", "hostname: a", "hostname: b"),
            (
                "scalars replace across types",
                "rancher: {debug: false}",
                "rancher: {debug: 'yes'}",
            ),
            ("a map replaces a scalar", "x: 1", "x: {y: 2}"),
            ("a scalar replaces a map", "x: {y: 2}", "x: 1"),
            (
                "null is not said: the lower value stays",
                "rancher: {debug: true}\nhostname: a",
                "rancher:\nhostname: ~",
            ),
            ("an empty string is a value", "hostname: a", "hostname: ''"),
            (
                "unknown keys merge by the same rules",
                "vendor: {a: 1, list: [1]}",
                "vendor: {b: 2, list: [2]}",
            ),
            (
                "interface maps merge per interface",
                "rancher: {network: {interfaces: {eth*: {dhcp: true}}}}",
                "rancher: {network: {interfaces: {eth0: {address: 10.0.0.2/24}}}}",
            ),
            ("an empty upper layer changes nothing", "a: 1", "{}"),
        ];
        let table: Vec<Value> = rows
            .iter()
            .map(|(case, lower, upper)| {
                let mut result = yaml(lower);
                merge(&mut result, yaml(upper));
                let mut row = Mapping::new();
                row.insert("case".into(), Value::String(case.to_string()));
                row.insert("lower".into(), yaml(lower));
                row.insert("upper".into(), yaml(upper));
                row.insert("result".into(), result);
                Value::Mapping(row)
            })
            .collect();
        insta::with_settings!({
            snapshot_path => "../../../snapshots/config",
            prepend_module_to_snapshot => false,
            description => "config::merge rules, see the module doc of os/src/config/merge.rs",
        }, {
            insta::assert_yaml_snapshot!("merge_table", table);
        });
    }
}
