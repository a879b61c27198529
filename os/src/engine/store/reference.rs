//! Image names (`[registry/]repo[:tag]`), normalized so that the names users type, the names
//! `docker save` writes and the names OCI annotations carry all meet in one form.
//!
//! The stored form is Docker's "familiar" one, what `docker images` shows: `busybox:latest`,
//! `rancher/os-console:v1.5.0`, `quay.io/coreos/etcd:v3`. A missing tag means `latest`;
//! `docker.io/` and `docker.io/library/` are dropped.

use super::error::{Result, StoreError};

/// `name` in the stored form (see the module docs), or why it is not an image name.
pub fn normalize(name: &str) -> Result<String> {
    let bad = |reason| StoreError::BadReference {
        name: name.to_string(),
        reason,
    };
    if name.contains('@') {
        return Err(bad(
            "digest references are resolved by digest, not stored as names",
        ));
    }
    let (repo, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], &name[i + 1..]),
        _ => (name, "latest"),
    };
    if !valid_tag(tag) {
        return Err(bad(
            "a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -",
        ));
    }
    let mut parts: Vec<&str> = repo.split('/').collect();
    let domain = match parts.as_slice() {
        [first, _, ..] if first.contains(['.', ':']) || *first == "localhost" => {
            Some(parts.remove(0))
        }
        _ => None,
    };
    if let Some(d) = domain {
        let ok = d
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !ok {
            return Err(bad("invalid registry host"));
        }
    }
    let component_ok = |c: &str| {
        let b = c.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|&x| x.is_ascii_lowercase() || x.is_ascii_digit() || b"._-".contains(&x))
    };
    if parts.is_empty() || !parts.iter().all(|c| component_ok(c)) {
        return Err(bad(
            "repository path components are lowercase [a-z0-9] with . _ - inside",
        ));
    }
    let domain = domain.filter(|d| !matches!(*d, "docker.io" | "index.docker.io"));
    if domain.is_none() && parts.len() == 2 && parts[0] == "library" {
        parts.remove(0);
    }
    let path = parts.join("/");
    Ok(match domain {
        Some(d) => format!("{d}/{path}:{tag}"),
        None => format!("{path}:{tag}"),
    })
}

/// Whether `tag` is a tag as registries take them: 1 to 128 of `[A-Za-z0-9_.-]`, not starting
/// with `.` or `-`.
pub fn valid_tag(tag: &str) -> bool {
    (1..=128).contains(&tag.len())
        && !tag.starts_with(['.', '-'])
        && tag
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Whether an OCI `org.opencontainers.image.ref.name` annotation is only a tag (`latest`,
/// `v1.2`) rather than a whole reference.
pub fn is_bare_tag(s: &str) -> bool {
    !s.is_empty() && !s.contains(['/', ':', '@'])
}

/// The repository part of a normalized name (`busybox:latest` → `busybox`).
pub fn repository(normalized: &str) -> &str {
    match normalized.rfind(':') {
        Some(i) if !normalized[i..].contains('/') => &normalized[..i],
        _ => normalized,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_the_familiar_form() {
        for (input, want) in [
            ("busybox", "busybox:latest"),
            ("busybox:1.36", "busybox:1.36"),
            ("library/busybox", "busybox:latest"),
            ("docker.io/library/busybox:latest", "busybox:latest"),
            (
                "docker.io/rancher/os-console:v1.5.0",
                "rancher/os-console:v1.5.0",
            ),
            ("quay.io/coreos/etcd:v3", "quay.io/coreos/etcd:v3"),
            ("localhost:5000/a/b", "localhost:5000/a/b:latest"),
            ("localhost/img:tag", "localhost/img:tag"),
        ] {
            assert_eq!(normalize(input).unwrap(), want, "{input}");
        }
        assert_eq!(
            repository("localhost:5000/a/b:latest"),
            "localhost:5000/a/b"
        );
    }

    #[test]
    fn refuses_what_is_not_a_name() {
        for bad in [
            "",
            "Busybox",
            "a//b",
            "busybox:",
            "a:b:c",
            "x@sha256:00",
            "-a",
            "a b",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert!(is_bare_tag("latest"));
        assert!(!is_bare_tag("busybox:latest"));
        assert!(!is_bare_tag("docker.io/library/busybox"));
    }
}
