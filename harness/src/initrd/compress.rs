//! Initrd compression. The kernel's XZ decoder accepts only CRC32 (or no) integrity checks, so xz
//! is written with CRC32; zstd at level 19 keeps the window (8 MiB) well inside what the kernel's
//! decoder takes.

use anyhow::Context;
use serde::Deserialize;
use std::io::Write;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    Xz,
    Zstd,
    None,
}

impl std::fmt::Display for Compression {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::None => "none",
        })
    }
}

pub fn compress(kind: Compression, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    match kind {
        Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => zstd::bulk::compress(raw, 19).context("zstd"),
        Compression::Xz => {
            let stream = xz2::stream::Stream::new_easy_encoder(9, xz2::stream::Check::Crc32)
                .context("xz encoder")?;
            let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
            enc.write_all(raw).context("xz")?;
            enc.finish().context("xz")
        }
    }
}
