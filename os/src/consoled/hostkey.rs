//! The SSH host key in both servers' formats, so that every console answers with the same key
//! (a client that knew the busybox console's dropbear knows the Debian console's OpenSSH).
//! The kept key is dropbear's file in `/var/lib/rancher/ssh`; OpenSSH gets the same ed25519
//! key rewritten in its own format at every start of a full console, and whichever console
//! starts first (no key yet) makes one and keeps it in dropbear's format.
//!
//! Both formats are plain framing around the same 32-byte seed and 32-byte public key (RFC 4251
//! strings): parsing and writing them is all this does with a key, and every length read is
//! checked (the file is on a disk anyone with the machine can edit).
//!
//! A new key ([`Ed25519::generate`]) is made here too, for both servers: a seed from the kernel's
//! generator and its public key from ring's ed25519 (the TLS stack's, already in the binary).
//! It was `dropbearkey` (0.6 s of the path from the console's start to SSH at every boot
//! without a state partition, under TCG) and, for a full console, `ssh-keygen`.

use base64::Engine;

const ED25519: &[u8] = b"ssh-ed25519";
const MAGIC: &[u8] = b"openssh-key-v1\0";
const BEGIN: &str = "-----BEGIN OPENSSH PRIVATE KEY-----";
const END: &str = "-----END OPENSSH PRIVATE KEY-----";

/// An ed25519 key: the 32-byte seed and the 32-byte public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ed25519 {
    pub seed: [u8; 32],
    pub public: [u8; 32],
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn u32(&mut self) -> Result<u32, String> {
        if self.0.len() < 4 {
            return Err("truncated".into());
        }
        let (n, rest) = self.0.split_at(4);
        self.0 = rest;
        Ok(u32::from_be_bytes([n[0], n[1], n[2], n[3]]))
    }
    fn string(&mut self) -> Result<&'a [u8], String> {
        let n = self.u32()? as usize;
        if self.0.len() < n {
            return Err(format!("a field of {n} bytes, {} left", self.0.len()));
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(s)
    }
}

fn put(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn split64(b: &[u8]) -> Result<([u8; 32], [u8; 32]), String> {
    if b.len() != 64 {
        return Err(format!("an ed25519 key of {} bytes, not 64", b.len()));
    }
    let mut seed = [0u8; 32];
    let mut public = [0u8; 32];
    seed.copy_from_slice(&b[..32]);
    public.copy_from_slice(&b[32..]);
    Ok((seed, public))
}

impl Ed25519 {
    /// A new key: 32 random bytes from the kernel (getrandom(2), which waits for its generator
    /// at early boot) as the seed (RFC 8032's private key), the public key derived from it.
    pub fn generate() -> Result<Ed25519, String> {
        let mut seed = [0u8; 32];
        crate::random::fill(&mut seed);
        Ed25519::from_seed(seed)
    }

    /// The key whose seed is `seed`.
    pub fn from_seed(seed: [u8; 32]) -> Result<Ed25519, String> {
        use ring::signature::KeyPair;
        let pair = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
            .map_err(|e| format!("ed25519 from a seed: {e}"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(pair.public_key().as_ref());
        Ok(Ed25519 { seed, public })
    }

    /// From dropbear's key file (`string "ssh-ed25519"`, `string seed‖public`).
    pub fn from_dropbear(data: &[u8]) -> Result<Ed25519, String> {
        let mut r = Reader(data);
        let kind = r.string()?;
        if kind != ED25519 {
            return Err(format!(
                "a {} key, not ssh-ed25519",
                String::from_utf8_lossy(kind)
            ));
        }
        let (seed, public) = split64(r.string()?)?;
        Ok(Ed25519 { seed, public })
    }

    /// Dropbear's key file.
    pub fn to_dropbear(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put(&mut out, ED25519);
        put(&mut out, &[&self.seed[..], &self.public[..]].concat());
        out
    }

    /// From an unencrypted OpenSSH private key file (`ssh-keygen -N ''`): the tests' reader of
    /// our files and of `ssh-keygen`'s (the OS reads only dropbear's format, the kept one).
    #[cfg(test)]
    pub fn from_openssh(pem: &str) -> Result<Ed25519, String> {
        let body: String = pem
            .lines()
            .map(str::trim)
            .skip_while(|l| *l != BEGIN)
            .skip(1)
            .take_while(|l| *l != END)
            .collect();
        let data = base64::engine::general_purpose::STANDARD
            .decode(body)
            .map_err(|e| format!("not base64: {e}"))?;
        let rest = data
            .strip_prefix(MAGIC)
            .ok_or("not an openssh-key-v1 file")?;
        let mut r = Reader(rest);
        let (cipher, kdf, _kdfopts) = (r.string()?, r.string()?, r.string()?);
        if cipher != b"none" || kdf != b"none" {
            return Err("an encrypted key".into());
        }
        if r.u32()? != 1 {
            return Err("not one key".into());
        }
        let _public_blob = r.string()?;
        let mut p = Reader(r.string()?);
        if p.u32()? != p.u32()? {
            return Err("its check numbers differ".into());
        }
        if p.string()? != ED25519 {
            return Err("not an ssh-ed25519 key".into());
        }
        let public = p.string()?;
        let (seed, pk) = split64(p.string()?)?;
        if public != pk {
            return Err("its two public keys differ".into());
        }
        Ok(Ed25519 { seed, public: pk })
    }

    /// The unencrypted OpenSSH private key file.
    pub fn to_openssh(&self) -> String {
        let mut private = Vec::new();
        // The check numbers only tell a right passphrase from a wrong one: any equal pair.
        let check = u32::from_be_bytes([self.public[0], self.public[1], self.public[2], 1]);
        private.extend_from_slice(&check.to_be_bytes());
        private.extend_from_slice(&check.to_be_bytes());
        put(&mut private, ED25519);
        put(&mut private, &self.public);
        put(&mut private, &[&self.seed[..], &self.public[..]].concat());
        put(&mut private, b"rancheros");
        let mut pad = 1u8;
        while private.len() % 8 != 0 {
            private.push(pad);
            pad += 1;
        }
        let mut data = MAGIC.to_vec();
        put(&mut data, b"none");
        put(&mut data, b"none");
        put(&mut data, b"");
        data.extend_from_slice(&1u32.to_be_bytes());
        put(&mut data, &self.public_blob());
        put(&mut data, &private);
        let b64 = base64::engine::general_purpose::STANDARD.encode(data);
        let mut out = format!("{BEGIN}\n");
        for chunk in b64.as_bytes().chunks(70) {
            out.push_str(std::str::from_utf8(chunk).expect("base64 is ASCII"));
            out.push('\n');
        }
        out.push_str(END);
        out.push('\n');
        out
    }

    fn public_blob(&self) -> Vec<u8> {
        let mut b = Vec::new();
        put(&mut b, ED25519);
        put(&mut b, &self.public);
        b
    }

    /// OpenSSH's fingerprint (`SHA256:` and the unpadded base64 of the public blob's SHA-256),
    /// as `ssh-keygen -l` and a client's first connection show it.
    pub fn fingerprint(&self) -> String {
        let d = ring::digest::digest(&ring::digest::SHA256, &self.public_blob());
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(d.as_ref())
        )
    }

    /// The `.pub` line (`ssh-ed25519 AAAA… comment`).
    pub fn public_line(&self) -> String {
        format!(
            "ssh-ed25519 {} rancheros\n",
            base64::engine::general_purpose::STANDARD.encode(self.public_blob())
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Ed25519 {
        Ed25519 {
            seed: [7; 32],
            public: [9; 32],
        }
    }

    /// RFC 8032 §7.1, test 1: the public key of a known secret key.
    #[test]
    fn the_public_key_is_rfc_8032s() {
        let hex = |h: &str| -> [u8; 32] {
            let v: Vec<u8> = (0..h.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
                .collect();
            v.try_into().unwrap()
        };
        let k = Ed25519::from_seed(hex(
            "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        ))
        .unwrap();
        assert_eq!(
            k.public,
            hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
        );
    }

    #[test]
    fn generated_keys_are_new_and_whole() {
        let (a, b) = (Ed25519::generate().unwrap(), Ed25519::generate().unwrap());
        assert_ne!(a.seed, b.seed);
        assert_eq!(Ed25519::from_seed(a.seed).unwrap(), a);
        assert_eq!(Ed25519::from_dropbear(&a.to_dropbear()).unwrap(), a);
        let f = a.fingerprint();
        assert!(
            f.starts_with("SHA256:") && f.len() == 7 + 43 && !f.ends_with('='),
            "{f}"
        );
    }

    #[test]
    fn both_formats_round_trip() {
        let k = key();
        assert_eq!(Ed25519::from_dropbear(&k.to_dropbear()).unwrap(), k);
        assert_eq!(Ed25519::from_openssh(&k.to_openssh()).unwrap(), k);
        assert!(k
            .public_line()
            .starts_with("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI"));
    }

    #[test]
    fn damaged_files_are_refused_not_misread() {
        let d = key().to_dropbear();
        for cut in [0, 3, 10, d.len() - 1] {
            assert!(Ed25519::from_dropbear(&d[..cut]).is_err(), "cut at {cut}");
        }
        let mut rsa = Vec::new();
        put(&mut rsa, b"ssh-rsa");
        put(&mut rsa, &[0; 64]);
        assert!(Ed25519::from_dropbear(&rsa)
            .unwrap_err()
            .contains("ssh-rsa"));
        // A length past the end.
        assert!(Ed25519::from_dropbear(&[0xff, 0xff, 0xff, 0xff, 1]).is_err());
        assert!(Ed25519::from_openssh("junk").is_err());
        let pem = key().to_openssh();
        assert!(Ed25519::from_openssh(&pem.replace('A', "B")).is_err());
    }

    /// Against the real tool when it is here (CI installs openssh-client through `cargo
    /// harness setup`): a key `ssh-keygen` made reads back, and `ssh-keygen -y` derives from our
    /// OpenSSH file the public key we wrote. (Dropbear reading our file is proved in a VM by
    /// every SSH login to the default console.)
    #[test]
    fn ssh_keygen_agrees() {
        let have = std::process::Command::new("ssh-keygen")
            .arg("-?")
            .output()
            .is_ok();
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "ssh-keygen is missing under CI"
            );
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("k");
        let st = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
            .arg(&f)
            .status()
            .unwrap();
        assert!(st.success());
        let k = Ed25519::from_openssh(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let ours = dir.path().join("ours");
        std::fs::write(&ours, k.to_openssh()).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ours, std::fs::Permissions::from_mode(0o600)).unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&ours)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let derived = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            derived.split_whitespace().nth(1),
            k.public_line().split_whitespace().nth(1)
        );
        // A key of ours: ssh-keygen derives the same public key and shows the same fingerprint.
        let k = Ed25519::generate().unwrap();
        std::fs::write(&ours, k.to_openssh()).unwrap();
        let out = std::process::Command::new("ssh-keygen")
            .args(["-y", "-f"])
            .arg(&ours)
            .output()
            .unwrap();
        assert!(out.status.success());
        assert_eq!(
            String::from_utf8(out.stdout)
                .unwrap()
                .split_whitespace()
                .nth(1),
            k.public_line().split_whitespace().nth(1)
        );
        let out = std::process::Command::new("ssh-keygen")
            .args(["-l", "-E", "sha256", "-f"])
            .arg(&ours)
            .output()
            .unwrap();
        assert!(out.status.success());
        let shown = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            shown.split_whitespace().nth(1),
            Some(k.fingerprint().as_str())
        );
    }
}
