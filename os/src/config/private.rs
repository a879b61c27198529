//! Which keys are secrets, and hiding them. `rancherctl config export` output gets pasted into bug
//! reports and chat, so passwords, keys and certificates stay out of it unless `--private` is
//! asked for. The list lives here, once, so a new secret key is added in one place.

use super::keypath;
use serde_yaml_ng::Value;

/// Key paths whose values are secret (the whole subtree is hidden).
pub const PRIVATE_KEYS: &[&str] = &[
    "ssh_authorized_keys",
    "rancher.password",
    "rancher.ssh",
    "rancher.docker.ca_key",
    "rancher.docker.ca_cert",
    "rancher.docker.server_key",
    "rancher.docker.server_cert",
    "rancher.system_docker.ca_key",
    "rancher.system_docker.ca_cert",
    "rancher.system_docker.server_key",
    "rancher.system_docker.server_cert",
    "rancher.registry_auths",
];

/// Whether `path` is, or lies under, a private key.
pub fn is_private(path: &str) -> bool {
    PRIVATE_KEYS.iter().any(|k| keypath::is_under(path, k))
}

/// Remove every private key from `value`; returns the paths that were removed.
pub fn hide_private(value: &mut Value) -> Vec<&'static str> {
    PRIVATE_KEYS
        .iter()
        .copied()
        .filter(|k| keypath::remove(value, k).is_some())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_secrets_and_nothing_else() {
        let mut v: Value = serde_yaml_ng::from_str(
            "hostname: h\nssh_authorized_keys: [k]\nrancher:\n  password: p\n  debug: true\n  docker: {tls: true, server_key: K, args: [a]}\n  ssh: {keys: {rsa: R}}\n",
        )
        .unwrap();
        let hidden = hide_private(&mut v);
        assert_eq!(
            hidden,
            [
                "ssh_authorized_keys",
                "rancher.password",
                "rancher.ssh",
                "rancher.docker.server_key"
            ]
        );
        let expected: Value = serde_yaml_ng::from_str(
            "hostname: h\nrancher: {debug: true, docker: {tls: true, args: [a]}}",
        )
        .unwrap();
        assert_eq!(v, expected);
        assert!(is_private("rancher.ssh.keys.rsa"));
        assert!(!is_private("rancher.sshd"));
    }
}
