//! Docker's `filters` query parameter, one parser for every route that takes it: a JSON object
//! of key → values, as `{"status":["running"]}` or the old `{"status":{"running":true}}`. A key
//! the route does not know is a 400 (`invalid filter 'KEY'`), as dockerd answers, rather than
//! a filter silently ignored.

use crate::engine::api::ApiError;
use serde_json::Value;
use std::collections::HashMap;

pub type Filters = HashMap<String, Vec<String>>;

/// Parse `f` (absent or empty: no filters), accepting only the keys in `known`.
pub fn parse(f: Option<&str>, known: &[&str]) -> Result<Filters, ApiError> {
    let Some(f) = f.filter(|f| !f.is_empty()) else {
        return Ok(HashMap::new());
    };
    let v: Value = serde_json::from_str(f)
        .map_err(|e| ApiError::bad_request(format!("invalid filter: {e}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| ApiError::bad_request("invalid filter: not an object"))?;
    let mut out = HashMap::new();
    for (k, v) in obj {
        if !known.contains(&k.as_str()) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
        let vals: Vec<String> = match v {
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect(),
            Value::Object(o) => o.keys().cloned().collect(),
            _ => return Err(ApiError::bad_request(format!("invalid filter {k:?}"))),
        };
        out.insert(k.clone(), vals);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_unknown_keys() {
        let f = parse(Some(r#"{"status":["running","exited"]}"#), &["status"]).unwrap();
        assert_eq!(f["status"], ["running", "exited"]);
        let f = parse(Some(r#"{"status":{"running":true}}"#), &["status"]).unwrap();
        assert_eq!(f["status"], ["running"]);
        assert!(parse(None, &[]).unwrap().is_empty());
        assert!(parse(Some(""), &[]).unwrap().is_empty());
        assert!(parse(Some(r#"{"bogus":["x"]}"#), &["status"]).is_err());
        assert!(parse(Some(r#"{"status":"running"}"#), &["status"]).is_err());
        assert!(parse(Some("[1]"), &["status"]).is_err());
        assert!(parse(Some("{not json"), &["status"]).is_err());
    }
}
