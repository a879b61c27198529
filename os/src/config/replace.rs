//! The whole configuration edited at once (the web UI's config editor): the operator is shown
//! what `rancherctl config export` prints (every layer from OEM up, secrets left out), edits it,
//! and gives it back. Only the `rancherctl` layer is ever written, so the edit is turned into
//! that layer: what changed or was added is set in it, what was removed is removed from it.
//!
//! What that layer cannot express is refused, naming the key and its line: removing a key a lower
//! layer sets (layers cannot delete, see `merge.rs`), changing one the kernel command line sets
//! (it wins over every file), touching a secret (the editor never shows one, so it must not
//! write one either). And the result is checked rather than trusted: the export the new layer
//! gives must be exactly the edited tree, or nothing is written.

use super::error::{Location, Problem};
use super::keypath::Step;
use super::layers::{Layer, LayerKind};
use super::private;
use super::validate;
use serde_yaml_ng::{Mapping, Value};

/// A new `rancherctl` layer for an edited export.
#[derive(Debug, Clone, PartialEq)]
pub struct Replaced {
    /// The new layer (the old one's secrets and keys the typed model dropped kept as they were).
    pub layer: Value,
    /// The key paths the edit set or removed, in order.
    pub changed: Vec<String>,
}

/// What the editor shows: the layers from OEM up, merged, without secrets, and without the
/// maps that held only secrets (an empty `docker: {}` would invite deleting what it hides).
pub fn export_view(layers: &[Layer]) -> Value {
    let mut v = super::merge_layers(layers.iter().filter(|l| l.kind >= LayerKind::Oem));
    hide(&mut v);
    v
}

/// Remove the secrets, then every map their removal left empty.
fn hide(v: &mut Value) {
    for key in private::hide_private(v) {
        let parts: Vec<&str> = key.split('.').collect();
        for n in (1..parts.len()).rev() {
            let parent = parts[..n].join(".");
            let empty = super::keypath::get(v, &parent)
                .is_some_and(|p| p.as_mapping().is_some_and(Mapping::is_empty));
            if !empty {
                break;
            }
            super::keypath::remove(v, &parent);
        }
    }
}

/// The `rancherctl` layer that turns `layers`' export into `text` (a whole `#cloud-config`
/// document). `user_raw` is that layer as it is on disk now. Problems carry `text`'s lines.
pub fn replace(layers: &[Layer], user_raw: &Value, text: &str) -> Result<Replaced, Vec<Problem>> {
    let checked = validate::check_text("editor", text);
    let problems: Vec<Problem> = checked.problems().cloned().collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    // `null` is "not said" when layers merge: an emptied key is a removed one.
    let mut edited = checked.value;
    strip_nulls(&mut edited);
    let at = |steps: &[Step]| validate::locate(text, steps);

    let mut secrets = Vec::new();
    for key in private::PRIVATE_KEYS {
        if let Some(steps) = super::keypath::resolve(&edited, key) {
            secrets.push(Problem {
                location: at(&steps),
                path: key.to_string(),
                message: "a secret: the editor neither shows nor sets secrets (use rancherctl config set)".into(),
            });
        }
    }
    if !secrets.is_empty() {
        return Err(secrets);
    }

    let before = export_view(layers);
    let mut layer = match user_raw {
        Value::Mapping(_) => user_raw.clone(),
        _ => Value::Mapping(Mapping::new()),
    };
    let mut changed = Vec::new();
    diff(&before, &edited, &mut Vec::new(), &mut |path, new| {
        changed.push(display(path));
        match new {
            Some(v) => set(&mut layer, path, v.clone()),
            None => {
                unset(&mut layer, path);
            }
        }
    });

    // Secrets are not the editor's: whatever a removal above took with it goes back.
    for key in private::PRIVATE_KEYS {
        if let (Some(v), None) = (
            super::keypath::get(user_raw, key),
            super::keypath::get(&layer, key),
        ) {
            let path: Vec<Value> = key.split('.').map(|k| Value::String(k.into())).collect();
            set(&mut layer, &path, v.clone());
        }
    }

    // What the new layer gives, read as it will be (bad keys it kept left out), checked against
    // what was asked.
    let read_back = validate::check_value("rancherctl", layer.clone()).value;
    let after_layers: Vec<Layer> = layers
        .iter()
        .map(|l| match l.kind {
            LayerKind::User => Layer {
                value: read_back.clone(),
                ..l.clone()
            },
            _ => l.clone(),
        })
        .chain(
            (!layers.iter().any(|l| l.kind == LayerKind::User)).then(|| Layer {
                kind: LayerKind::User,
                source: "rancherctl".into(),
                value: read_back.clone(),
            }),
        )
        .collect();
    let mut sorted = after_layers;
    sorted.sort_by_key(|l| l.kind);
    let after = export_view(&sorted);
    let mut problems = Vec::new();
    diff(&after, &edited, &mut Vec::new(), &mut |path, wanted| {
        problems.push(Problem {
            location: at(&steps(path)).or_else(|| parent_location(text, path)),
            path: display(path),
            message: why_not(layers, path, wanted),
        });
    });
    if problems.is_empty() {
        Ok(Replaced { layer, changed })
    } else {
        Err(problems)
    }
}

/// Why the export cannot become `wanted` at `path`: the layer that holds it, or the null.
fn why_not(layers: &[Layer], path: &[Value], wanted: Option<&Value>) -> String {
    let holder = layers
        .iter()
        .rev()
        .filter(|l| l.kind >= LayerKind::Oem && l.kind != LayerKind::User)
        .find(|l| get(&l.value, path).is_some_and(|v| !v.is_null()));
    match (holder, wanted) {
        (Some(l), _) if l.kind == LayerKind::Cmdline => {
            "set on the kernel command line, which wins over the saved configuration".into()
        }
        (Some(l), None) => format!(
            "set by {}: a layer above it cannot remove a key, only give it another value",
            l.source
        ),
        _ => "cannot be expressed in the saved configuration".into(),
    }
}

/// Call `f(path, new)` for every place where `b` differs from `a`: a key added or changed
/// (`Some`, the whole new subtree when `a` had none or a different kind there) or removed
/// (`None`). Maps are compared key by key; anything else as a whole.
fn diff(a: &Value, b: &Value, path: &mut Vec<Value>, f: &mut dyn FnMut(&[Value], Option<&Value>)) {
    match (a, b) {
        (Value::Mapping(ma), Value::Mapping(mb)) => {
            for (k, vb) in mb {
                path.push(k.clone());
                match ma.get(k) {
                    Some(va) => diff(va, vb, path, f),
                    None => f(path, Some(vb)),
                }
                path.pop();
            }
            for k in ma.keys().filter(|k| !mb.contains_key(*k)) {
                path.push(k.clone());
                f(path, None);
                path.pop();
            }
        }
        _ if a == b => {}
        _ => f(path, Some(b)),
    }
}

/// Remove every key whose value is `null`, at any depth.
fn strip_nulls(v: &mut Value) {
    if let Value::Mapping(m) = v {
        m.retain(|_, child| !child.is_null());
        for child in m.values_mut() {
            strip_nulls(child);
        }
    }
}

fn get<'a>(root: &'a Value, path: &[Value]) -> Option<&'a Value> {
    path.iter()
        .try_fold(root, |node, k| node.as_mapping()?.get(k))
}

/// Set `path` to `value`, making maps on the way (a non-map on the way is replaced).
fn set(root: &mut Value, path: &[Value], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        *root = value;
        return;
    };
    let mut node = root;
    for k in parents {
        node = map_of(node)
            .entry(k.clone())
            .or_insert_with(|| Value::Mapping(Mapping::new()));
    }
    map_of(node).insert(last.clone(), value);
}

/// `node` as a map, made one if it is anything else.
fn map_of(node: &mut Value) -> &mut Mapping {
    if !node.is_mapping() {
        *node = Value::Mapping(Mapping::new());
    }
    match node {
        Value::Mapping(m) => m,
        _ => unreachable!("made a map just above"),
    }
}

/// Remove `path` and then every map it leaves empty on the way up.
fn unset(root: &mut Value, path: &[Value]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let Some(map) = root.as_mapping_mut() else {
        return false;
    };
    if rest.is_empty() {
        return map.remove(first).is_some();
    }
    let Some(child) = map.get_mut(first) else {
        return false;
    };
    let removed = unset(child, rest);
    if removed && child.as_mapping().is_some_and(Mapping::is_empty) {
        map.remove(first);
    }
    removed
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => serde_yaml_ng::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

/// `a.b.c`, as every other message names keys.
pub fn display(path: &[Value]) -> String {
    path.iter().map(key_text).collect::<Vec<_>>().join(".")
}

fn steps(path: &[Value]) -> Vec<Step> {
    path.iter().map(|k| Step::Key(key_text(k))).collect()
}

/// The line of the nearest ancestor of `path` that is in `text` (a removed key has none).
fn parent_location(text: &str, path: &[Value]) -> Option<Location> {
    (1..path.len())
        .rev()
        .find_map(|n| validate::locate(text, &steps(&path[..n])))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layer(kind: LayerKind, source: &str, yaml: &str) -> Layer {
        Layer {
            kind,
            source: source.into(),
            value: serde_yaml_ng::from_str(yaml).unwrap(),
        }
    }

    fn system() -> Vec<Layer> {
        vec![
            layer(
                LayerKind::Defaults,
                "os-config.yml",
                "hostname: rancher\nrancher: {debug: false}",
            ),
            layer(
                LayerKind::Datasource,
                "cloud-config.d/nocloud.yml",
                "rancher: {network: {dns: {nameservers: [1.1.1.1]}}}\nssh_authorized_keys: [k]",
            ),
            layer(
                LayerKind::User,
                "cloud-config.yml",
                "hostname: box\nrancher: {password: secret, sysctl: {a.b: '1'}}",
            ),
            layer(
                LayerKind::Cmdline,
                "kernel command line",
                "rancher: {debug: true}",
            ),
        ]
    }

    fn user(layers: &[Layer]) -> Value {
        layers
            .iter()
            .find(|l| l.kind == LayerKind::User)
            .unwrap()
            .value
            .clone()
    }

    fn export_text(layers: &[Layer]) -> String {
        serde_yaml_ng::to_string(&export_view(layers)).unwrap()
    }

    #[test]
    fn the_unchanged_export_changes_nothing_and_keeps_secrets() {
        let layers = system();
        let text = export_text(&layers);
        assert!(!text.contains("secret") && !text.contains("ssh_authorized_keys"));
        let r = replace(&layers, &user(&layers), &text).unwrap();
        assert!(r.changed.is_empty());
        assert_eq!(r.layer, user(&layers));
    }

    #[test]
    fn changes_additions_and_removals_land_in_the_user_layer_only() {
        let layers = system();
        let text = export_text(&layers)
            .replace("hostname: box", "hostname: web1")
            .replace("    a.b: '1'\n", "")
            + "write_files: [{path: /x, content: y}]\n";
        let r = replace(&layers, &user(&layers), &text).unwrap();
        let want: Value = serde_yaml_ng::from_str(
            "hostname: web1\nrancher: {password: secret}\nwrite_files: [{path: /x, content: y}]",
        )
        .unwrap();
        assert_eq!(r.layer, want, "{text}");
        assert_eq!(r.changed, ["rancher.sysctl", "hostname", "write_files"]);
    }

    #[test]
    fn what_the_layer_cannot_say_is_refused_at_its_line() {
        let layers = system();
        // Removing a datasource's key.
        let text = export_text(&layers).replace(
            "  network:\n    dns:\n      nameservers:\n      - 1.1.1.1\n",
            "",
        );
        let e = replace(&layers, &user(&layers), &text).unwrap_err();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].path, "rancher.network");
        assert!(
            e[0].message
                .contains("set by cloud-config.d/nocloud.yml: a layer above it cannot remove"),
            "{}",
            e[0]
        );
        assert!(e[0].location.is_some());
        // Changing what the kernel command line sets.
        let text = export_text(&layers).replace("debug: true", "debug: false");
        let e = replace(&layers, &user(&layers), &text).unwrap_err();
        assert_eq!(e[0].path, "rancher.debug");
        assert!(e[0].message.contains("kernel command line"));
        let line = e[0].location.unwrap().line;
        assert_eq!(text.lines().nth(line - 1).unwrap().trim(), "debug: false");
        // A secret.
        let text = export_text(&layers) + "ssh_authorized_keys: [mine]\n";
        let e = replace(&layers, &user(&layers), &text).unwrap_err();
        assert_eq!(e[0].path, "ssh_authorized_keys");
        assert!(e[0].message.contains("secret"));
    }

    #[test]
    fn bad_yaml_and_bad_values_come_back_with_their_line() {
        let layers = system();
        let e = replace(&layers, &user(&layers), "hostname: a\nrancher: [\n").unwrap_err();
        assert!(e[0].location.is_some(), "{e:?}");
        let text = "hostname: a\nrancher:\n  debug: true\n  shutdown_timeout: soon\n";
        let e = replace(&layers, &user(&layers), text).unwrap_err();
        assert_eq!(e[0].path, "rancher.shutdown_timeout");
        assert_eq!(e[0].location.unwrap().line, 4);
    }

    #[test]
    fn secrets_survive_the_removal_of_what_held_them() {
        let layers = vec![
            layer(LayerKind::Defaults, "os-config.yml", "hostname: rancher"),
            layer(
                LayerKind::User,
                "cloud-config.yml",
                "hostname: box\nrancher: {password: secret, debug: true, docker: {server_key: K}}",
            ),
        ];
        let text = export_text(&layers);
        assert!(
            !text.contains("docker"),
            "a map of secrets only is not shown: {text}"
        );
        // The whole `rancher` map deleted, and what it hid with it.
        let r = replace(&layers, &user(&layers), "hostname: box\n").unwrap();
        assert_eq!(r.changed, ["rancher"]);
        let want: Value = serde_yaml_ng::from_str(
            "hostname: box\nrancher: {password: secret, docker: {server_key: K}}",
        )
        .unwrap();
        assert_eq!(r.layer, want);
    }

    #[test]
    fn an_emptied_key_is_removed_as_merging_reads_null() {
        let layers = system();
        let text = export_text(&layers).replace("hostname: box", "hostname:");
        let r = replace(&layers, &user(&layers), &text).unwrap();
        assert_eq!(r.changed, ["hostname"]);
        assert!(r.layer.get("hostname").is_none());
    }
}
