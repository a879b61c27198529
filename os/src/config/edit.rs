//! Setting one key from a string, as `rancherctl config set KEY VALUE` and the kernel command line
//! (`rancher.KEY=VALUE`, `cc.KEY=VALUE`) both do.
//!
//! One place decides how a string becomes a YAML value and when it is refused, so the two entry
//! points cannot drift apart. A value is YAML-typed (`true`, `5`, `[a,b]`, `[]`) except that it
//! never becomes a map (`a:b` stays a string, as in RancherOS), and a value for a key the model
//! types as a string is stored as a string (`hostname 5` saves `'5'`). A value that makes a new
//! problem in the layer is refused with the typed model's message, naming the key.

use super::error::{ConfigError, Problem};
use super::keypath::is_under;
use super::merge::set_path;
use super::validate::check_value;
use serde_yaml_ng::Value;

/// Parse a value the way RancherOS does: as YAML (`true`, `5`, `[a,b]`), falling back to the plain
/// string when it is not valid YAML or would be a map. A value with a newline (a PEM key from
/// `"$(cat key)"`) is taken verbatim: YAML would fold its lines into one.
pub fn parse_value(raw: &str) -> Value {
    if raw.is_empty() || raw.contains('\n') {
        return Value::String(raw.to_string());
    }
    match serde_yaml_ng::from_str::<Value>(raw) {
        Ok(Value::Mapping(_)) | Err(_) => Value::String(raw.to_string()),
        Ok(v) => v,
    }
}

/// Set `key` (dotted) in the layer `layer` to `raw`, typed as described above. On error the layer
/// is unchanged and the reason names the key.
pub fn set_key(layer: &mut Value, key: &str, raw: &str) -> Result<(), String> {
    if key.contains(['[', ']']) {
        return Err(format!(
            "{key}: list items cannot be set one by one; set the whole list ([a,b]) or use merge"
        ));
    }
    let path: Vec<&str> = key.split('.').collect();
    let parsed = parse_value(raw);
    if parsed.is_null() {
        return Err(format!(
            "{raw:?} is null, which sets nothing (use [] to clear a list, '' for an empty string)"
        ));
    }
    // Problems the layer already had elsewhere do not block this key.
    let before = check_value("", layer.clone());
    let known: Vec<String> = before.problems().map(|p| p.path.clone()).collect();
    let is_new =
        |p: &Problem| !known.contains(&p.path) || is_under(&p.path, key) || is_under(key, &p.path);
    let mut candidate = layer.clone();
    set_path(&mut candidate, &path, parsed.clone())?;
    let after = check_value("", candidate.clone());
    if let Some(p) = after.problems().find(|p| is_new(p)) {
        let mut p = p.clone();
        p.location = None;
        return Err(p.to_string());
    }
    let scalar = matches!(parsed, Value::Bool(_) | Value::Number(_));
    if scalar && after.config.is_typed_key(key) {
        let mut as_string = layer.clone();
        set_path(&mut as_string, &path, Value::String(raw.to_string()))?;
        let check = check_value("", as_string.clone());
        if !check.problems().any(is_new) {
            *layer = as_string;
            return Ok(());
        }
    }
    *layer = candidate;
    Ok(())
}

/// Overlay command-line pairs on `base`, one at a time, in order: a `rancher.KEY` pair sets
/// `rancher.KEY`, a `cc.KEY` pair sets the top-level `KEY`. A pair that makes the configuration
/// invalid is reported and left out; the others apply.
pub fn apply_cmdline<'a>(
    base: &mut Value,
    pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (key, raw) in pairs {
        let path = key.strip_prefix("cc.").unwrap_or(key);
        if let Err(reason) = set_key(base, path, raw) {
            errors.push(ConfigError::Cmdline {
                key: key.to_string(),
                value: raw.to_string(),
                reason,
            });
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(s: &str) -> Value {
        serde_yaml_ng::from_str(s).unwrap()
    }

    #[test]
    fn values_are_yaml_typed() {
        assert_eq!(parse_value("5"), yaml("5"));
        assert_eq!(parse_value("[]"), yaml("[]"));
        assert_eq!(parse_value("[a,b]"), yaml("[a, b]"));
        assert_eq!(parse_value("a: b: c"), Value::String("a: b: c".into()));
        assert_eq!(parse_value("a: b"), Value::String("a: b".into()));
        assert_eq!(parse_value("{a: 1}"), Value::String("{a: 1}".into()));
        assert_eq!(parse_value(""), Value::String(String::new()));
        assert_eq!(parse_value("a\nb\n"), Value::String("a\nb\n".into()));
    }
}
