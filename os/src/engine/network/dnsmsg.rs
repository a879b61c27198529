//! The DNS messages of the user engine's embedded DNS server (`127.0.0.11` in a container, as
//! dockerd's): it answers the names of the containers itself (`A` for a container's name,
//! `PTR` for its address) and forwards every other query untouched, relaying the upstream's
//! reply as it came. So only what the engine answers is encoded here: a reply to one question,
//! its answers all of one type, and header-only error replies. No general DNS library.
//!
//! The query comes from inside a container, which is not trusted: it is parsed strictly, every
//! offset checked, nothing followed that the packet points to (no compression in a question,
//! so no pointer loops), and every failure is a [`DnsError`] saying what was wrong (the server
//! answers `FORMERR` or `NOTIMP`, see [`DnsError::rcode`], or nothing at all to a response, so
//! two servers can never loop on each other). Pure functions, no I/O.

use std::borrow::Cow;
use std::net::Ipv4Addr;

pub const TYPE_A: u16 = 1;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_PTR: u16 = 12;
pub const CLASS_IN: u16 = 1;

/// `FORMERR`: the query could not be understood.
pub const RCODE_FORMERR: u8 = 1;
/// `NOTIMP`: a kind of query (an opcode) this server does not do.
pub const RCODE_NOTIMP: u8 = 4;

/// The size of the header, the only fixed part of a message.
const HEADER_LEN: usize = 12;
/// The longest name on the wire, length bytes and the final zero included (RFC 1035 2.3.4).
const MAX_NAME_WIRE: usize = 255;
const MAX_LABEL: usize = 63;
/// A compression pointer to the question's name, which follows the header at offset 12.
const POINTER_TO_QUESTION: [u8; 2] = [0xC0, 0x0C];

// The header's flag bits (RFC 1035 4.1.1).
const FLAG_QR: u16 = 0x8000;
const FLAG_AA: u16 = 0x0400;
const FLAG_RD: u16 = 0x0100;
const FLAG_RA: u16 = 0x0080;
const OPCODE_SHIFT: u16 = 11;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000F;

/// Why a packet is not a query this server takes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    #[error("packet of {0} bytes, shorter than a DNS header (12)")]
    TooShort(usize),
    #[error("packet is a response (QR=1), not a query")]
    NotAQuery,
    #[error("opcode {0} is not a standard query (0)")]
    Opcode(u8),
    #[error("{0} questions, a query has exactly 1")]
    QuestionCount(u16),
    #[error("query carries {answers} answer and {authority} authority records")]
    UnexpectedRecords { answers: u16, authority: u16 },
    #[error("question ends at byte {0}, past the end of the packet")]
    Truncated(usize),
    #[error("compression pointer in the question's name at byte {0}")]
    CompressedName(usize),
    #[error("label length {len} at byte {at} is over 63")]
    LabelTooLong { at: usize, len: u8 },
    #[error("name longer than 255 bytes")]
    NameTooLong,
    #[error("non-ASCII byte {byte:#04x} in a label at byte {at}")]
    NonAscii { at: usize, byte: u8 },
    #[error("'.' inside a label at byte {0}")]
    DotInLabel(usize),
}

impl DnsError {
    /// The code of the reply the server gives to a packet that failed this way (with
    /// [`error_reply`]): `NOTIMP` for a kind of query it does not do, `FORMERR` otherwise.
    pub fn rcode(&self) -> u8 {
        match self {
            DnsError::Opcode(_) => RCODE_NOTIMP,
            _ => RCODE_FORMERR,
        }
    }
}

/// A standard query's header and its one question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub id: u16,
    /// Lowercase, no trailing dot, labels joined by `.` (the root: empty).
    pub name: String,
    pub qtype: u16,
    pub qclass: u16,
    pub recursion_desired: bool,
    /// The offset just past the question: the reply copies `packet[12..question_end]`, the
    /// question as the client wrote it (its letters' case included, which some resolvers
    /// randomise and check, DNS 0x20).
    question_end: usize,
}

fn be16(packet: &[u8], at: usize) -> Option<u16> {
    let b = packet.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

fn flags(packet: &[u8]) -> Option<u16> {
    be16(packet, 2)
}

/// A standard query (QR=0, OPCODE=0) with exactly one question whose name is uncompressed.
/// Answer and authority records are refused (a query has none); additional records (an EDNS
/// `OPT`) are not read: nothing past the question is, trailing bytes included.
pub fn parse_query(packet: &[u8]) -> Result<Query, DnsError> {
    if packet.len() < HEADER_LEN {
        return Err(DnsError::TooShort(packet.len()));
    }
    let field = |at| be16(packet, at).ok_or(DnsError::TooShort(packet.len()));
    let (id, flags) = (field(0)?, field(2)?);
    if flags & FLAG_QR != 0 {
        return Err(DnsError::NotAQuery);
    }
    let opcode = ((flags & OPCODE_MASK) >> OPCODE_SHIFT) as u8;
    if opcode != 0 {
        return Err(DnsError::Opcode(opcode));
    }
    let qdcount = field(4)?;
    if qdcount != 1 {
        return Err(DnsError::QuestionCount(qdcount));
    }
    let (answers, authority) = (field(6)?, field(8)?);
    if answers != 0 || authority != 0 {
        return Err(DnsError::UnexpectedRecords { answers, authority });
    }
    let (name, name_end) = parse_name(packet, HEADER_LEN)?;
    let question_end = name_end + 4;
    let qtype = be16(packet, name_end).ok_or(DnsError::Truncated(question_end))?;
    let qclass = be16(packet, name_end + 2).ok_or(DnsError::Truncated(question_end))?;
    Ok(Query {
        id,
        name,
        qtype,
        qclass,
        recursion_desired: flags & FLAG_RD != 0,
        question_end,
    })
}

/// An uncompressed name at `start`: the name and the offset just past its final zero.
fn parse_name(packet: &[u8], start: usize) -> Result<(String, usize), DnsError> {
    let mut name = String::new();
    let mut at = start;
    loop {
        let len = *packet.get(at).ok_or(DnsError::Truncated(at + 1))?;
        // The two top bits say what the byte is: 00 a length, 11 a pointer, the others
        // label types long obsolete (and a length over 63 either way).
        match len {
            0 => return Ok((name, at + 1)),
            0xC0..=0xFF => return Err(DnsError::CompressedName(at)),
            64..=0xBF => return Err(DnsError::LabelTooLong { at, len }),
            _ => {}
        }
        let end = at + 1 + len as usize;
        // The wire length so far, plus the final zero still to come.
        if end - start + 1 > MAX_NAME_WIRE {
            return Err(DnsError::NameTooLong);
        }
        let label = packet.get(at + 1..end).ok_or(DnsError::Truncated(end))?;
        if at != start {
            name.push('.');
        }
        push_label(&mut name, label, at + 1)?;
        at = end;
    }
}

/// Append a label, lowercased; `at` is its offset, for the errors.
fn push_label(name: &mut String, label: &[u8], at: usize) -> Result<(), DnsError> {
    for (i, &byte) in label.iter().enumerate() {
        if !byte.is_ascii() {
            return Err(DnsError::NonAscii { at: at + i, byte });
        }
        // A dot would make the name say other labels than the packet did.
        if byte == b'.' {
            return Err(DnsError::DotInLabel(at + i));
        }
        name.push(byte.to_ascii_lowercase() as char);
    }
    Ok(())
}

/// A name as labels (`web.net` → `3web3net0`), or `None` if it cannot be one (an empty or
/// over-long label, over 255 bytes in all, a non-ASCII character). A trailing dot is allowed.
fn encode_name(name: &str) -> Option<Vec<u8>> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut wire = Vec::with_capacity(name.len() + 2);
    if !name.is_empty() {
        for label in name.split('.') {
            if label.is_empty() || label.len() > MAX_LABEL || !label.is_ascii() {
                return None;
            }
            wire.push(label.len() as u8);
            wire.extend_from_slice(label.as_bytes());
        }
    }
    wire.push(0);
    (wire.len() <= MAX_NAME_WIRE).then_some(wire)
}

/// The question to repeat in the reply: the client's bytes as they were, or (if `q` did not
/// come from this packet) encoded anew from `q`; `None` if neither can be had.
fn question<'a>(query_packet: &'a [u8], q: &Query) -> Option<Cow<'a, [u8]>> {
    if let Some(bytes) = query_packet.get(HEADER_LEN..q.question_end) {
        if !bytes.is_empty() {
            return Some(Cow::Borrowed(bytes));
        }
    }
    let mut wire = encode_name(&q.name)?;
    wire.extend_from_slice(&q.qtype.to_be_bytes());
    wire.extend_from_slice(&q.qclass.to_be_bytes());
    Some(Cow::Owned(wire))
}

fn header(id: u16, flags: u16, qdcount: u16, ancount: u16) -> [u8; HEADER_LEN] {
    let mut h = [0; HEADER_LEN];
    h[0..2].copy_from_slice(&id.to_be_bytes());
    h[2..4].copy_from_slice(&flags.to_be_bytes());
    h[4..6].copy_from_slice(&qdcount.to_be_bytes());
    h[6..8].copy_from_slice(&ancount.to_be_bytes());
    h
}

/// The reply to `q`: header, the question, then each RDATA as one record pointing at the
/// question's name. Its count is what the header says, capped at what the field holds.
fn reply(
    query_packet: &[u8],
    q: &Query,
    rcode: u8,
    rtype: u16,
    ttl: u32,
    rdatas: &[Vec<u8>],
) -> Vec<u8> {
    let question = question(query_packet, q);
    let rd = if q.recursion_desired { FLAG_RD } else { 0 };
    let flags = FLAG_QR | FLAG_AA | rd | FLAG_RA | (u16::from(rcode) & RCODE_MASK);
    // Without a question there is no name to point at: no answers either.
    let rdatas = match question {
        Some(_) => &rdatas[..rdatas.len().min(usize::from(u16::MAX))],
        None => &[],
    };
    let qdcount = u16::from(question.is_some());
    let mut msg = header(q.id, flags, qdcount, rdatas.len() as u16).to_vec();
    msg.extend_from_slice(question.as_deref().unwrap_or(&[]));
    for rdata in rdatas {
        msg.extend_from_slice(&POINTER_TO_QUESTION);
        msg.extend_from_slice(&rtype.to_be_bytes());
        msg.extend_from_slice(&CLASS_IN.to_be_bytes());
        msg.extend_from_slice(&ttl.to_be_bytes());
        msg.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        msg.extend_from_slice(rdata);
    }
    msg
}

/// The authoritative answer to `q` (parsed from `query_packet`): one `A` record per address.
/// The client's `OPT` record is not repeated (the reply is plain DNS, no EDNS).
pub fn answer_a(query_packet: &[u8], q: &Query, addrs: &[Ipv4Addr], ttl: u32) -> Vec<u8> {
    let rdatas: Vec<Vec<u8>> = addrs.iter().map(|a| a.octets().to_vec()).collect();
    reply(query_packet, q, 0, TYPE_A, ttl, &rdatas)
}

/// The authoritative answer to `q`: one `PTR` record per name (`web`, `web.net`). A name that
/// cannot be encoded (see [`encode_name`]) is left out, and the count says so.
pub fn answer_ptr(query_packet: &[u8], q: &Query, names: &[String], ttl: u32) -> Vec<u8> {
    let rdatas: Vec<Vec<u8>> = names.iter().filter_map(|n| encode_name(n)).collect();
    reply(query_packet, q, 0, TYPE_PTR, ttl, &rdatas)
}

/// An authoritative reply to `q` without answers: `rcode` 0 (the name exists, not with this
/// type), 2 (`SERVFAIL`) or 3 (`NXDOMAIN`).
pub fn answer_empty(query_packet: &[u8], q: &Query, rcode: u8) -> Vec<u8> {
    reply(query_packet, q, rcode, 0, 0, &[])
}

/// A header-only reply to a packet [`parse_query`] refused: its ID, opcode and RD, QR=1,
/// `rcode`, no records. `None` for a packet shorter than a header (no ID to answer) and for a
/// response: answering responses is how two servers end up answering each other forever.
pub fn error_reply(packet: &[u8], rcode: u8) -> Option<Vec<u8>> {
    if packet.len() < HEADER_LEN || is_response(packet) {
        return None;
    }
    let (id, flags) = (be16(packet, 0)?, flags(packet)?);
    let kept = flags & (OPCODE_MASK | FLAG_RD);
    let flags = FLAG_QR | kept | FLAG_RA | (u16::from(rcode) & RCODE_MASK);
    Some(header(id, flags, 0, 0).to_vec())
}

/// The address a reverse name is for: `2.0.18.172.in-addr.arpa` → `172.18.0.2` (any case, a
/// trailing dot allowed). `None` for anything else, a partial name (`18.172.in-addr.arpa`)
/// included, and for octets with a sign or leading zeros.
pub fn reverse_v4(name: &str) -> Option<Ipv4Addr> {
    const SUFFIX: &str = ".in-addr.arpa";
    let name = name.strip_suffix('.').unwrap_or(name);
    let split = name.len().checked_sub(SUFFIX.len())?;
    if !name.is_char_boundary(split) || !name[split..].eq_ignore_ascii_case(SUFFIX) {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut labels = name[..split].split('.');
    // The labels name the address backwards: the first is its last octet.
    for slot in octets.iter_mut().rev() {
        *slot = octet(labels.next()?)?;
    }
    match labels.next() {
        None => Some(Ipv4Addr::from(octets)),
        Some(_) => None,
    }
}

/// A decimal octet as written in an address: digits only, no leading zero but for `0`.
fn octet(s: &str) -> Option<u8> {
    let digits = !s.is_empty() && s.len() <= 3 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    s.parse().ok()
}

/// The ID of a response (QR=1), `None` for anything else: what the forwarder checks an
/// upstream's reply against its query by (a query coming back is no reply).
pub fn response_id(packet: &[u8]) -> Option<u16> {
    if is_response(packet) {
        be16(packet, 0)
    } else {
        None
    }
}

/// Whether `packet` has a header with QR=1.
pub fn is_response(packet: &[u8]) -> bool {
    packet.len() >= HEADER_LEN && flags(packet).is_some_and(|f| f & FLAG_QR != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query's header: `flags`, then the four counts.
    fn hdr(id: u16, flags: u16, counts: [u16; 4]) -> Vec<u8> {
        let mut h = id.to_be_bytes().to_vec();
        h.extend_from_slice(&flags.to_be_bytes());
        for c in counts {
            h.extend_from_slice(&c.to_be_bytes());
        }
        h
    }

    fn labels(labels: &[&[u8]]) -> Vec<u8> {
        let mut w = Vec::new();
        for l in labels {
            w.push(l.len() as u8);
            w.extend_from_slice(l);
        }
        w.push(0);
        w
    }

    /// A standard query with RD for `name` (given as labels).
    fn query(id: u16, name: &[&[u8]], qtype: u16) -> Vec<u8> {
        let mut p = hdr(id, FLAG_RD, [1, 0, 0, 0]);
        p.extend(labels(name));
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&CLASS_IN.to_be_bytes());
        p
    }

    /// An EDNS OPT record (root name, type 41, 4096-byte payload, no options).
    fn opt_record() -> Vec<u8> {
        vec![0, 0, 41, 0x10, 0, 0, 0, 0, 0, 0, 0]
    }

    /// What the test decoder reads of a reply.
    #[derive(Debug)]
    struct Decoded {
        id: u16,
        flags: u16,
        counts: [u16; 4],
        question: Vec<u8>,
        answers: Vec<(u16, u16, u32, Vec<u8>)>,
    }

    /// A tiny decoder, independent of the code under test: every answer must name the
    /// question by the pointer 0xC00C, and the message must end with the last answer.
    fn decode(msg: &[u8]) -> Decoded {
        let r16 = |at: usize| u16::from_be_bytes([msg[at], msg[at + 1]]);
        let counts = [r16(4), r16(6), r16(8), r16(10)];
        let mut at = 12;
        let qstart = at;
        for _ in 0..counts[0] {
            while msg[at] != 0 {
                at += 1 + msg[at] as usize;
            }
            at += 5;
        }
        let question = msg[qstart..at].to_vec();
        let mut answers = Vec::new();
        for _ in 0..counts[1] {
            assert_eq!(&msg[at..at + 2], &[0xC0, 0x0C], "answer names the question");
            let (t, c) = (r16(at + 2), r16(at + 4));
            let ttl = u32::from_be_bytes([msg[at + 6], msg[at + 7], msg[at + 8], msg[at + 9]]);
            let len = r16(at + 10) as usize;
            answers.push((t, c, ttl, msg[at + 12..at + 12 + len].to_vec()));
            at += 12 + len;
        }
        assert_eq!(at, msg.len(), "nothing after the answers");
        Decoded {
            id: r16(0),
            flags: r16(2),
            counts,
            question,
            answers,
        }
    }

    #[test]
    fn a_query_is_parsed_and_answered() {
        let p = query(0xBEEF, &[b"Web"], TYPE_A);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.id, 0xBEEF);
        assert_eq!(q.name, "web");
        assert_eq!((q.qtype, q.qclass), (TYPE_A, CLASS_IN));
        assert!(q.recursion_desired);
        assert_eq!(q.question_end, p.len());

        let addrs = [Ipv4Addr::new(172, 17, 0, 2), Ipv4Addr::new(172, 18, 0, 3)];
        let d = decode(&answer_a(&p, &q, &addrs, 600));
        assert_eq!(d.id, 0xBEEF);
        assert_eq!(d.flags, FLAG_QR | FLAG_AA | FLAG_RD | FLAG_RA);
        assert_eq!(d.counts, [1, 2, 0, 0]);
        // The question as the client wrote it, its capital included.
        assert_eq!(d.question, p[12..]);
        assert_eq!(d.answers[0], (TYPE_A, CLASS_IN, 600, vec![172, 17, 0, 2]));
        assert_eq!(d.answers[1], (TYPE_A, CLASS_IN, 600, vec![172, 18, 0, 3]));
    }

    #[test]
    fn a_multi_label_name_is_joined_by_dots() {
        let p = query(1, &[b"db", b"MyNet", b"local"], TYPE_AAAA);
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "db.mynet.local");
        assert_eq!(q.qtype, TYPE_AAAA);
        let root = parse_query(&query(2, &[], TYPE_A)).unwrap();
        assert_eq!(root.name, "");
    }

    #[test]
    fn rd_is_copied() {
        let mut p = query(7, &[b"web"], TYPE_A);
        p[2] = 0;
        let q = parse_query(&p).unwrap();
        assert!(!q.recursion_desired);
        let d = decode(&answer_empty(&p, &q, 3));
        assert_eq!(d.flags, FLAG_QR | FLAG_AA | FLAG_RA | 3);
    }

    #[test]
    fn an_edns_opt_record_is_accepted_and_dropped() {
        let mut p = query(9, &[b"web"], TYPE_A);
        p[11] = 1;
        let question_end = p.len();
        p.extend(opt_record());
        let q = parse_query(&p).unwrap();
        assert_eq!(q.question_end, question_end);
        let d = decode(&answer_a(&p, &q, &[Ipv4Addr::LOCALHOST], 0));
        assert_eq!(d.counts, [1, 1, 0, 0]);
        assert_eq!(d.question, p[12..question_end]);
    }

    #[test]
    fn ptr_answers_encode_names_as_labels() {
        let p = query(
            3,
            &[b"2", b"0", b"18", b"172", b"in-addr", b"arpa"],
            TYPE_PTR,
        );
        let q = parse_query(&p).unwrap();
        assert_eq!(q.name, "2.0.18.172.in-addr.arpa");
        assert_eq!(reverse_v4(&q.name), Some(Ipv4Addr::new(172, 18, 0, 2)));
        let names = [
            "web".to_string(),
            "web.net.".to_string(),
            "bad..name".to_string(),
        ];
        let d = decode(&answer_ptr(&p, &q, &names, 60));
        assert_eq!(
            d.counts,
            [1, 2, 0, 0],
            "the name that cannot be encoded is left out"
        );
        assert_eq!(d.answers[0], (TYPE_PTR, CLASS_IN, 60, labels(&[b"web"])));
        assert_eq!(d.answers[1].3, labels(&[b"web", b"net"]));
    }

    #[test]
    fn empty_answers_carry_the_rcode() {
        let p = query(4, &[b"nope"], TYPE_A);
        let q = parse_query(&p).unwrap();
        for rcode in [0, 2, 3] {
            let d = decode(&answer_empty(&p, &q, rcode));
            assert_eq!(d.counts, [1, 0, 0, 0]);
            assert_eq!(d.flags & RCODE_MASK, u16::from(rcode));
            assert_ne!(d.flags & FLAG_AA, 0);
        }
    }

    #[test]
    fn a_query_from_another_packet_is_answered_from_its_fields() {
        let q = parse_query(&query(5, &[b"Web"], TYPE_A)).unwrap();
        let d = decode(&answer_a(&[0; 4], &q, &[Ipv4Addr::LOCALHOST], 1));
        assert_eq!(d.counts, [1, 1, 0, 0]);
        assert_eq!(d.question, query(5, &[b"web"], TYPE_A)[12..]);
    }

    fn rejects(p: &[u8]) -> DnsError {
        parse_query(p).unwrap_err()
    }

    #[test]
    fn short_packets_are_refused() {
        assert_eq!(rejects(&[]), DnsError::TooShort(0));
        assert_eq!(rejects(&[0; 11]), DnsError::TooShort(11));
    }

    #[test]
    fn responses_and_other_opcodes_are_refused() {
        let mut p = query(1, &[b"web"], TYPE_A);
        p[2] |= 0x80;
        assert_eq!(rejects(&p), DnsError::NotAQuery);
        let mut p = query(1, &[b"web"], TYPE_A);
        p[2] |= 5 << 3; // UPDATE
        assert_eq!(rejects(&p), DnsError::Opcode(5));
        assert_eq!(DnsError::Opcode(5).rcode(), RCODE_NOTIMP);
        assert_eq!(DnsError::NotAQuery.rcode(), RCODE_FORMERR);
    }

    #[test]
    fn anything_but_one_question_is_refused() {
        let mut p = query(1, &[b"web"], TYPE_A);
        p[5] = 0;
        assert_eq!(rejects(&p), DnsError::QuestionCount(0));
        p[5] = 2;
        p.extend_from_slice(&p.clone()[12..]);
        assert_eq!(rejects(&p), DnsError::QuestionCount(2));
        let mut p = query(1, &[b"web"], TYPE_A);
        p[7] = 1;
        assert!(matches!(
            rejects(&p),
            DnsError::UnexpectedRecords { answers: 1, .. }
        ));
    }

    #[test]
    fn a_pointer_in_the_question_is_refused() {
        let mut p = hdr(1, 0, [1, 0, 0, 0]);
        p.extend_from_slice(&[3, b'w', b'e', b'b', 0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(rejects(&p), DnsError::CompressedName(16));
        // A pointer to itself: refused, not followed.
        let mut p = hdr(1, 0, [1, 0, 0, 0]);
        p.extend_from_slice(&[0xC0, 12, 0, 1, 0, 1]);
        assert_eq!(rejects(&p), DnsError::CompressedName(12));
    }

    #[test]
    fn long_labels_and_names_are_refused() {
        let mut p = hdr(1, 0, [1, 0, 0, 0]);
        p.push(64);
        p.extend_from_slice(&[b'a'; 64]);
        p.extend_from_slice(&[0, 0, 1, 0, 1]);
        assert_eq!(rejects(&p), DnsError::LabelTooLong { at: 12, len: 64 });

        let l63 = [b'a'; 63];
        // 4 labels of 63: 256 bytes with their lengths and the final zero.
        let p = query(1, &[&l63, &l63, &l63, &l63], TYPE_A);
        assert_eq!(rejects(&p), DnsError::NameTooLong);
        // 3 of 63 and one of 61: 255 bytes, the most there can be.
        let q = parse_query(&query(1, &[&l63, &l63, &l63, &[b'a'; 61]], TYPE_A)).unwrap();
        assert_eq!(q.name.len(), 253);
    }

    #[test]
    fn truncated_questions_are_refused() {
        let p = query(1, &[b"web", b"net"], TYPE_A);
        for cut in 12..p.len() {
            assert!(
                matches!(rejects(&p[..cut]), DnsError::Truncated(_)),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn non_ascii_and_dots_in_labels_are_refused() {
        let p = query(1, &[b"w\xC3\xA9b"], TYPE_A);
        assert_eq!(rejects(&p), DnsError::NonAscii { at: 14, byte: 0xC3 });
        let p = query(1, &[b"a.b"], TYPE_A);
        assert_eq!(rejects(&p), DnsError::DotInLabel(14));
    }

    #[test]
    fn error_replies_answer_queries_only() {
        let mut p = query(0x1234, &[b"web"], TYPE_A);
        p[2] |= 5 << 3;
        let r = error_reply(&p, RCODE_NOTIMP).unwrap();
        let d = decode(&r);
        assert_eq!(d.id, 0x1234);
        assert_eq!(d.flags, FLAG_QR | (5 << 11) | FLAG_RD | FLAG_RA | 4);
        assert_eq!(d.counts, [0; 4]);
        assert!(is_response(&r));
        assert_eq!(response_id(&r), Some(0x1234));

        assert_eq!(error_reply(&[0; 11], RCODE_FORMERR), None);
        assert_eq!(
            error_reply(&[0; 12], RCODE_FORMERR).map(|r| r[3]),
            Some(0x81)
        );
        // A response, or a reply of ours sent back to us: never answered.
        assert_eq!(error_reply(&r, RCODE_FORMERR), None);
        let mut resp = query(1, &[b"web"], TYPE_A);
        resp[2] |= 0x80;
        assert_eq!(error_reply(&resp, RCODE_FORMERR), None);
    }

    #[test]
    fn response_ids_are_those_of_responses() {
        let p = query(0x4242, &[b"web"], TYPE_A);
        assert!(!is_response(&p));
        assert_eq!(response_id(&p), None);
        let q = parse_query(&p).unwrap();
        let r = answer_empty(&p, &q, 0);
        assert_eq!(response_id(&r), Some(0x4242));
        assert!(!is_response(&r[..11]));
        assert_eq!(response_id(&r[..11]), None);
    }

    /// Hostile input: every byte of a query (with an OPT record) set to the values that
    /// mean something in a name, and every truncation; nothing panics, and what parses is
    /// answered.
    #[test]
    fn mangled_packets_never_panic() {
        let mut p = query(1, &[b"web", b"net"], TYPE_A);
        p[11] = 1;
        p.extend(opt_record());
        let answer = |m: &[u8]| {
            if let Ok(q) = parse_query(m) {
                decode(&answer_a(m, &q, &[Ipv4Addr::LOCALHOST], 1));
                decode(&answer_ptr(m, &q, &["web".to_string()], 1));
                decode(&answer_empty(m, &q, 3));
            }
            let _ = error_reply(m, RCODE_FORMERR);
            let _ = response_id(m);
        };
        for i in 0..p.len() {
            for v in [0x00, 0x01, 0x3F, 0x40, 0x80, 0xBF, 0xC0, 0xFF] {
                let mut m = p.clone();
                m[i] = v;
                answer(&m);
            }
            answer(&p[..i]);
        }
    }

    #[test]
    fn reverse_names() {
        let ok = reverse_v4;
        assert_eq!(
            ok("2.0.17.172.in-addr.arpa"),
            Some(Ipv4Addr::new(172, 17, 0, 2))
        );
        assert_eq!(ok("1.0.0.127.IN-ADDR.ARPA."), Some(Ipv4Addr::LOCALHOST));
        assert_eq!(
            ok("255.255.255.255.in-addr.arpa"),
            Some(Ipv4Addr::BROADCAST)
        );
        for bad in [
            "",
            "in-addr.arpa",
            ".in-addr.arpa",
            "17.172.in-addr.arpa",
            "1.2.0.17.172.in-addr.arpa",
            "256.0.17.172.in-addr.arpa",
            "02.0.17.172.in-addr.arpa",
            "+2.0.17.172.in-addr.arpa",
            "2..17.172.in-addr.arpa",
            "2.0.17.172.ip6.arpa",
            "2.0.17.172in-addr.arpa",
            "2.0.17.172.in-addr.arpa.example",
            "é.0.17.172.in-addr.arpa",
            "2.0.17.172éin-addr.arpa",
        ] {
            assert_eq!(reverse_v4(bad), None, "{bad:?}");
        }
    }
}
