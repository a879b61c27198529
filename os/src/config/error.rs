//! What can go wrong with configuration, worded for the operator: every error names the file (or
//! "kernel command line") and, when it is about a value, the key path and the line and column.
//!
//! It is its own module because three callers report the same errors: PID 1 at boot, `rancherctl
//! config` on the terminal, and the tests, which pin the wording.

use std::fmt;

/// Where in a YAML text something is (1-based, as editors count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    pub line: usize,
    pub column: usize,
}

/// One bad value: where it is, its key path (empty for the top level) and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub location: Option<Location>,
    pub path: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.location {
            write!(f, "line {} column {}: ", l.line, l.column)?;
        }
        if !self.path.is_empty() && self.path != "." {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// A configuration problem, naming where it came from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A layer could not be read (a missing optional layer is not an error).
    #[error("{path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The text is not YAML, or not a map at the top level: the whole layer is left out.
    #[error("{file}: {problem}")]
    Syntax { file: String, problem: Problem },
    /// A value does not fit the typed model: that key alone is left out.
    #[error("{file}: {problem}")]
    Invalid { file: String, problem: Problem },
    /// A `rancher.*` / `cc.*` word of the kernel command line that could not be applied.
    #[error("kernel command line {key}={value}: {reason}")]
    Cmdline {
        key: String,
        value: String,
        reason: String,
    },
    /// `rancherctl config set KEY VALUE` refused: nothing was written.
    #[error("cannot set {key} to {value:?}: {reason}")]
    Rejected {
        key: String,
        value: String,
        reason: String,
    },
    /// Writing a layer failed; the old file is untouched.
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

impl ConfigError {
    /// The problem with a value, when the error is about one.
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            ConfigError::Syntax { problem, .. } | ConfigError::Invalid { problem, .. } => {
                Some(problem)
            }
            _ => None,
        }
    }
}

/// Not an error: the configuration is used, but the operator should know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigWarning {
    /// A key the typed model does not know: it is kept (and exported) but nothing acts on it.
    #[error("{file}: unknown key {key} (kept, not acted on)")]
    UnknownKey { file: String, key: String },
}
