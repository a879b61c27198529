//! Docker's multiplexed stream format, both ways. A non-tty container's stdout and stderr travel
//! over one HTTP body as frames: an 8-byte header (`[stream, 0, 0, 0, len as u32 big-endian]`,
//! stream 1 = stdout, 2 = stderr) and then `len` bytes. `docker logs` and `docker exec` read
//! exactly this, so the server writes it ([`frame`]) and our CLI reads it back ([`Demux`]).

use std::io::{self, Read};

/// Which output a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
}

impl StreamKind {
    fn from_byte(b: u8) -> Option<StreamKind> {
        match b {
            0 => Some(StreamKind::Stdin),
            1 => Some(StreamKind::Stdout),
            2 => Some(StreamKind::Stderr),
            _ => None,
        }
    }
}

/// Largest payload per frame we write (Docker's own writer uses 32 KiB buffers too).
pub const MAX_FRAME: usize = 32 * 1024;

/// One frame: header and payload. `data` longer than `u32::MAX` is never passed (callers chunk
/// at [`MAX_FRAME`]).
pub fn frame(kind: StreamKind, data: &[u8]) -> Vec<u8> {
    let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[kind as u8, 0, 0, 0]);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data[..len as usize]);
    out
}

/// Frames for `data`, split at [`MAX_FRAME`].
pub fn frames(kind: StreamKind, data: &[u8]) -> Vec<Vec<u8>> {
    data.chunks(MAX_FRAME).map(|c| frame(kind, c)).collect()
}

/// Reads frames from a multiplexed body, one at a time.
pub struct Demux<R> {
    inner: R,
}

impl<R: Read> Demux<R> {
    pub fn new(inner: R) -> Self {
        Demux { inner }
    }

    /// The next frame, or `None` at a clean end of stream (between frames).
    pub fn next_frame(&mut self) -> io::Result<Option<(StreamKind, Vec<u8>)>> {
        let mut header = [0u8; 8];
        let mut got = 0;
        while got < header.len() {
            match self.inner.read(&mut header[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended inside a frame header",
                    ))
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let kind = StreamKind::from_byte(header[0]).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad stream type {} in frame header", header[0]),
            )
        })?;
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        let mut data = vec![0u8; len];
        self.inner.read_exact(&mut data)?;
        Ok(Some((kind, data)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_an_8_byte_header_then_the_payload() {
        assert_eq!(
            frame(StreamKind::Stderr, b"hi"),
            [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']
        );
        assert_eq!(frame(StreamKind::Stdout, b""), [1, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn frames_round_trip_and_split_big_payloads() {
        let big = vec![b'x'; MAX_FRAME + 10];
        let mut wire = Vec::new();
        for f in frames(StreamKind::Stdout, &big) {
            wire.extend(f);
        }
        wire.extend(frame(StreamKind::Stderr, b"oops\n"));
        let mut d = Demux::new(&wire[..]);
        let (k, a) = d.next_frame().unwrap().unwrap();
        assert_eq!((k, a.len()), (StreamKind::Stdout, MAX_FRAME));
        let (k, b) = d.next_frame().unwrap().unwrap();
        assert_eq!((k, b.len()), (StreamKind::Stdout, 10));
        assert_eq!(
            d.next_frame().unwrap().unwrap(),
            (StreamKind::Stderr, b"oops\n".to_vec())
        );
        assert!(d.next_frame().unwrap().is_none());
    }

    #[test]
    fn a_truncated_or_garbled_stream_is_an_error() {
        let f = frame(StreamKind::Stdout, b"hello");
        assert!(Demux::new(&f[..4]).next_frame().is_err());
        assert!(Demux::new(&f[..10]).next_frame().is_err());
        let mut bad = f.clone();
        bad[0] = 7;
        assert!(Demux::new(&bad[..]).next_frame().is_err());
    }
}
