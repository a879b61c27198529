//! Initrd compression. The kernel's XZ decoder accepts only CRC32 (or no) integrity checks, so xz
//! is written with CRC32. zstd is written at level 19 with a window of [`ZSTD_WINDOW_LOG`]: the
//! kernel's decoder (`lib/decompress_unzstd.c`) allocates a workspace the size of the frame's
//! window for the whole unpack, on top of the compressed initrd and the files already unpacked,
//! and that peak is what decides the smallest memory the system boots in.

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

/// log2 of the zstd window: 2 MiB. Level 19's own (8 MiB) made the kernel's unpack workspace
/// 6 MiB larger, enough that `-m 64` ran out of memory while unpacking (`cargo harness bench ram`);
/// the image grows by ~1.5 % (measured with `zstd -19 --zstd=wlog=N` on the initrd's cpio,
/// 2026-12-05: 8 MiB 8,629,847 B, 2 MiB 8,756,499, 1 MiB 8,835,420).
pub const ZSTD_WINDOW_LOG: u32 = 21;

pub fn compress(kind: Compression, raw: &[u8]) -> anyhow::Result<Vec<u8>> {
    match kind {
        Compression::None => Ok(raw.to_vec()),
        Compression::Zstd => {
            let mut c = zstd::bulk::Compressor::new(19).context("zstd")?;
            c.set_parameter(zstd::zstd_safe::CParameter::WindowLog(ZSTD_WINDOW_LOG))
                .context("zstd window")?;
            c.compress(raw).context("zstd")
        }
        Compression::Xz => {
            let stream = xz2::stream::Stream::new_easy_encoder(9, xz2::stream::Check::Crc32)
                .context("xz encoder")?;
            let mut enc = xz2::write::XzEncoder::new_stream(Vec::new(), stream);
            enc.write_all(raw).context("xz")?;
            enc.finish().context("xz")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn zstd_frames_declare_the_small_window() {
        let raw: Vec<u8> = (0..4_000_000u32)
            .flat_map(|i| (i % 7919).to_le_bytes())
            .collect();
        let packed = compress(Compression::Zstd, &raw).unwrap();
        // A streaming decoder (as the kernel's) that refuses windows above ours reads it whole.
        let mut d = zstd::stream::read::Decoder::new(&packed[..]).unwrap();
        d.window_log_max(ZSTD_WINDOW_LOG).unwrap();
        let mut out = Vec::new();
        d.read_to_end(&mut out).unwrap();
        assert_eq!(out, raw);
    }
}
