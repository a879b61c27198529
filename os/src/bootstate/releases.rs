//! The release index `rancher.upgrade.url` names (RancherOS's `releases.yml`): the OS images
//! one may upgrade to, and the one to take by default.
//!
//! ```yaml
//! current: rancheros/os:1.1.0
//! available:
//!   - rancheros/os:1.0.0
//!   - rancheros/os:1.1.0
//! ```
//!
//! Read as an attacker's document: at most [`MAX_BYTES`], known keys only, at most
//! [`MAX_ENTRIES`] references, each a plain image reference; `current` must be among them.
//!
//! Without an index, `rancher.upgrade.image` names a repository whose version tags are the
//! releases ([`super::tags`]); [`source`] says which of the two applies.

use serde::Deserialize;

pub const MAX_BYTES: usize = 1 << 20;
pub const MAX_ENTRIES: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Releases {
    pub current: String,
    pub available: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ReleasesError {
    #[error("{url}: {why}")]
    Bad { url: String, why: String },
    /// A repository's tags that do not make releases ([`super::tags`]).
    #[error("{repository}'s tags: {why}")]
    Tags { repository: String, why: String },
    #[error(
        "neither rancher.upgrade.url (a release index) nor rancher.upgrade.image (a repository \
         whose version tags are the releases) is set (rancherctl config set \
         rancher.upgrade.url URL, or rancher.upgrade.image REPOSITORY)"
    )]
    Unset,
}

/// Where the releases are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `rancher.upgrade.url`: an index.
    Index(String),
    /// `rancher.upgrade.image`: a repository, whose tags a registry lists.
    Tags(String),
}

/// `rancher.upgrade.url` when it is set, else `rancher.upgrade.image`. An empty value is not
/// set: a key of a lower configuration layer can only be emptied, not removed
/// (`rancherctl config set rancher.upgrade.url ''`).
pub fn source(upgrade: &crate::config::model::Upgrade) -> Result<Source, ReleasesError> {
    let set = |v: &Option<String>| {
        v.as_deref()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    if let Some(url) = set(&upgrade.url) {
        Ok(Source::Index(url))
    } else if let Some(image) = set(&upgrade.image) {
        Ok(Source::Tags(image))
    } else {
        Err(ReleasesError::Unset)
    }
}

/// An image reference as the index may give it: registry/repository:tag or @digest, plain.
pub fn valid_reference(r: &str) -> bool {
    !r.is_empty()
        && r.len() <= 255
        && !r.starts_with(['-', '/', '.'])
        && r.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-/:@".contains(&b))
}

/// Parse the index fetched from `url`.
pub fn parse(body: &[u8], url: &str) -> Result<Releases, ReleasesError> {
    let bad = |why: String| ReleasesError::Bad {
        url: url.to_string(),
        why,
    };
    if body.len() > MAX_BYTES {
        return Err(bad(format!("larger than {MAX_BYTES} bytes")));
    }
    let r: Releases = serde_yaml_ng::from_slice(body).map_err(|e| bad(e.to_string()))?;
    if r.available.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "{} images available, at most {MAX_ENTRIES} read",
            r.available.len()
        )));
    }
    if let Some(b) = r
        .available
        .iter()
        .chain(std::iter::once(&r.current))
        .find(|i| !valid_reference(i))
    {
        return Err(bad(format!("{b:?} is not an image reference")));
    }
    if !r.available.contains(&r.current) {
        return Err(bad(format!(
            "current {:?} is not among available",
            r.current
        )));
    }
    Ok(r)
}

/// The version an image reference's tag names (`rancheros/os:1.1.0` → `1.1.0`; a tag has `_`
/// where a version has `+`).
pub fn tag_version(reference: &str) -> Option<String> {
    let name = reference.split('@').next()?;
    let (repo, tag) = name.rsplit_once(':')?;
    (!tag.contains('/') && !repo.is_empty()).then(|| tag.replace('_', "+"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_gives_its_images_and_a_bad_one_is_named() {
        let r = parse(
            b"current: rancheros/os:1.1.0\navailable: [rancheros/os:1.0.0, rancheros/os:1.1.0]\n",
            "http://x/releases.yml",
        )
        .unwrap();
        assert_eq!(r.current, "rancheros/os:1.1.0");
        assert_eq!(tag_version(&r.available[0]).as_deref(), Some("1.0.0"));
        assert_eq!(tag_version("localhost:5000/os").as_deref(), None);
        assert_eq!(tag_version("reg:5000/os:2.0_b1").as_deref(), Some("2.0+b1"));
        for (body, says) in [
            (
                &b"current: a:1\navailable: [a:2]\n"[..],
                "not among available",
            ),
            (
                b"current: a:1\navailable: [a:1]\nextra: 1\n",
                "unknown field",
            ),
            (
                b"current: a:1\navailable: [\"a:1; reboot\"]\n",
                "not an image reference",
            ),
            (b"current: -x\navailable: [-x]\n", "not an image reference"),
        ] {
            let e = parse(body, "u").unwrap_err().to_string();
            assert!(e.contains(says), "{says}: {e}");
        }
    }

    #[test]
    fn the_index_comes_first_then_the_repository_and_neither_is_an_error_naming_both() {
        use crate::config::model::Upgrade;
        let up = |url: Option<&str>, image: Option<&str>| Upgrade {
            url: url.map(str::to_string),
            image: image.map(str::to_string),
            ..Default::default()
        };
        assert_eq!(
            source(&up(Some("http://x/r.yml"), Some("rancheros/os"))),
            Ok(Source::Index("http://x/r.yml".into()))
        );
        assert_eq!(
            source(&up(Some(" "), Some(" rancheros/os "))),
            Ok(Source::Tags("rancheros/os".into()))
        );
        assert_eq!(
            source(&up(None, Some("rancheros/os"))),
            Ok(Source::Tags("rancheros/os".into()))
        );
        for (url, image) in [(None, None), (Some(""), Some(""))] {
            let e = source(&up(url, image)).unwrap_err().to_string();
            assert!(
                e.contains("rancher.upgrade.url") && e.contains("rancher.upgrade.image"),
                "{e}"
            );
        }
    }
}
