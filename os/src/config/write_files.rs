//! `write_files:` entries of a cloud-config: the file, its mode, owner, encoding and the system
//! container it belongs in, and the decoding of its content.
//!
//! Kept apart from the rest of the model because it carries behaviour the other keys do not:
//! octal modes written in three styles (`'0644'`, `644`, `0o644`) and encoded content. Base64 is
//! decoded here by hand (a few lines); gzip with flate2, which the image store links anyway.

use super::lenient::or_default;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use serde_yaml_ng::Value;
use std::collections::BTreeMap;
use std::fmt;

/// One `write_files:` entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WriteFile {
    pub path: String,
    #[serde(default, deserialize_with = "or_default")]
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Mode>,
    /// `user`, `user:group`, numeric ids allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
    /// Write the file inside this system container instead of the host (RancherOS's extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

/// Why the content of an entry cannot be produced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContentError {
    #[error("{path}: content is not gzip data ({encoding}): {reason}")]
    BadGzip {
        path: String,
        encoding: Encoding,
        reason: String,
    },
    #[error("{path}: bad base64 content: {reason}")]
    BadBase64 { path: String, reason: String },
}

impl WriteFile {
    /// The bytes to write, decoded.
    pub fn decoded_content(&self) -> Result<Vec<u8>, ContentError> {
        match self.encoding {
            None => Ok(self.content.clone().into_bytes()),
            Some(Encoding::Base64) => {
                decode_base64(&self.content).map_err(|reason| ContentError::BadBase64 {
                    path: self.path.clone(),
                    reason,
                })
            }
            Some(e @ (Encoding::Gzip | Encoding::GzipBase64)) => {
                let packed = if e == Encoding::GzipBase64 {
                    decode_base64(&self.content).map_err(|reason| ContentError::BadBase64 {
                        path: self.path.clone(),
                        reason,
                    })?
                } else {
                    self.content.clone().into_bytes()
                };
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut flate2::read::GzDecoder::new(packed.as_slice()),
                    &mut out,
                )
                .map_err(|err| ContentError::BadGzip {
                    path: self.path.clone(),
                    encoding: e,
                    reason: err.to_string(),
                })?;
                Ok(out)
            }
        }
    }

    /// The file mode to create the file with (cloud-init's default is 0644).
    pub fn mode(&self) -> u32 {
        self.permissions.map_or(0o644, |m| m.0)
    }
}

/// A file mode, written in YAML as octal digits: `'0644'`, `644` or `0o644` all mean rw-r--r--.
///
/// Caveat: once a layer has been merged, an unquoted `0o644` has become the YAML integer 420 and
/// reads back as mode 0420; quoted modes (`'0644'`, the cloud-init convention) and bare digits
/// (`0644`, `644`) are unaffected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parse the octal text of a mode.
    pub fn parse(text: &str) -> Option<Mode> {
        let digits = text.trim();
        let digits = digits.strip_prefix("0o").unwrap_or(digits);
        if digits.is_empty() || digits.len() > 5 {
            return None;
        }
        let n = u32::from_str_radix(digits, 8).ok()?;
        (n <= 0o7777).then_some(Mode(n))
    }
}

impl Serialize for Mode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{:04o}", self.0))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Mode, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Mode;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an octal file mode like '0644'")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Mode, E> {
                Mode::parse(s).ok_or_else(|| {
                    E::custom(format!(
                        "invalid permissions {s:?}, expected an octal file mode like '0644'"
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, n: u64) -> Result<Mode, E> {
                // Digits written without quotes are still octal digits, as RancherOS read them.
                self.visit_str(&n.to_string())
            }
        }
        // From YAML text, `deserialize_str` hands over any scalar's own text (`0644` keeps its 0).
        d.deserialize_str(V)
    }
}

/// `encoding:` of a `write_files:` entry, spelled as cloud-init accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// `b64`, `base64`.
    Base64,
    /// `gz`, `gzip`.
    Gzip,
    /// `gz+b64`, `gz+base64`, `gzip+b64`, `gzip+base64`.
    GzipBase64,
}

impl Encoding {
    const NAMES: &'static str = "b64, base64, gz, gzip, gz+b64, gzip+base64";

    pub fn parse(s: &str) -> Option<Encoding> {
        match s.trim().to_ascii_lowercase().as_str() {
            "b64" | "base64" => Some(Encoding::Base64),
            "gz" | "gzip" => Some(Encoding::Gzip),
            "gz+b64" | "gz+base64" | "gzip+b64" | "gzip+base64" => Some(Encoding::GzipBase64),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Base64 => "b64",
            Encoding::Gzip => "gzip",
            Encoding::GzipBase64 => "gzip+base64",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Encoding {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Encoding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Encoding, D::Error> {
        // A visitor, not `String::deserialize` then a check: an error raised inside the visitor
        // is marked with this key's path and line, not its parent's.
        struct V;
        impl Visitor<'_> for V {
            type Value = Encoding;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                write!(f, "one of {}", Encoding::NAMES)
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Encoding, E> {
                Encoding::parse(s).ok_or_else(|| {
                    E::custom(format!(
                        "unknown encoding {s:?}, expected one of {}",
                        Encoding::NAMES
                    ))
                })
            }
        }
        d.deserialize_str(V)
    }
}

/// Decode standard base64 (RFC 4648), ignoring whitespace and accepting missing padding.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits, mut seen_pad) = (0u32, 0u32, false);
    for (i, c) in text.bytes().enumerate() {
        if c.is_ascii_whitespace() {
            continue;
        }
        if c == b'=' {
            seen_pad = true;
            continue;
        }
        if seen_pad {
            return Err(format!("data after padding at byte {i}"));
        }
        let v =
            sextet(c).ok_or_else(|| format!("invalid character {:?} at byte {i}", c as char))?;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("truncated input".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_vectors() {
        for (enc, dec) in [
            ("", ""),
            ("Zg==", "f"),
            ("Zm8=", "fo"),
            ("Zm9v", "foo"),
            ("Zm9vYg", "foob"),
            ("Zm9v\nYmFy\n", "foobar"),
            ("aGVsbG8gd29ybGQK", "hello world\n"),
        ] {
            assert_eq!(decode_base64(enc).unwrap(), dec.as_bytes(), "{enc}");
        }
        assert!(decode_base64("Zm9v!").unwrap_err().contains("'!'"));
        assert!(decode_base64("Zg==Zg").is_err());
        assert!(decode_base64("Z").is_err());
    }

    #[test]
    fn modes_are_octal_however_written() {
        for s in ["0644", "644", "0o644"] {
            assert_eq!(Mode::parse(s), Some(Mode(0o644)), "{s}");
        }
        assert_eq!(Mode::parse("0755"), Some(Mode(0o755)));
        for bad in ["", "0999", "rw-r--r--", "77777"] {
            assert_eq!(Mode::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn gzip_base64_is_inflated_and_bad_data_named() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, b"hello gzip\n").unwrap();
        let packed = gz.finish().unwrap();
        let b64 = {
            const A: &[u8; 64] =
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
            let mut s = String::new();
            for c in packed.chunks(3) {
                let n = c
                    .iter()
                    .enumerate()
                    .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
                for i in 0..4 {
                    s.push(if i <= c.len() {
                        A[(n >> (18 - 6 * i) & 63) as usize] as char
                    } else {
                        '='
                    });
                }
            }
            s
        };
        let mut f = WriteFile {
            path: "/etc/x".into(),
            content: b64,
            permissions: None,
            owner: None,
            encoding: Some(Encoding::GzipBase64),
            container: None,
            extra: BTreeMap::new(),
        };
        assert_eq!(f.decoded_content().unwrap(), b"hello gzip\n");
        f.content = "aGVsbG8=".into(); // base64 of "hello": not gzip
        let e = f.decoded_content().unwrap_err().to_string();
        assert!(
            e.starts_with("/etc/x: content is not gzip data (gzip+base64): "),
            "{e}"
        );
    }
}
