//! A packet a container sends to its embedded DNS server (any bytes): parsed as the server
//! parses it, and answered as it answers. Asserts what the server relies on: no panic; a
//! query that parses is answered with its own id, marked a response, one question (the one
//! asked, byte for byte) and as many answers as given; anything that does not parse gets a
//! header-only reply or none, never a reply to a response.

#![no_main]

use libfuzzer_sys::fuzz_target;
use os::engine::network::dnsmsg;
use std::net::Ipv4Addr;

fuzz_target!(|data: &[u8]| {
    match dnsmsg::parse_query(data) {
        Ok(q) => {
            let ips = [Ipv4Addr::new(172, 18, 0, 2), Ipv4Addr::new(10, 0, 0, 1)];
            let a = dnsmsg::answer_a(data, &q, &ips, 600);
            assert!(dnsmsg::is_response(&a));
            assert_eq!(dnsmsg::response_id(&a), Some(q.id));
            assert_eq!(u16::from_be_bytes([a[4], a[5]]), 1, "one question");
            assert_eq!(u16::from_be_bytes([a[6], a[7]]), 2, "two answers");
            // The answer parses back as a query once its QR bit and counts are cleared.
            let mut back = a.clone();
            back[2] &= 0x7f;
            back[6..12].fill(0);
            let again = dnsmsg::parse_query(&back).expect("our answer's question parses");
            assert_eq!((again.name, again.qtype), (q.name.clone(), q.qtype));
            let names = vec![format!("{}.front", q.name.split('.').next().unwrap_or("x"))];
            let p = dnsmsg::answer_ptr(data, &q, &names, 600);
            assert!(dnsmsg::is_response(&p));
            let e = dnsmsg::answer_empty(data, &q, 3);
            assert_eq!(e[3] & 0x0f, 3);
            let _ = dnsmsg::reverse_v4(&q.name);
        }
        Err(_) => {
            if let Some(r) = dnsmsg::error_reply(data, 1) {
                assert!(!dnsmsg::is_response(data), "a response was answered");
                assert_eq!(r.len(), 12);
                assert!(dnsmsg::is_response(&r));
            }
        }
    }
});
