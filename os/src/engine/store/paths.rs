//! Lexical cleaning of names that come from untrusted archives: tar entry paths, hard-link
//! targets, the file names a `docker save` manifest points at.
//!
//! A name is made relative (a leading `/` is dropped, as tar does) and `.` components are
//! dropped; a `..` component anywhere is refused outright rather than resolved, since no
//! well-formed image needs one and resolving it is how extraction escapes its directory.

use std::path::{Component, Path, PathBuf};

/// `name` as a relative path with only normal components, or why it is refused.
pub fn clean_relative(name: &Path) -> Result<PathBuf, &'static str> {
    let mut out = PathBuf::new();
    for c in name.components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => return Err("the path contains `..`"),
            Component::Prefix(_) => return Err("the path has a prefix"),
        }
    }
    Ok(out)
}

/// [`clean_relative`] for a `/`-separated string name, as archive indexes use.
pub fn clean_name(name: &str) -> Result<String, &'static str> {
    clean_relative(Path::new(name)).map(|p| p.to_string_lossy().into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_and_refuses_parent_components() {
        assert_eq!(clean_name("./a/./b/").unwrap(), "a/b");
        assert_eq!(clean_name("/etc/passwd").unwrap(), "etc/passwd");
        assert_eq!(clean_name("./").unwrap(), "");
        assert!(clean_name("../x").is_err());
        assert!(clean_name("a/../../x").is_err());
        assert!(clean_name("a/..").is_err());
    }
}
