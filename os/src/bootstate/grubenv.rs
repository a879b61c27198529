//! The boot state: a GRUB environment block (`# GRUB Environment Block`, `KEY=value` lines,
//! `#` padding to the block's size) on the ESP, which GRUB's `load_env`/`save_env` read and
//! rewrite in place. This side changes it the same way: the whole block, at the same size,
//! written over itself and synced — never truncated and rewritten, so the file keeps its
//! clusters and a power cut leaves the old block or the new one in its one sector.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

const HEADER: &str = "# GRUB Environment Block\n";

#[derive(Debug, thiserror::Error)]
pub enum EnvError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a GRUB environment block ({reason})")]
    Bad { path: String, reason: String },
    #[error("{path}: {needed} bytes of variables do not fit its {size}-byte block")]
    TooLarge {
        path: String,
        needed: usize,
        size: usize,
    },
}

/// The variables of a block, in their order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Env {
    pub vars: Vec<(String, String)>,
}

impl Env {
    /// Parse a block; `path` names it in errors.
    pub fn parse(bytes: &[u8], path: &str) -> Result<Env, EnvError> {
        let bad = |reason: &str| EnvError::Bad {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        let text = std::str::from_utf8(bytes).map_err(|_| bad("not UTF-8"))?;
        let body = text.strip_prefix(HEADER).ok_or_else(|| bad("no header"))?;
        let mut vars = Vec::new();
        for line in body.split('\n') {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| bad(&format!("line {line:?} is not KEY=value")))?;
            vars.push((k.to_string(), v.to_string()));
        }
        Ok(Env { vars })
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn set(&mut self, key: &str, value: &str) {
        match self.vars.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => self.vars.push((key.to_string(), value.to_string())),
        }
    }

    /// The block of `size` bytes.
    pub fn render(&self, size: usize, path: &str) -> Result<Vec<u8>, EnvError> {
        let mut s = String::from(HEADER);
        for (k, v) in &self.vars {
            s.push_str(&format!("{k}={v}\n"));
        }
        let mut b = s.into_bytes();
        if b.len() > size {
            return Err(EnvError::TooLarge {
                path: path.to_string(),
                needed: b.len(),
                size,
            });
        }
        b.resize(size, b'#');
        Ok(b)
    }

    /// One line: `ORDER=B A A_OK=1 …`.
    pub fn summary(&self) -> String {
        self.vars
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// Read the block at `path`.
pub fn read(path: &Path) -> Result<Env, EnvError> {
    let p = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| EnvError::Io {
        path: p.clone(),
        source,
    })?;
    whole_sectors(&bytes, &p)?;
    Env::parse(&bytes, &p)
}

/// A block is whole sectors: anything else was truncated (GRUB would read what is left of
/// it; this side rebuilds it instead, see `bootstate::repair`).
fn whole_sectors(bytes: &[u8], p: &str) -> Result<(), EnvError> {
    if bytes.is_empty() || !bytes.len().is_multiple_of(512) {
        return Err(EnvError::Bad {
            path: p.to_string(),
            reason: format!(
                "{} bytes, not whole 512-byte sectors (truncated?)",
                bytes.len()
            ),
        });
    }
    Ok(())
}

/// Change the block at `path` in place with `f`; returns the new variables.
pub fn update(path: &Path, f: impl FnOnce(&mut Env)) -> Result<Env, EnvError> {
    let p = path.display().to_string();
    let io = |source| EnvError::Io {
        path: p.clone(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    whole_sectors(&bytes, &p)?;
    let mut env = Env::parse(&bytes, &p)?;
    f(&mut env);
    let block = env.render(bytes.len(), &p)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    file.write_all(&block).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_in_place_at_the_same_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grubenv");
        let mut block = b"# GRUB Environment Block\nORDER=B A\nA_OK=1\nB_OK=0\nB_TRY=0\n".to_vec();
        block.resize(512, b'#');
        std::fs::write(&path, &block).unwrap();
        let env = update(&path, |e| {
            e.set("B_OK", "1");
            e.set("NEW", "x");
        })
        .unwrap();
        assert_eq!(env.get("B_OK"), Some("1"));
        let after = std::fs::read(&path).unwrap();
        assert_eq!(after.len(), 512);
        assert!(after.starts_with(
            b"# GRUB Environment Block\nORDER=B A\nA_OK=1\nB_OK=1\nB_TRY=0\nNEW=x\n#"
        ));
        assert_eq!(
            read(&path).unwrap().summary(),
            "ORDER=B A A_OK=1 B_OK=1 B_TRY=0 NEW=x"
        );
    }

    #[test]
    fn refuses_what_is_not_a_block_or_would_not_fit() {
        assert!(Env::parse(b"ORDER=A\n", "x").is_err());
        assert!(Env::parse(b"# GRUB Environment Block\nnonsense\n", "x").is_err());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grubenv");
        let mut block = b"# GRUB Environment Block\n".to_vec();
        block.resize(100, b'#');
        std::fs::write(&path, &block).unwrap();
        let e = update(&path, |e| e.set("A", "1")).unwrap_err();
        assert!(
            e.to_string()
                .contains("100 bytes, not whole 512-byte sectors"),
            "{e}"
        );
        block.resize(512, b'#');
        std::fs::write(&path, &block).unwrap();
        let e = update(&path, |e| e.set("LONG", &"x".repeat(600))).unwrap_err();
        assert!(matches!(e, EnvError::TooLarge { .. }), "{e}");
        // Nothing changed.
        assert_eq!(std::fs::read(&path).unwrap(), block);
    }
}
