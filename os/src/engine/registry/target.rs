//! What a pull or push names: `fromImage` + `tag` (or an image name and `tag`) as the Docker API
//! passes them, checked by the store's own rules and resolved to a registry reference.

use super::error::RegistryError;
use crate::engine::store::reference;
use oci_client::Reference;

/// A registry image: where it is and what the store calls it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The registry reference (`docker.io/library/busybox:latest`).
    pub reference: Reference,
    /// The store's name for it (`busybox:latest`), none when it is named by digest alone.
    pub name: Option<String>,
    /// The familiar repository (`busybox`, `10.0.2.100:5000/test/busybox`): `RepoDigests`' and
    /// progress messages' form.
    pub repository: String,
}

impl Target {
    /// `image` with `tag` (a tag or a `sha256:` digest; empty means the one in `image`, else
    /// `latest`).
    pub fn parse(image: &str, tag: &str) -> Result<Target, RegistryError> {
        let image = image.trim();
        let tag = tag.trim();
        let bad =
            |why: String| RegistryError::BadRequest(format!("invalid reference format: {why}"));
        if image.is_empty() {
            return Err(bad("no image name".into()));
        }
        let (base, digest) = match image.split_once('@') {
            Some((b, d)) => (b, Some(d.to_string())),
            None => (image, None),
        };
        let (base, digest) = if tag.starts_with("sha256:") {
            if digest.is_some() {
                return Err(bad(format!(
                    "{image:?} has a digest and {tag:?} is another"
                )));
            }
            (base.to_string(), Some(tag.to_string()))
        } else if !tag.is_empty() {
            if has_tag(base) {
                return Err(bad(format!("{image:?} has a tag and {tag:?} is another")));
            }
            (format!("{base}:{tag}"), digest)
        } else {
            (base.to_string(), digest)
        };
        let normalized = reference::normalize(&base).map_err(|e| bad(e.to_string()))?;
        if let Some(d) = &digest {
            crate::engine::store::Digest::parse(d, "the image digest")
                .map_err(|e| bad(e.to_string()))?;
        }
        let repository = reference::repository(&normalized).to_string();
        let (name, full) = match &digest {
            // By digest: the tag (if any) is only a name; the digest is what is fetched.
            Some(d) if has_tag(&base) => (Some(normalized.clone()), format!("{repository}@{d}")),
            Some(d) => (None, format!("{repository}@{d}")),
            None => (Some(normalized.clone()), normalized.clone()),
        };
        let reference =
            Reference::try_from(full.as_str()).map_err(|e| bad(format!("{full:?}: {e}")))?;
        Ok(Target {
            reference,
            name,
            repository,
        })
    }

    /// The registry's `host[:port]` as `oci-client` talks to it.
    pub fn registry(&self) -> &str {
        self.reference.resolve_registry()
    }

    /// The tag, or `latest`.
    pub fn tag(&self) -> &str {
        self.name
            .as_deref()
            .and_then(|n| n.rsplit_once(':').map(|(_, t)| t))
            .filter(|t| !t.contains('/'))
            .unwrap_or("latest")
    }

    /// What dockerd prints in its messages: the name, or repository@digest.
    pub fn display(&self) -> String {
        match (&self.name, self.reference.digest()) {
            (Some(n), _) => n.clone(),
            (None, Some(d)) => format!("{}@{d}", self.repository),
            (None, None) => self.repository.clone(),
        }
    }
}

/// Whether `name` carries a tag (a `:` after its last `/`; a registry's port is before it).
pub fn has_tag(name: &str) -> bool {
    name.rsplit('/')
        .next()
        .is_some_and(|last| last.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn names_as_the_cli_sends_them() {
        let t = Target::parse("busybox", "latest").unwrap();
        assert_eq!(t.name.as_deref(), Some("busybox:latest"));
        assert_eq!(t.repository, "busybox");
        assert_eq!(t.reference.repository(), "library/busybox");
        assert_eq!(t.tag(), "latest");
        let t = Target::parse("10.0.2.100:5000/test/busybox", "1").unwrap();
        assert_eq!(t.registry(), "10.0.2.100:5000");
        assert_eq!(t.reference.repository(), "test/busybox");
        assert_eq!(t.name.as_deref(), Some("10.0.2.100:5000/test/busybox:1"));
        assert_eq!(t.tag(), "1");
        let t = Target::parse("localhost:5000/a", "").unwrap();
        assert_eq!(t.name.as_deref(), Some("localhost:5000/a:latest"));
        let t = Target::parse("localhost:5000/a", D).unwrap();
        assert_eq!(t.name, None);
        assert_eq!(t.reference.digest(), Some(D));
        assert_eq!(t.display(), format!("localhost:5000/a@{D}"));
        let t = Target::parse(&format!("r.io/a:1@{D}"), "").unwrap();
        assert_eq!(t.name.as_deref(), Some("r.io/a:1"));
        assert_eq!(t.reference.digest(), Some(D));
    }

    #[test]
    fn refuses_bad_names_with_dockers_words() {
        for (image, tag) in [
            ("", "latest"),
            ("Busybox", "latest"),
            ("a/../b", ""),
            ("busybox:1", "2"),
            ("busybox", "sha256:zz"),
            ("busybox", "bad tag"),
        ] {
            let e = Target::parse(image, tag).unwrap_err();
            assert!(
                e.to_string().starts_with("invalid reference format"),
                "{image} {tag}: {e}"
            );
            assert_eq!(e.status(), 400);
        }
    }
}
