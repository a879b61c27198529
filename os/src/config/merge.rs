//! The one merge rule of the configuration layers: maps merge key by key, recursively; lists and
//! scalars from the upper layer replace the lower layer's value whole.

use serde_yaml_ng::{Mapping, Value};

/// Merge `upper` into `base`.
pub fn merge(base: &mut Value, upper: Value) {
    match (base, upper) {
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

/// Set `path` (`["rancher", "debug"]`) in `root` to `value`, creating maps on the way. Fails when
/// a step of the path already holds something that is not a map.
pub fn set_path(root: &mut Value, path: &[&str], value: Value) -> Result<(), String> {
    if path.is_empty() || path.iter().any(|p| p.is_empty()) {
        return Err("empty key".into());
    }
    if root.is_null() {
        *root = Value::Mapping(Mapping::new());
    }
    let mut cur = root;
    for (i, part) in path.iter().enumerate() {
        let Value::Mapping(map) = cur else {
            return Err(format!("{} is not a map", path[..i].join(".")));
        };
        let key = Value::String((*part).to_string());
        if i + 1 == path.len() {
            map.insert(key, value);
            return Ok(());
        }
        cur = map.entry(key).or_insert_with(|| Value::Mapping(Mapping::new()));
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
        assert_eq!(set_path(&mut b, &["a", "b"], yaml("2")), Err("a is not a map".into()));
        set_path(&mut b, &["c", "d"], yaml("2")).unwrap();
        assert_eq!(b, yaml("a: 1\nc: {d: 2}"));
    }
}
