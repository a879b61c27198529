//! The embedded DNS server of a container on a user-defined network, as dockerd's: UDP
//! `127.0.0.11:53` inside the container's own network namespace (its `resolv.conf` names
//! nothing else). Names of containers on its networks (name, aliases, short id, and
//! `NAME.NETWORK`) are answered by the engine; anything else is forwarded, untouched, to the
//! resolvers the container would otherwise have had, from the engine's side (so a resolver
//! on the host's loopback serves too).
//!
//! Why this shape:
//! - The socket is made by a short-lived thread that enters the container's namespace and
//!   leaves with it: a socket stays in the namespace it was made in, the engine's own threads
//!   never move, and no port is opened anywhere but in that container.
//! - Every packet comes from an untrusted container: queries are parsed strictly
//!   ([`super::dnsmsg`]), responses are never answered (no loops), and forwarding is bounded
//!   (a few queries in flight per container, a deadline on each).

use super::dnsmsg::{self, Query};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Where the server listens, in the container's namespace.
pub const ADDRESS: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 11);

/// Queries forwarded at once per container; more are dropped (the client retries).
const IN_FLIGHT: usize = 32;
/// How long one upstream resolver gets.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Seconds an answer of ours may be kept (dockerd's).
const TTL: u32 = 600;

/// What the engine knows of a name.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// Containers' addresses (for A); for other types, a name that exists without them.
    Addresses(Vec<Ipv4Addr>),
    /// Names for a reverse lookup.
    Names(Vec<String>),
    /// Not ours: ask the upstream resolvers.
    Forward,
}

/// Answers `(name, qtype)` for one container.
pub type Lookup = Arc<dyn Fn(&str, u16) -> Answer + Send + Sync>;

/// Make the server's socket inside the namespace at `netns` (blocking: a thread is spawned,
/// enters the namespace, binds, and ends).
pub fn bind_in(netns: &Path) -> std::io::Result<std::net::UdpSocket> {
    let path = netns.to_path_buf();
    std::thread::Builder::new()
        .name("dns-bind".into())
        .spawn(move || -> std::io::Result<std::net::UdpSocket> {
            let ns = std::fs::File::open(&path)
                .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| std::io::Error::other(format!("entering {}: {e}", path.display())))?;
            let s = std::net::UdpSocket::bind((ADDRESS, 53))
                .map_err(|e| std::io::Error::new(e.kind(), format!("{ADDRESS}:53: {e}")))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })?
        .join()
        .map_err(|_| std::io::Error::other("the DNS socket's thread panicked"))?
}

/// Serve queries on `sock` until the task is aborted.
pub async fn serve(sock: UdpSocket, lookup: Lookup, upstreams: Vec<SocketAddr>) {
    let sock = Arc::new(sock);
    let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
    let upstreams = Arc::new(upstreams);
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, from) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(error = %e, "dns receive");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let packet = buf[..n].to_vec();
        let q = match dnsmsg::parse_query(&packet) {
            Ok(q) => q,
            Err(e) => {
                tracing::debug!(error = %e, "dns: a query we do not take");
                if let Some(reply) = dnsmsg::error_reply(&packet, refusal_code(&packet)) {
                    let _ = sock.send_to(&reply, from).await;
                }
                continue;
            }
        };
        let reply = match answer(&packet, &q, &lookup) {
            Some(r) => r,
            None => {
                let Ok(permit) = slots.clone().try_acquire_owned() else {
                    continue;
                };
                let sock = sock.clone();
                let upstreams = upstreams.clone();
                tokio::spawn(async move {
                    let reply = forward(&packet, q.id, &upstreams)
                        .await
                        .unwrap_or_else(|| dnsmsg::answer_empty(&packet, &q, 2));
                    let _ = sock.send_to(&reply, from).await;
                    drop(permit);
                });
                continue;
            }
        };
        let _ = sock.send_to(&reply, from).await;
    }
}

/// NOTIMP for another opcode, FORMERR for anything else malformed.
fn refusal_code(packet: &[u8]) -> u8 {
    match packet.get(2) {
        Some(b) if (b >> 3) & 0x0f != 0 => 4,
        _ => 1,
    }
}

/// Our own answer, or `None` to forward.
fn answer(packet: &[u8], q: &Query, lookup: &Lookup) -> Option<Vec<u8>> {
    if q.qclass != dnsmsg::CLASS_IN {
        return None;
    }
    match lookup(&q.name, q.qtype) {
        Answer::Addresses(ips) if q.qtype == dnsmsg::TYPE_A => {
            Some(dnsmsg::answer_a(packet, q, &ips, TTL))
        }
        // A name of ours without this type (AAAA, MX…): no data, not "no such name".
        Answer::Addresses(_) => Some(dnsmsg::answer_empty(packet, q, 0)),
        Answer::Names(names) => Some(dnsmsg::answer_ptr(packet, q, &names, TTL)),
        Answer::Forward => None,
    }
}

/// Ask each upstream in turn; the first answer that is a response to this query is passed on.
async fn forward(packet: &[u8], id: u16, upstreams: &[SocketAddr]) -> Option<Vec<u8>> {
    for up in upstreams {
        let Ok(sock) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
            return None;
        };
        if sock.send_to(packet, up).await.is_err() {
            continue;
        }
        let mut buf = vec![0u8; 4096];
        let got = tokio::time::timeout(UPSTREAM_TIMEOUT, async {
            loop {
                let (n, from) = sock.recv_from(&mut buf).await.ok()?;
                let r = &buf[..n];
                if from == *up && dnsmsg::is_response(r) && dnsmsg::response_id(r) == Some(id) {
                    return Some(r.to_vec());
                }
            }
        })
        .await;
        if let Ok(Some(r)) = got {
            return Some(r);
        }
        tracing::debug!(upstream = %up, "dns: no answer");
    }
    None
}

/// The resolvers named by a `resolv.conf` text (IPv4 ones, port 53), in order.
pub fn upstreams(resolv: &str) -> Vec<SocketAddr> {
    resolv
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then_some(())?;
            w.next()?.parse::<Ipv4Addr>().ok()
        })
        .map(|ip| SocketAddr::from((ip, 53)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A query for `name` of type `qtype`, id 0x1234, recursion desired.
    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut p = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        for l in name.split('.') {
            p.push(l.len() as u8);
            p.extend_from_slice(l.as_bytes());
        }
        p.push(0);
        p.extend_from_slice(&qtype.to_be_bytes());
        p.extend_from_slice(&1u16.to_be_bytes());
        p
    }

    #[test]
    fn the_resolvers_are_read_from_resolv_conf() {
        let r = "search lan\nnameserver 10.0.2.3\nnameserver ::1\nnameserver 127.0.0.53\n#nameserver 1.1.1.1\n";
        assert_eq!(
            upstreams(r),
            [
                "10.0.2.3:53".parse::<SocketAddr>().unwrap(),
                "127.0.0.53:53".parse().unwrap()
            ]
        );
    }

    /// A server in a namespace of its own: our names answered, AAAA of ours empty, others
    /// forwarded to an upstream (a fake one on loopback) and passed back, junk answered with
    /// FORMERR, responses never answered.
    #[test]
    fn names_are_answered_and_the_rest_forwarded() {
        crate::engine::network::in_new_netns(|| {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                // Loopback up in this namespace (new namespaces have it down).
                let mut rtnl = super::super::rtnl::Rtnl::open().unwrap();
                rtnl.set_link("lo", true, None, None).unwrap();
                let sock = UdpSocket::bind((ADDRESS, 53)).await.unwrap();
                let upstream = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                let up_addr = upstream.local_addr().unwrap();
                let lookup: Lookup = Arc::new(|name, _| match name {
                    "web" => Answer::Addresses(vec![Ipv4Addr::new(172, 18, 0, 2)]),
                    _ => Answer::Forward,
                });
                tokio::spawn(serve(sock, lookup, vec![up_addr]));
                // The fake upstream answers whatever it is asked with a header-only response.
                tokio::spawn(async move {
                    let mut buf = [0u8; 512];
                    while let Ok((n, from)) = upstream.recv_from(&mut buf).await {
                        let mut r = buf[..n].to_vec();
                        r[2] |= 0x80;
                        r[3] = 0x83; // RA, NXDOMAIN
                        let _ = upstream.send_to(&r, from).await;
                    }
                });
                let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
                client.connect((ADDRESS, 53)).await.unwrap();
                let ask = |p: Vec<u8>| {
                    let client = &client;
                    async move {
                        client.send(&p).await.unwrap();
                        let mut buf = [0u8; 512];
                        let n = tokio::time::timeout(Duration::from_secs(5), client.recv(&mut buf))
                            .await
                            .expect("an answer")
                            .unwrap();
                        buf[..n].to_vec()
                    }
                };
                let a = ask(query("web", dnsmsg::TYPE_A)).await;
                assert_eq!(&a[..2], &[0x12, 0x34]);
                assert_eq!(a[3] & 0x0f, 0, "NOERROR");
                assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1, "one answer");
                assert_eq!(&a[a.len() - 4..], &[172, 18, 0, 2]);
                let aaaa = ask(query("web", dnsmsg::TYPE_AAAA)).await;
                assert_eq!(aaaa[3] & 0x0f, 0);
                assert_eq!(u16::from_be_bytes([aaaa[6], aaaa[7]]), 0);
                let other = ask(query("example.org", dnsmsg::TYPE_A)).await;
                assert_eq!(other[3] & 0x0f, 3, "the upstream's NXDOMAIN passed on");
                let junk = ask(vec![0xab, 0xcd, 0x01, 0x00, 0, 2, 0, 0, 0, 0, 0, 0]).await;
                assert_eq!((junk[0], junk[1], junk[3] & 0x0f), (0xab, 0xcd, 1));
                // A response sent to the server gets nothing back; the server still serves.
                let mut resp = query("web", dnsmsg::TYPE_A);
                resp[2] |= 0x80;
                client.send(&resp).await.unwrap();
                let a = ask(query("web", dnsmsg::TYPE_A)).await;
                assert_eq!(u16::from_be_bytes([a[6], a[7]]), 1);
            });
        });
    }
}
