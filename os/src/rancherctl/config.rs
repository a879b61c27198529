//! `rancherctl config`: read, change, check and export the configuration, as RancherOS's
//! `ros config` did. It only ever writes the `rancherctl` layer
//! (`/var/lib/rancher/conf/cloud-config.yml`), atomically, and only after the new value passed
//! the typed model; everything it reads is the merge of all layers (see `config::merge`).
//!
//! The command runs against a [`ConfigPaths`] and explicit input/output streams so the tests drive
//! it on a temporary root and read what it printed.

use crate::cmdline::Cmdline;
use crate::config::{
    self, atomic, check_text, keypath, private, set_key, ConfigError, ConfigPaths, LayerKind,
};
use serde_yaml_ng::{Mapping, Value};
use std::io::{self, Read, Write};
use std::path::Path;
use std::process::ExitCode;

pub const USAGE: &str = "usage: rancherctl config <command>

commands:
  get KEY                        print a value (scalars plainly, maps and lists as YAML)
  set KEY VALUE                  set a value (YAML-typed: true, 5, [a,b], []) in the saved config
  export [--full] [--private] [-o FILE]
                                 print the configuration; --full adds the built-in defaults,
                                 --private adds passwords, keys and certificates
  merge [-i FILE]                merge a cloud-config (FILE or stdin) into the saved config
  validate [-i FILE]             check a cloud-config (FILE or stdin) without applying it
  images                         list the image of every service";

/// Mode of the files this command writes: they may hold passwords and keys.
const FILE_MODE: u32 = 0o600;
/// First line of every file this command writes, so it can be fed back as user data.
const HEADER: &str = "#cloud-config\n";

/// Why `rancherctl config` failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The problems themselves were already printed, one per line.
    #[error("{file}: {count} problem(s), nothing applied")]
    Invalid { file: String, count: usize },
    #[error("{file} does not parse, so it cannot be updated without losing its contents; fix or remove it: {reason}")]
    Unreadable { file: String, reason: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
}

/// The streams the command talks to.
pub struct Io<'a> {
    pub stdin: &'a mut dyn Read,
    pub stdout: &'a mut dyn Write,
    pub stderr: &'a mut dyn Write,
}

/// `rancherctl config …` on the running system.
pub fn main(args: &[String]) -> ExitCode {
    let cmdline = Cmdline::from_proc().unwrap_or_default();
    let (stdin, stdout, stderr) = (io::stdin(), io::stdout(), io::stderr());
    let mut io = Io {
        stdin: &mut stdin.lock(),
        stdout: &mut stdout.lock(),
        stderr: &mut stderr.lock(),
    };
    match run(args, &ConfigPaths::system(), &cmdline, &mut io) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CtlError::Usage(msg)) => {
            eprintln!("rancherctl config: {msg}\n\n{USAGE}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("rancherctl config: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Run one `rancherctl config` command.
pub fn run(
    args: &[String],
    paths: &ConfigPaths,
    cmdline: &Cmdline,
    io: &mut Io,
) -> Result<(), CtlError> {
    let Some((cmd, rest)) = args.split_first() else {
        return Err(CtlError::Usage("missing command".into()));
    };
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match cmd.as_str() {
        "get" => match rest.as_slice() {
            [key] => get(paths, cmdline, key, io),
            _ => Err(CtlError::Usage("get takes one KEY".into())),
        },
        "set" => match rest.as_slice() {
            ["--", key, value] | [key, value] => {
                set(paths, key, value)?;
                apply_live(paths, key, io)
            }
            _ => Err(CtlError::Usage("set takes KEY VALUE".into())),
        },
        "export" => export(paths, cmdline, &rest, io),
        "merge" => merge(paths, &input_flag(&rest)?, io),
        "validate" => validate(&input_flag(&rest)?, io),
        "images" if rest.is_empty() => images(paths, cmdline, io),
        "images" => Err(CtlError::Usage("images takes no arguments".into())),
        "-h" | "--help" | "help" => out(io, format!("{USAGE}\n")),
        other => Err(CtlError::Usage(format!("unknown command {other:?}"))),
    }
}

fn out(io: &mut Io, text: impl AsRef<str>) -> Result<(), CtlError> {
    io.stdout
        .write_all(text.as_ref().as_bytes())
        .map_err(|source| CtlError::Io {
            what: "stdout".into(),
            source,
        })
}

fn err_line(io: &mut Io, text: impl std::fmt::Display) {
    let _ = writeln!(io.stderr, "{text}");
}

/// Load every layer; problems go to stderr, as the command still works on what is left.
fn load(paths: &ConfigPaths, cmdline: &Cmdline, io: &mut Io) -> config::Loaded {
    let loaded = config::load_layers(paths, cmdline);
    for e in &loaded.errors {
        err_line(io, format_args!("rancherctl config: {e}"));
    }
    loaded
}

fn get(paths: &ConfigPaths, cmdline: &Cmdline, key: &str, io: &mut Io) -> Result<(), CtlError> {
    let loaded = load(paths, cmdline, io);
    // A missing key prints nothing and succeeds, as in RancherOS (scripts test for "").
    let Some(value) = keypath::get(&loaded.value, key) else {
        return Ok(());
    };
    let text = match value {
        Value::Null => return Ok(()),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => yaml(other)?,
    };
    if text.ends_with('\n') {
        out(io, text)
    } else {
        out(io, format!("{text}\n"))
    }
}

fn yaml(value: &Value) -> Result<String, CtlError> {
    serde_yaml_ng::to_string(value).map_err(|e| CtlError::Io {
        what: "printing YAML".into(),
        source: io::Error::other(e),
    })
}

/// The saved `rancherctl` layer exactly as it is on disk (bad keys included: they are the user's,
/// and only the key being changed is ours to judge). A missing file is an empty layer.
fn read_user_layer(path: &Path) -> Result<Value, CtlError> {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Value::Mapping(Mapping::new())),
        Err(source) => return Err(ConfigError::Read { path: file, source }.into()),
    };
    match serde_yaml_ng::from_str::<Value>(&text) {
        Ok(Value::Null) => Ok(Value::Mapping(Mapping::new())),
        Ok(v @ Value::Mapping(_)) => Ok(v),
        _ => {
            let reason = check_text(&file, &text)
                .errors
                .first()
                .and_then(ConfigError::problem)
                .map_or_else(|| "not a map".to_string(), ToString::to_string);
            Err(CtlError::Unreadable { file, reason })
        }
    }
}

fn write_user_layer(path: &Path, layer: &Value) -> Result<(), CtlError> {
    let text = format!("{HEADER}{}", yaml(layer)?);
    atomic::write_atomic(path, text.as_bytes(), FILE_MODE).map_err(|source| {
        ConfigError::Write {
            path: path.display().to_string(),
            source,
        }
        .into()
    })
}

/// Set `key` to `value` (YAML-typed) in the saved `rancherctl` layer, checked and atomic (also
/// `rancherctl service enable|disable`).
pub fn set(paths: &ConfigPaths, key: &str, value: &str) -> Result<(), CtlError> {
    let mut layer = read_user_layer(&paths.cloud_config)?;
    set_key(&mut layer, key, value).map_err(|reason| ConfigError::Rejected {
        key: key.to_string(),
        value: value.to_string(),
        reason,
    })?;
    write_user_layer(&paths.cloud_config, &layer)
}

/// Keys whose change a running system applies at once, and the service that applies it.
const LIVE: &[(&str, &str)] = &[("rancher.network", "network")];

/// After a saved change to `key` on the running system, restart the service that applies it
/// (through the system engine's API), so that `config set rancher.network…` takes effect now.
fn apply_live(paths: &ConfigPaths, key: &str, io: &mut Io) -> Result<(), CtlError> {
    if *paths != ConfigPaths::system() || !Path::new(crate::engine::api::SOCKET).exists() {
        return Ok(());
    }
    let Some((_, service)) = LIVE.iter().find(|(k, _)| keypath::is_under(key, k)) else {
        return Ok(());
    };
    let socket = format!("unix://{}", crate::engine::api::SOCKET);
    let result = crate::system_docker::client::Client::new(Some(&socket))
        .and_then(|c| crate::system_docker::lifecycle::act(&c, "restart", service, None));
    match result {
        Ok(()) => out(io, format!("{key}: saved; the {service} service was restarted to apply it\n")),
        Err(e) => out(
            io,
            format!("{key}: saved; restarting the {service} service failed ({e}): it applies at the next boot\n"),
        ),
    }
}

fn export(
    paths: &ConfigPaths,
    cmdline: &Cmdline,
    args: &[&str],
    io: &mut Io,
) -> Result<(), CtlError> {
    let (mut full, mut private, mut output) = (false, false, None);
    let mut args = args.iter();
    while let Some(a) = args.next() {
        match *a {
            "--full" | "-f" => full = true,
            "--private" | "-p" => private = true,
            "-o" | "--output" => {
                output = Some(
                    args.next()
                        .ok_or_else(|| CtlError::Usage("-o needs a FILE".into()))?,
                )
            }
            other => return Err(CtlError::Usage(format!("export: unknown flag {other:?}"))),
        }
    }
    let loaded = load(paths, cmdline, io);
    let mut value = if full {
        loaded.value.clone()
    } else {
        loaded.merged_from(LayerKind::Oem)
    };
    if !private {
        private::hide_private(&mut value);
    }
    let text = format!("{HEADER}{}", yaml(&value)?);
    match output {
        None => out(io, text),
        Some(file) => {
            atomic::write_atomic(Path::new(file), text.as_bytes(), FILE_MODE).map_err(|source| {
                ConfigError::Write {
                    path: file.to_string(),
                    source,
                }
                .into()
            })
        }
    }
}

/// `-i FILE`, or stdin when absent.
fn input_flag(args: &[&str]) -> Result<Option<String>, CtlError> {
    match args {
        [] => Ok(None),
        ["-i" | "--input", file] => Ok(Some(file.to_string())),
        _ => Err(CtlError::Usage("expected [-i FILE]".into())),
    }
}

/// The input text and the name it goes by in messages.
fn read_input(file: &Option<String>, io: &mut Io) -> Result<(String, String), CtlError> {
    match file {
        Some(f) => std::fs::read_to_string(f)
            .map(|t| (f.clone(), t))
            .map_err(|source| {
                ConfigError::Read {
                    path: f.clone(),
                    source,
                }
                .into()
            }),
        None => {
            let mut text = String::new();
            io.stdin
                .read_to_string(&mut text)
                .map_err(|source| CtlError::Io {
                    what: "stdin".into(),
                    source,
                })?;
            Ok(("stdin".to_string(), text))
        }
    }
}

/// Check an input; print its problems and warnings. Returns its tree when it has no problem.
fn checked_input(file: &Option<String>, io: &mut Io) -> Result<Value, CtlError> {
    let (name, text) = read_input(file, io)?;
    let checked = check_text(&name, &text);
    for w in &checked.warnings {
        err_line(io, format_args!("warning: {w}"));
    }
    for e in &checked.errors {
        err_line(io, e);
    }
    if checked.errors.is_empty() {
        Ok(checked.value)
    } else {
        Err(CtlError::Invalid {
            file: name,
            count: checked.errors.len(),
        })
    }
}

fn merge(paths: &ConfigPaths, file: &Option<String>, io: &mut Io) -> Result<(), CtlError> {
    let input = checked_input(file, io)?;
    let mut layer = read_user_layer(&paths.cloud_config)?;
    config::merge(&mut layer, input);
    write_user_layer(&paths.cloud_config, &layer)
}

fn validate(file: &Option<String>, io: &mut Io) -> Result<(), CtlError> {
    checked_input(file, io).map(|_| ())
}

fn images(paths: &ConfigPaths, cmdline: &Cmdline, io: &mut Io) -> Result<(), CtlError> {
    let loaded = load(paths, cmdline, io);
    let mut seen = Vec::new();
    for image in loaded.config.images() {
        if !seen.contains(&image) {
            seen.push(image);
        }
    }
    let text: String = seen.iter().map(|i| format!("{i}\n")).collect();
    out(io, text)
}

#[cfg(test)]
mod tests;
