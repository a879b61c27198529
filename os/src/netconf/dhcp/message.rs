//! DHCPv4 messages (RFC 2131, options of RFC 2132): the client's requests built, the server's
//! answers read.
//!
//! Answers come off the network, from whoever sends to port 68: every length is checked, a
//! message that does not parse is an error the client logs and drops (never a panic), and only
//! the options the client uses are kept. A bad optional option (a mask that is not contiguous,
//! a domain that is not a name, a wrong length) is left out, said in [`Reply::dropped`], and
//! the rest of the answer stands: servers in the field send such things. Option overload (52: options in `sname`/`file`) is not
//! read; no server this client meets needs it for the options it asks for.

use std::net::Ipv4Addr;

pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
/// The fixed BOOTP part before the options.
const FIXED: usize = 236;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
/// The `flags` bit asking the server to broadcast its answer: the client has no address yet,
/// and the kernel would drop a unicast to an address it does not have.
const FLAG_BROADCAST: u16 = 0x8000;

/// What the client asks for in option 55, in this order.
const WANTED: [u8; 10] = [1, 3, 6, 12, 15, 26, 28, 51, 58, 59];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Discover = 1,
    Offer = 2,
    Request = 3,
    Ack = 5,
    Nak = 6,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MessageError {
    #[error("{0} bytes: shorter than a DHCP message")]
    Short(usize),
    #[error("not a server's reply (op {0})")]
    NotReply(u8),
    #[error("hardware type {htype}/length {hlen}: not Ethernet")]
    NotEthernet { htype: u8, hlen: u8 },
    #[error("no DHCP magic cookie")]
    NoCookie,
    #[error("option {code} runs past the end of the message")]
    Truncated { code: u8 },
    #[error("option {code} has length {len}, expected {expected}")]
    BadLength {
        code: u8,
        len: usize,
        expected: &'static str,
    },
    #[error("no message type (option 53)")]
    NoKind,
    #[error("message type {0} is not one a server sends")]
    BadKind(u8),
    #[error("subnet mask {0} is not contiguous")]
    BadMask(Ipv4Addr),
    #[error("domain name {0:?} is not a DNS name")]
    BadDomain(String),
}

/// A message the client sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub kind: Kind,
    pub xid: u32,
    pub mac: [u8; 6],
    /// Seconds since the exchange began.
    pub secs: u16,
    /// The client's address: set when renewing or rebinding a lease it holds.
    pub ciaddr: Ipv4Addr,
    /// Option 50: the address of an offer being taken.
    pub requested: Option<Ipv4Addr>,
    /// Option 54: the server whose offer is taken.
    pub server: Option<Ipv4Addr>,
    /// Option 12.
    pub hostname: Option<String>,
}

impl Request {
    pub fn encode(&self) -> Vec<u8> {
        let mut b = vec![0u8; FIXED];
        b[0] = 1; // BOOTREQUEST
        b[1] = 1; // Ethernet
        b[2] = 6;
        b[4..8].copy_from_slice(&self.xid.to_be_bytes());
        b[8..10].copy_from_slice(&self.secs.to_be_bytes());
        // A client that holds an address (ciaddr) can take a unicast answer.
        if self.ciaddr.is_unspecified() {
            b[10..12].copy_from_slice(&FLAG_BROADCAST.to_be_bytes());
        }
        b[12..16].copy_from_slice(&self.ciaddr.octets());
        b[28..34].copy_from_slice(&self.mac);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[53, 1, self.kind as u8]);
        // Client identifier: hardware type and address, as most clients send it.
        b.extend_from_slice(&[61, 7, 1]);
        b.extend_from_slice(&self.mac);
        if let Some(ip) = self.requested {
            b.extend_from_slice(&[50, 4]);
            b.extend_from_slice(&ip.octets());
        }
        if let Some(ip) = self.server {
            b.extend_from_slice(&[54, 4]);
            b.extend_from_slice(&ip.octets());
        }
        if let Some(h) = self.hostname.as_deref().filter(|h| !h.is_empty()) {
            let h = &h.as_bytes()[..h.len().min(255)];
            b.extend_from_slice(&[12, h.len() as u8]);
            b.extend_from_slice(h);
        }
        b.extend_from_slice(&[55, WANTED.len() as u8]);
        b.extend_from_slice(&WANTED);
        // Maximum message size: a full Ethernet frame.
        b.extend_from_slice(&[57, 2]);
        b.extend_from_slice(&1500u16.to_be_bytes());
        b.push(255);
        // BOOTP relays drop messages shorter than 300 bytes.
        if b.len() < 300 {
            b.resize(300, 0);
        }
        b
    }
}

/// A server's answer, with the options the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub kind: Kind,
    pub xid: u32,
    pub chaddr: [u8; 6],
    /// The address offered or given.
    pub yiaddr: Ipv4Addr,
    /// Option 54.
    pub server: Option<Ipv4Addr>,
    /// Option 1, as a prefix length.
    pub prefix: Option<u8>,
    /// Option 3.
    pub routers: Vec<Ipv4Addr>,
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15: DNS names, space-separated (some servers put a search list there).
    pub domain: Option<String>,
    /// Option 26.
    pub mtu: Option<u16>,
    /// Option 51, 58, 59 (seconds).
    pub lease: Option<u32>,
    pub renew: Option<u32>,
    pub rebind: Option<u32>,
    /// Option 56: why, in a NAK.
    pub message: Option<String>,
    /// Options left out, and why.
    pub dropped: Vec<MessageError>,
}

fn ip4(code: u8, v: &[u8]) -> Result<Ipv4Addr, MessageError> {
    <[u8; 4]>::try_from(v)
        .map(Ipv4Addr::from)
        .map_err(|_| MessageError::BadLength {
            code,
            len: v.len(),
            expected: "4",
        })
}

fn ip4_list(code: u8, v: &[u8]) -> Result<Vec<Ipv4Addr>, MessageError> {
    if v.is_empty() || !v.len().is_multiple_of(4) {
        return Err(MessageError::BadLength {
            code,
            len: v.len(),
            expected: "a multiple of 4",
        });
    }
    Ok(v.chunks_exact(4)
        .map(|c| Ipv4Addr::new(c[0], c[1], c[2], c[3]))
        .collect())
}

fn u32_of(code: u8, v: &[u8]) -> Result<u32, MessageError> {
    <[u8; 4]>::try_from(v)
        .map(u32::from_be_bytes)
        .map_err(|_| MessageError::BadLength {
            code,
            len: v.len(),
            expected: "4",
        })
}

/// The prefix length of a contiguous mask.
pub fn prefix_of(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let ones = m.leading_ones();
    (m.checked_shl(ones).unwrap_or(0) == 0).then_some(ones as u8)
}

/// Domain names fit for `resolv.conf`'s `search` line: each of letters, digits, `-`, `_` and
/// dots, nothing that could start a line of its own; space-separated.
fn domain_of(v: &[u8]) -> Result<String, MessageError> {
    // Some servers end strings with a NUL.
    let v = v.strip_suffix(&[0]).unwrap_or(v);
    let s = String::from_utf8_lossy(v).into_owned();
    let name = |n: &str| {
        n.len() <= 253
            && n.bytes()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
    };
    let names: Vec<&str> = s.split(' ').filter(|n| !n.is_empty()).collect();
    if !names.is_empty() && names.iter().all(|n| name(n)) {
        Ok(names.join(" "))
    } else {
        Err(MessageError::BadDomain(s.escape_debug().to_string()))
    }
}

impl Reply {
    pub fn parse(b: &[u8]) -> Result<Reply, MessageError> {
        if b.len() < FIXED + COOKIE.len() {
            return Err(MessageError::Short(b.len()));
        }
        if b[0] != 2 {
            return Err(MessageError::NotReply(b[0]));
        }
        if b[1] != 1 || b[2] != 6 {
            return Err(MessageError::NotEthernet {
                htype: b[1],
                hlen: b[2],
            });
        }
        if b[FIXED..FIXED + 4] != COOKIE {
            return Err(MessageError::NoCookie);
        }
        let mut kind = None;
        let mut r = Reply {
            kind: Kind::Offer,
            xid: u32::from_be_bytes([b[4], b[5], b[6], b[7]]),
            chaddr: [b[28], b[29], b[30], b[31], b[32], b[33]],
            yiaddr: Ipv4Addr::new(b[16], b[17], b[18], b[19]),
            server: None,
            prefix: None,
            routers: Vec::new(),
            dns: Vec::new(),
            domain: None,
            mtu: None,
            lease: None,
            renew: None,
            rebind: None,
            message: None,
            dropped: Vec::new(),
        };
        let mut i = FIXED + 4;
        while i < b.len() {
            let code = b[i];
            match code {
                0 => {
                    i += 1;
                    continue;
                }
                255 => break,
                _ => {}
            }
            let len = *b.get(i + 1).ok_or(MessageError::Truncated { code })? as usize;
            let v = b
                .get(i + 2..i + 2 + len)
                .ok_or(MessageError::Truncated { code })?;
            i += 2 + len;
            match code {
                53 => {
                    kind = Some(match v {
                        [2] => Kind::Offer,
                        [5] => Kind::Ack,
                        [6] => Kind::Nak,
                        [k] => return Err(MessageError::BadKind(*k)),
                        _ => {
                            return Err(MessageError::BadLength {
                                code,
                                len,
                                expected: "1",
                            })
                        }
                    })
                }
                54 => r.server = Some(ip4(code, v)?),
                // Optional: a bad one is left out, the answer stands.
                1 => {
                    match ip4(code, v).and_then(|m| prefix_of(m).ok_or(MessageError::BadMask(m))) {
                        Ok(p) => r.prefix = Some(p),
                        Err(e) => r.dropped.push(e),
                    }
                }
                // Lists: a long one may come split in several (RFC 3396).
                3 => match ip4_list(code, v) {
                    Ok(l) => r.routers.extend(l),
                    Err(e) => r.dropped.push(e),
                },
                6 => match ip4_list(code, v) {
                    Ok(l) => r.dns.extend(l),
                    Err(e) => r.dropped.push(e),
                },
                15 => match domain_of(v) {
                    Ok(d) => r.domain = Some(d),
                    Err(e) => r.dropped.push(e),
                },
                26 => match <[u8; 2]>::try_from(v) {
                    Ok(m) => r.mtu = Some(u16::from_be_bytes(m)),
                    Err(_) => r.dropped.push(MessageError::BadLength {
                        code,
                        len,
                        expected: "2",
                    }),
                },
                51 => r.lease = Some(u32_of(code, v)?),
                58 => r.renew = Some(u32_of(code, v)?),
                59 => r.rebind = Some(u32_of(code, v)?),
                56 => {
                    let s: String = String::from_utf8_lossy(v)
                        .chars()
                        .filter(|c| !c.is_control())
                        .take(200)
                        .collect();
                    r.message = Some(s);
                }
                _ => {}
            }
        }
        r.kind = kind.ok_or(MessageError::NoKind)?;
        Ok(r)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

    /// A server's answer, as QEMU's would be, with the given options.
    pub(crate) fn reply(kind: u8, xid: u32, yiaddr: [u8; 4], options: &[(u8, &[u8])]) -> Vec<u8> {
        let mut b = vec![0u8; FIXED];
        b[0] = 2;
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&xid.to_be_bytes());
        b[16..20].copy_from_slice(&yiaddr);
        b[28..34].copy_from_slice(&MAC);
        b.extend_from_slice(&COOKIE);
        b.extend_from_slice(&[53, 1, kind]);
        for (code, v) in options {
            b.push(*code);
            b.push(v.len() as u8);
            b.extend_from_slice(v);
        }
        b.push(255);
        b
    }

    #[test]
    fn a_discover_asks_for_a_broadcast_answer_and_a_renewal_does_not() {
        let mut req = Request {
            kind: Kind::Discover,
            xid: 0x0102_0304,
            mac: MAC,
            secs: 3,
            ciaddr: Ipv4Addr::UNSPECIFIED,
            requested: None,
            server: None,
            hostname: Some("rancher".into()),
        };
        let b = req.encode();
        assert_eq!(b.len(), 300);
        assert_eq!(&b[..4], &[1, 1, 6, 0]);
        assert_eq!(&b[4..8], &[1, 2, 3, 4]);
        assert_eq!(&b[8..12], &[0, 3, 0x80, 0]);
        assert_eq!(&b[28..34], &MAC);
        assert_eq!(&b[236..243], &[99, 130, 83, 99, 53, 1, 1]);
        let opts = &b[240..];
        let find = |code: u8| {
            let mut i = 0;
            while opts[i] != 255 {
                if opts[i] == code {
                    return Some(opts[i + 2..i + 2 + opts[i + 1] as usize].to_vec());
                }
                i += 2 + opts[i + 1] as usize;
            }
            None
        };
        assert_eq!(find(12).unwrap(), b"rancher");
        assert_eq!(find(61).unwrap(), [1, 0x52, 0x54, 0, 0x12, 0x34, 0x56]);
        assert_eq!(find(55).unwrap(), WANTED);
        assert_eq!(find(50), None);
        req.kind = Kind::Request;
        req.ciaddr = Ipv4Addr::new(10, 0, 2, 15);
        let b = req.encode();
        assert_eq!(&b[10..16], &[0, 0, 10, 0, 2, 15], "no broadcast flag");
        assert_eq!(b[242], 3);
    }

    #[test]
    fn an_offer_is_read_with_its_options() {
        let b = reply(
            2,
            7,
            [10, 0, 2, 15],
            &[
                (54, &[10, 0, 2, 2]),
                (1, &[255, 255, 255, 0]),
                (3, &[10, 0, 2, 2]),
                (6, &[10, 0, 2, 3, 8, 8, 8, 8]),
                (6, &[1, 1, 1, 1]),
                (15, b"example.lan\0"),
                (26, &[5, 220]),
                (51, &[0, 1, 81, 128]),
                (99, &[1, 2, 3]),
            ],
        );
        let r = Reply::parse(&b).unwrap();
        assert_eq!(r.kind, Kind::Offer);
        assert_eq!(r.xid, 7);
        assert_eq!(r.chaddr, MAC);
        assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
        assert_eq!(r.server, Some(Ipv4Addr::new(10, 0, 2, 2)));
        assert_eq!(r.prefix, Some(24));
        assert_eq!(r.routers, [Ipv4Addr::new(10, 0, 2, 2)]);
        assert_eq!(r.dns.len(), 3);
        assert_eq!(r.domain.as_deref(), Some("example.lan"));
        assert_eq!(r.mtu, Some(1500));
        assert_eq!(r.lease, Some(86400));
    }

    #[test]
    fn hostile_answers_are_refused_not_trusted() {
        let ok = reply(5, 1, [10, 0, 2, 15], &[]);
        assert!(Reply::parse(&ok).is_ok());
        // Every cut of a valid message is an error or a message, never a panic.
        let long = reply(5, 1, [10, 0, 2, 15], &[(6, &[1, 2, 3, 4]), (15, b"a.b")]);
        for n in 0..long.len() {
            let _ = Reply::parse(&long[..n]);
        }
        let mut truncated = reply(5, 1, [10, 0, 2, 15], &[]);
        truncated.pop();
        truncated.extend_from_slice(&[6, 200, 1, 2]);
        assert_eq!(
            Reply::parse(&truncated),
            Err(MessageError::Truncated { code: 6 })
        );
        // Bad optional options are left out, said, and the rest stands.
        let inject = reply(
            5,
            1,
            [10, 0, 2, 15],
            &[
                (15, b"lan\nnameserver 6.6.6.6"),
                (1, &[255, 0, 255, 0]),
                (6, &[1, 2, 3]),
                (26, &[1]),
            ],
        );
        let r = Reply::parse(&inject).unwrap();
        assert_eq!(
            (r.domain, r.prefix, r.dns.len(), r.mtu),
            (None, None, 0, None)
        );
        assert!(
            matches!(r.dropped[0], MessageError::BadDomain(ref d) if d == "lan\\nnameserver 6.6.6.6")
        );
        assert!(matches!(r.dropped[1], MessageError::BadMask(_)));
        assert!(matches!(
            r.dropped[2],
            MessageError::BadLength { code: 6, .. }
        ));
        assert!(matches!(
            r.dropped[3],
            MessageError::BadLength { code: 26, .. }
        ));
        assert_eq!(r.yiaddr, Ipv4Addr::new(10, 0, 2, 15));
        // A search list in option 15 (ISC dhcpd's habit) is kept as one.
        let list = reply(5, 1, [10, 0, 2, 15], &[(15, b"a.com  b.lan")]);
        assert_eq!(
            Reply::parse(&list).unwrap().domain.as_deref(),
            Some("a.com b.lan")
        );
        // The server identifier is not optional.
        let server = reply(5, 1, [10, 0, 2, 15], &[(54, &[10, 0, 2])]);
        assert!(matches!(
            Reply::parse(&server),
            Err(MessageError::BadLength { code: 54, .. })
        ));
        let mut request = ok.clone();
        request[0] = 1;
        assert_eq!(Reply::parse(&request), Err(MessageError::NotReply(1)));
        let discover = reply(1, 1, [0; 4], &[]);
        assert_eq!(Reply::parse(&discover), Err(MessageError::BadKind(1)));
        let mut no_kind = ok;
        no_kind[240] = 0; // the type option becomes padding and garbage
        no_kind[241] = 0;
        no_kind[242] = 0;
        assert_eq!(Reply::parse(&no_kind), Err(MessageError::NoKind));
    }

    #[test]
    fn masks_give_prefix_lengths() {
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 0)), Some(24));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 255, 255)), Some(32));
        assert_eq!(prefix_of(Ipv4Addr::new(0, 0, 0, 0)), Some(0));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 255, 254, 0)), Some(23));
        assert_eq!(prefix_of(Ipv4Addr::new(255, 0, 255, 0)), None);
    }
}
