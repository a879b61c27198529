//! Checking one layer against the typed model, the way every entry point needs it: report each bad
//! value with its file, line, column and key path, leave out that key alone, keep the rest.
//!
//! Serde stops at the first error, so a layer is checked in a loop: read, find the bad key from
//! the error's path, remove it, read again. Only the first read is of the file's own text; later
//! ones read the tree re-serialized, so their line numbers are found again in the original text by
//! walking it to the key path ([`locate`]). The typed model is read from YAML *text*:
//! serde_yaml_ng then hands any scalar to a string-typed key as its text (`hostname: 5`), as
//! RancherOS's Go decoder did; reading from a `Value` would reject that. A layer's tree must also
//! read back once written out (what `rancherctl config` saves is read at the next boot).
//!
//! Two trees skip the text when they read as they are ([`check_builtin`], [`check_merged`]): the
//! initrd's own defaults and the merge of checked layers, neither of which is ever saved. A tree
//! that reads from the `Value` reads the same from its text (the same types, the same
//! `Deserialize`); one that does not is checked the long way, with the same errors as before.
//! Why: every `ros` process loads the configuration (PID 1 first, then the engine's reload,
//! `cloud-init-save`, `netconf`, …), and the text round trips were most of a load: four YAML
//! parses and two writes of the 300-line defaults (natively 2.6 → 1.7 ms a `rancherctl` run).
//! Under TCG PID 1's first load stays ~50 ms: there the cost is translating code that runs once.

use super::error::{ConfigError, ConfigWarning, Location, Problem};
use super::keypath::{self, Step};
use super::model::Config;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml_ng::{Mapping, Value};
use std::fmt;

/// A layer after checking: its tree without the bad keys, the typed view of that tree, and what
/// was found on the way.
#[derive(Debug)]
pub struct Checked {
    pub value: Value,
    pub config: Config,
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl Checked {
    /// The problems found, in order.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.errors.iter().filter_map(ConfigError::problem)
    }
}

/// At most this many bad keys are dropped one by one; past that the layer is left out whole.
const MAX_PROBLEMS: usize = 64;

/// Check one layer given as YAML text (a file, user data, stdin). `file` names it in messages.
pub fn check_text(file: &str, text: &str) -> Checked {
    let value = match serde_yaml_ng::from_str::<Value>(text) {
        Ok(Value::Null) => Value::Mapping(Mapping::new()),
        Ok(v @ Value::Mapping(_)) => v,
        Ok(other) => {
            return left_out(
                file,
                Problem {
                    location: None,
                    path: String::new(),
                    message: format!(
                    "expected a map of keys at the top level (a #cloud-config document), found {}",
                    kind(&other)
                ),
                },
            )
        }
        Err(e) => {
            let (location, message) = split_location(&e);
            return left_out(
                file,
                Problem {
                    location,
                    path: String::new(),
                    message,
                },
            );
        }
    };
    check(file, value, Some(text))
}

/// Check the initrd's built-in defaults (`os-config.yml`, shipped with this binary and never
/// saved): typed from the tree when it reads so, without the text checks a user's layer gets
/// (its test, `builtin_defaults_are_valid`, gives the shipped file those); otherwise as
/// [`check_text`].
pub fn check_builtin(file: &str, text: &str) -> Checked {
    match serde_yaml_ng::from_str::<Value>(text) {
        Ok(value @ Value::Mapping(_)) => check_merged(file, value),
        _ => check_text(file, text),
    }
}

/// Check a merge of checked layers (not saved: nothing has to read back): typed from the tree
/// when it reads so; otherwise as [`check_value`] (the text round trip, which also takes a
/// scalar for a string-typed key, and names the bad keys).
pub fn check_merged(file: &str, value: Value) -> Checked {
    if value.is_mapping() {
        // (Read through a borrow: no copy of the tree.)
        if let Ok(config) = <Config as serde::Deserialize>::deserialize(&value) {
            return Checked {
                warnings: unknown_key_warnings(file, &config),
                value,
                config,
                errors: Vec::new(),
            };
        }
    }
    check_value(file, value)
}

fn unknown_key_warnings(file: &str, config: &Config) -> Vec<ConfigWarning> {
    config
        .unknown_keys()
        .into_iter()
        .map(|key| ConfigWarning::UnknownKey {
            file: file.to_string(),
            key,
        })
        .collect()
}

/// Check a tree that has no text of its own (the command line, a merge result): problems carry
/// key paths but no line numbers.
pub fn check_value(file: &str, value: Value) -> Checked {
    let value = match value {
        Value::Null => Value::Mapping(Mapping::new()),
        v @ Value::Mapping(_) => v,
        other => {
            return left_out(
                file,
                Problem {
                    location: None,
                    path: String::new(),
                    message: format!("expected a map at the top level, found {}", kind(&other)),
                },
            )
        }
    };
    check(file, value, None)
}

/// Read the merged YAML into the typed view (the first problem fails it).
pub fn typed(value: &Value) -> Result<Config, serde_yaml_ng::Error> {
    serde_yaml_ng::from_str(&serde_yaml_ng::to_string(value)?)
}

fn left_out(file: &str, problem: Problem) -> Checked {
    Checked {
        value: Value::Mapping(Mapping::new()),
        config: Config::default(),
        errors: vec![ConfigError::Syntax {
            file: file.to_string(),
            problem,
        }],
        warnings: Vec::new(),
    }
}

fn check(file: &str, mut value: Value, original: Option<&str>) -> Checked {
    let mut errors = Vec::new();
    // List items dropped so far, in the input's own numbering: (path of the list, index). Later
    // errors name paths in the shrunken tree; this maps them back to the input's.
    let mut dropped_items: Vec<(Vec<Step>, usize)> = Vec::new();
    for attempt in 0..=MAX_PROBLEMS {
        let result = match (attempt, original) {
            // The tree is what is merged and saved again (`rancherctl config`): it must read back
            // as well as the text did.
            (0, Some(text)) => serde_yaml_ng::from_str::<Config>(text)
                .and_then(|config| typed(&value).map(|_| config)),
            _ => typed(&value),
        };
        let e = match result {
            Ok(config) => {
                let warnings = unknown_key_warnings(file, &config);
                sort_by_location(&mut errors);
                return Checked {
                    value,
                    config,
                    errors,
                    warnings,
                };
            }
            Err(e) => e,
        };
        let mut problem = problem_of(&e, &value);
        let steps = keypath::resolve(&value, &problem.path).unwrap_or_default();
        let input_steps = in_input_numbering(&steps, &dropped_items);
        if !steps.is_empty() {
            problem.path = keypath::format(&input_steps);
        }
        problem.location = original.and_then(|text| {
            let serde_location = (attempt == 0).then(|| split_location(&e).0).flatten();
            locate(text, &input_steps).or(serde_location)
        });
        let dropped = keypath::remove_at(&mut value, &steps).is_some();
        if let (true, Some((Step::Index(i), list))) = (dropped, input_steps.split_last()) {
            dropped_items.push((list.to_vec(), *i));
        }
        errors.push(ConfigError::Invalid {
            file: file.to_string(),
            problem,
        });
        if !dropped || attempt == MAX_PROBLEMS {
            // Nothing to drop but the whole layer.
            sort_by_location(&mut errors);
            return Checked {
                value: Value::Mapping(Mapping::new()),
                config: Config::default(),
                errors,
                warnings: Vec::new(),
            };
        }
    }
    unreachable!("the loop returns on its last attempt")
}

/// Map steps in the tree with `dropped` list items removed back to the input's numbering.
fn in_input_numbering(steps: &[Step], dropped: &[(Vec<Step>, usize)]) -> Vec<Step> {
    let mut out: Vec<Step> = Vec::with_capacity(steps.len());
    for step in steps {
        let step = match step {
            Step::Index(i) => {
                let mut gone: Vec<usize> = dropped
                    .iter()
                    .filter(|(list, _)| *list == out)
                    .map(|(_, j)| *j)
                    .collect();
                gone.sort_unstable();
                let mut i = *i;
                for j in gone {
                    if j <= i {
                        i += 1;
                    }
                }
                Step::Index(i)
            }
            key => key.clone(),
        };
        out.push(step);
    }
    out
}

/// Problems in the order of the input's lines (unlocated ones keep their order, last).
fn sort_by_location(errors: &mut [ConfigError]) {
    errors.sort_by_key(|e| {
        e.problem()
            .and_then(|p| p.location)
            .map_or((usize::MAX, usize::MAX), |l| (l.line, l.column))
    });
}

/// What kind of YAML value `v` is, for messages ("a map", "a list", …).
pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a map",
        Value::Tagged(_) => "a tagged value",
    }
}

/// The error's text without its trailing ` at line L column C`, and that location.
fn split_location(e: &serde_yaml_ng::Error) -> (Option<Location>, String) {
    let text = e.to_string();
    match e.location() {
        Some(l) => {
            let suffix = format!(" at line {} column {}", l.line(), l.column());
            let text = match text.find(&suffix) {
                Some(i) => format!("{}{}", &text[..i], &text[i + suffix.len()..]),
                None => text,
            };
            let location = Location {
                line: l.line(),
                column: l.column(),
            };
            (Some(location), text)
        }
        None => (None, text),
    }
}

/// Split serde's `path: message` into its parts. A prefix counts as a path only when it names a
/// node of `value`, so a message such as `invalid type: …` is never taken for one.
fn problem_of(e: &serde_yaml_ng::Error, value: &Value) -> Problem {
    let (_, text) = split_location(e);
    if let Some((path, message)) = text.split_once(": ") {
        if keypath::resolve(value, path).is_some() {
            return Problem {
                location: None,
                path: path.to_string(),
                message: message.to_string(),
            };
        }
    }
    Problem {
        location: None,
        path: String::new(),
        message: text,
    }
}

/// Where the node at `steps` starts in `text`.
pub fn locate(text: &str, steps: &[Step]) -> Option<Location> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let e = Finder(steps).deserialize(de).err()?;
    if !e.to_string().contains(FOUND) {
        return None;
    }
    let l = e.location()?;
    Some(Location {
        line: l.line(),
        column: l.column(),
    })
}

/// The error a [`Finder`] raises on reaching its node, so that serde_yaml_ng marks it with the
/// node's position.
const FOUND: &str = "\u{1}found";

/// Walks a document to a node and fails there.
struct Finder<'p>(&'p [Step]);

impl<'de> DeserializeSeed<'de> for Finder<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Finder<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML node")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let Step::Key(want) = first else {
            return Ok(());
        };
        while let Some(key) = map.next_key::<Value>()? {
            let hit = match &key {
                Value::String(s) => s == want,
                Value::Number(n) => n.to_string() == *want,
                Value::Bool(b) => b.to_string() == *want,
                _ => false,
            };
            if hit {
                return map.next_value_seed(Finder(rest));
            }
            map.next_value::<IgnoredAny>()?;
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let Some((first, rest)) = self.0.split_first() else {
            return Err(de::Error::custom(FOUND));
        };
        let Step::Index(want) = first else {
            return Ok(());
        };
        for _ in 0..*want {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Finder(rest)).map(|_| ())
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.scalar()
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<(), A::Error> {
        // A tagged node (`!foo x`): look through the tag.
        let (_, variant) = data.variant::<IgnoredAny>()?;
        de::VariantAccess::newtype_variant_seed(variant, self)
    }
}

impl Finder<'_> {
    fn scalar<E: de::Error>(&self) -> Result<(), E> {
        if self.0.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nodes() {
        let text = "#cloud-config\nhostname: a\nrancher:\n  network:\n    interfaces:\n      eth0: {mtu: big}\nwrite_files:\n- path: /x\n- path: /y\n  permissions: nope\n";
        let v: Value = serde_yaml_ng::from_str(text).unwrap();
        let at = |p: &str| {
            let steps = keypath::resolve(&v, p).unwrap();
            locate(text, &steps).map(|l| (l.line, l.column))
        };
        assert_eq!(at("hostname"), Some((2, 11)));
        assert_eq!(at("rancher.network.interfaces.eth0.mtu"), Some((6, 19)));
        assert_eq!(at("write_files[1].permissions"), Some((10, 16)));
        assert_eq!(at("write_files[1]"), Some((9, 3)));
    }
}
