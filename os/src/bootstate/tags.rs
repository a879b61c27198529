//! Releases from a repository's tags (`rancher.upgrade.image`, when no index is named in
//! `rancher.upgrade.url`): RancherOS let `ros os list` read a registry as well as
//! `releases.yml`, and a repository that holds every version needs no index kept beside it.
//!
//! Every tag that is a version, `MAJOR.MINOR.PATCH[-PRE][_BUILD]` (semantic versioning; a tag
//! has `_` where a version has `+`, as [`super::releases::tag_version`] reads it back), offers
//! the image `REPO:TAG`; `latest` and other tags that are not versions are skipped (so are
//! RancherOS's own `v1.5.8` tags: ours carry the bare version `rancherctl os version` says).
//! `current`, what an upgrade without `-i` takes, is the highest release by semver precedence,
//! a pre-release (`2.0.0-rc.1`) only when there is no release (build metadata is no part of
//! it; equal ones are told apart by their tags, so the choice is the same every time).
//! `available` is in ascending order, pre-releases included.
//!
//! The tags come from a registry, so they are read as an attacker's list: at most
//! [`MAX_ENTRIES`](super::releases::MAX_ENTRIES), and a tag no registry could hold (`1.0;
//! reboot`) refuses the whole list, naming it.

use super::releases::{valid_reference, Releases, ReleasesError, MAX_ENTRIES};
use std::cmp::Ordering;

/// A semantic version, as far as precedence needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    core: [u64; 3],
    /// Pre-release identifiers (`-rc.1` → `rc`, `1`); none for a release.
    pre: Vec<Ident>,
}

/// A pre-release identifier: numeric ones sort below alphanumeric ones (the order of the
/// variants, which `derive` follows), each kind by its value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Ident {
    Num(u64),
    Alpha(String),
}

impl Version {
    /// `1.2.3`, `2.0.0-rc.1`, `2.0.0-v2+b7`; `None` for anything else (`latest`, `v1.2.3`,
    /// `1.2`, `01.2.3`).
    pub fn parse(s: &str) -> Option<Version> {
        let (rest, build) = match s.split_once('+') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        if let Some(b) = build {
            if !b.split('.').all(is_ident) {
                return None;
            }
        }
        let (core, pre) = match rest.split_once('-') {
            Some((c, p)) => (c, Some(p)),
            None => (rest, None),
        };
        let mut nums = core.split('.').map(number);
        let core = [nums.next()??, nums.next()??, nums.next()??];
        if nums.next().is_some() {
            return None;
        }
        let pre = match pre {
            None => Vec::new(),
            Some(p) => p
                .split('.')
                .map(|i| {
                    if !is_ident(i) {
                        None
                    } else if i.bytes().all(|b| b.is_ascii_digit()) {
                        number(i).map(Ident::Num)
                    } else {
                        Some(Ident::Alpha(i.to_string()))
                    }
                })
                .collect::<Option<Vec<_>>>()?,
        };
        Some(Version { core, pre })
    }

    /// Semver precedence: the core numbers, then a release above its pre-releases, then the
    /// pre-release identifiers one by one (fewer is lower when the rest are equal).
    pub fn precedence(&self, other: &Version) -> Ordering {
        self.core
            .cmp(&other.core)
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => self.pre.cmp(&other.pre),
            })
    }
}

/// A dot-separated identifier: `[0-9A-Za-z-]+`.
fn is_ident(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A numeric identifier: digits, no leading zero (but `0`), fitting a u64.
fn number(s: &str) -> Option<u64> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits && (s == "0" || !s.starts_with('0')))
        .then(|| s.parse().ok())
        .flatten()
}

/// The releases `repository`'s `tags` offer.
pub fn releases(repository: &str, tags: &[String]) -> Result<Releases, ReleasesError> {
    let bad = |why: String| ReleasesError::Tags {
        repository: repository.to_string(),
        why,
    };
    // A repository alone: no `@digest`, no `:tag` after its last `/`.
    let tagged = crate::engine::registry::target::has_tag(repository);
    if !valid_reference(repository) || repository.contains('@') || tagged {
        return Err(bad(format!(
            "{repository:?} is not an image repository (without a tag or digest)"
        )));
    }
    if tags.len() > MAX_ENTRIES {
        return Err(bad(format!(
            "{} tags, at most {MAX_ENTRIES} read",
            tags.len()
        )));
    }
    let mut versions = Vec::new();
    for tag in tags {
        let reference = format!("{repository}:{tag}");
        if !crate::engine::store::reference::valid_tag(tag) || !valid_reference(&reference) {
            return Err(bad(format!("{tag:?} is not an image tag")));
        }
        if let Some(v) = Version::parse(&tag.replace('_', "+")) {
            versions.push((v, reference));
        }
    }
    versions.sort_by(|(a, ra), (b, rb)| a.precedence(b).then_with(|| ra.cmp(rb)));
    versions.dedup_by(|a, b| a.1 == b.1);
    // What an upgrade takes by itself: the highest release; a pre-release only when the
    // repository holds nothing else (one lists them all, and names one with -i).
    let Some((_, current)) = versions
        .iter()
        .rev()
        .find(|(v, _)| v.pre.is_empty())
        .or(versions.last())
    else {
        return Err(bad(format!(
            "none of its {} tags is a version (MAJOR.MINOR.PATCH[-PRE][_BUILD])",
            tags.len()
        )));
    };
    Ok(Releases {
        current: current.clone(),
        available: versions.into_iter().map(|(_, r)| r).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(t: &[&str]) -> Vec<String> {
        t.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn versions_sort_by_semver_precedence() {
        // Ascending, as semver.org's own example and then some.
        let ordered = [
            "0.9.10",
            "1.0.0-alpha",
            "1.0.0-alpha.1",
            "1.0.0-alpha.beta",
            "1.0.0-beta",
            "1.0.0-beta.2",
            "1.0.0-beta.11",
            "1.0.0-rc.1",
            "1.0.0",
            "1.0.1",
            "1.2.0",
            "1.10.0",
            "2.0.0-v2",
            "2.0.0",
        ];
        for pair in ordered.windows(2) {
            let a = Version::parse(pair[0]).unwrap();
            let b = Version::parse(pair[1]).unwrap();
            assert_eq!(
                a.precedence(&b),
                Ordering::Less,
                "{} < {}",
                pair[0],
                pair[1]
            );
            assert_eq!(b.precedence(&a), Ordering::Greater);
        }
        let a = Version::parse("1.0.0+b1").unwrap();
        let b = Version::parse("1.0.0+b2").unwrap();
        assert_eq!(
            a.precedence(&b),
            Ordering::Equal,
            "build metadata is ignored"
        );
        for not in [
            "latest",
            "v1.2.3",
            "1.2",
            "1.2.3.4",
            "01.2.3",
            "1.2.3-",
            "1.2.3-a..b",
            "1.2.3-01",
            "1.2.3+",
            "1.2.3+a+b",
            "1.2.3-a_b",
            "99999999999999999999.0.0",
            "",
        ] {
            assert_eq!(Version::parse(not), None, "{not}");
        }
    }

    #[test]
    fn the_highest_version_is_current_and_other_tags_are_skipped() {
        let r = releases(
            "10.0.2.100:5000/rancheros/os",
            &tags(&[
                "latest",
                "5.0.0-up",
                "4.0.0",
                "stable",
                "5.0.0",
                "10.0.0-rc.1",
                "4.0.0_b7",
                "v9.0.0",
            ]),
        )
        .unwrap();
        let repo = |t: &str| format!("10.0.2.100:5000/rancheros/os:{t}");
        // The highest release, not the higher pre-release.
        assert_eq!(r.current, repo("5.0.0"));
        assert_eq!(
            r.available,
            ["4.0.0", "4.0.0_b7", "5.0.0-up", "5.0.0", "10.0.0-rc.1"].map(repo)
        );
        assert_eq!(
            crate::bootstate::releases::tag_version(&r.available[1]).as_deref(),
            Some("4.0.0+b7")
        );
        // Pre-releases only: the highest of them.
        let r = releases("r/os", &tags(&["1.0.0-rc.1", "1.0.0-rc.2", "latest"])).unwrap();
        assert_eq!(r.current, "r/os:1.0.0-rc.2");
    }

    #[test]
    fn bad_tags_and_lists_without_versions_are_refused_naming_them() {
        for (t, says) in [
            (
                &["1.0.0", "1.0.0; reboot"][..],
                "\"1.0.0; reboot\" is not an image tag",
            ),
            (&["1.0.0", "a/b"], "\"a/b\" is not an image tag"),
            (&["-1.0.0"], "\"-1.0.0\" is not an image tag"),
            (&[""], "\"\" is not an image tag"),
            (&["latest", "stable"], "none of its 2 tags is a version"),
            (&[], "none of its 0 tags is a version"),
        ] {
            let e = releases("rancheros/os", &tags(t)).unwrap_err().to_string();
            assert!(e.starts_with("rancheros/os's tags: "), "{e}");
            assert!(e.contains(says), "{says}: {e}");
        }
        let many: Vec<String> = (0..=MAX_ENTRIES).map(|i| format!("1.0.{i}")).collect();
        let e = releases("r/os", &many).unwrap_err().to_string();
        assert!(e.contains("1001 tags, at most 1000 read"), "{e}");
        // The repository is part of every reference, and must make one.
        let e = releases("-r/os", &tags(&["1.0.0"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("\"-r/os\" is not an image repository"), "{e}");
        let e = releases("r/os:1", &tags(&["1.0.0"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("without a tag or digest"), "{e}");
    }
}
