//! The client's life (RFC 2131 §4.4): discover, take an offer, hold the lease; at T1 renew it
//! from the server that gave it, at T2 from any server, and at its end give the address up and
//! start again. A NAK also starts again.
//!
//! The sockets, the clock and what a lease does to the machine are behind [`Wire`], so the
//! whole life (retries, renewals, a lease that runs out) is tested in milliseconds with a
//! scripted server and a clock that jumps.

use super::message::{Kind, Reply, Request};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dest {
    /// To every server on the link (no address yet, or rebinding).
    Broadcast,
    /// To the server that gave the lease (renewing).
    Server(Ipv4Addr),
}

/// The world of one client: its link's sockets, its clock, the machine's configuration.
pub trait Wire {
    fn now(&self) -> Instant;
    fn xid(&mut self) -> u32;
    /// Up to half a second, to spread the retries of many machines booted together.
    fn jitter(&mut self) -> Duration;
    fn send(&mut self, req: &Request, to: Dest) -> std::io::Result<()>;
    /// The next answer that parses, or `None` once `until` has come.
    fn recv(&mut self, until: Instant) -> std::io::Result<Option<Reply>>;
    /// Configure the link with a lease (a new one, or a renewal that may change it).
    fn bound(&mut self, lease: &Lease) -> std::io::Result<()>;
    /// The lease ended without renewal: take its address away.
    fn lost(&mut self, lease: &Lease);
    /// Say something (the service's log).
    fn say(&mut self, what: &str);
}

/// What the client is and sends.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mac: [u8; 6],
    pub hostname: Option<String>,
}

/// A lease held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub ip: Ipv4Addr,
    pub prefix: u8,
    pub server: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub mtu: Option<u16>,
    /// When the request that got it was sent (its times count from there).
    pub since: Instant,
    /// `None`: infinite.
    pub length: Option<Duration>,
    pub renew: Duration,
    pub rebind: Duration,
}

/// Seconds of a lease that gives none (RFC 2131 says it must; udhcpc assumes an hour too).
const DEFAULT_LEASE: u32 = 3600;
/// A floor, so a server's lease of 0 or 1 s cannot make a busy loop.
const MIN_LEASE: u32 = 10;
/// The earliest a server's T1 may ask for a renewal: a T1 of 0 would renew at network speed.
const MIN_RENEW: Duration = Duration::from_secs(5);
/// The shortest wait between two renewal requests (RFC 2131 §4.4.5).
const MIN_RETRY: Duration = Duration::from_secs(60);
/// DISCOVER retries: 2, 4, … 64 s.
const FIRST_WAIT: Duration = Duration::from_secs(2);
const LAST_WAIT: Duration = Duration::from_secs(64);
/// REQUESTs sent for one offer before discovering again.
const REQUEST_TRIES: u32 = 4;

impl Lease {
    pub fn from_ack(ack: &Reply, server: Ipv4Addr, since: Instant) -> Result<Lease, String> {
        let ip = ack.yiaddr;
        if ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast() || ip.is_loopback() {
            return Err(format!(
                "the address given, {ip}, is not one a host can have"
            ));
        }
        let prefix = ack.prefix.unwrap_or_else(|| classful(ip));
        if prefix == 0 {
            return Err(format!("{ip}/0 is not a subnet"));
        }
        let secs = ack.lease.unwrap_or(DEFAULT_LEASE);
        let length = (secs != u32::MAX).then(|| Duration::from_secs(secs.max(MIN_LEASE) as u64));
        let (renew, rebind) = match length {
            None => (Duration::MAX, Duration::MAX),
            Some(l) => {
                let t1 = ack.renew.map(|s| Duration::from_secs(s as u64));
                let t2 = ack.rebind.map(|s| Duration::from_secs(s as u64));
                // The server's MIN_RENEW ≤ T1 < T2 < lease, or the RFC's 1/2 and 7/8.
                match (t1, t2) {
                    (Some(a), Some(b)) if MIN_RENEW <= a && a < b && b < l => (a, b),
                    _ => (l / 2, l * 7 / 8),
                }
            }
        };
        let useful = |a: &Ipv4Addr| !a.is_unspecified() && !a.is_broadcast() && !a.is_multicast();
        // A router the kernel would refuse (loopback, the address itself) is left out.
        let router = |a: &Ipv4Addr| useful(a) && !a.is_loopback() && *a != ip;
        Ok(Lease {
            ip,
            prefix,
            server,
            routers: ack.routers.iter().copied().filter(router).collect(),
            dns: ack.dns.iter().copied().filter(useful).collect(),
            domain: ack.domain.clone(),
            mtu: ack.mtu.filter(|m| *m >= 576),
            since,
            length,
            renew,
            rebind,
        })
    }

    fn at(&self, d: Duration) -> Option<Instant> {
        self.since.checked_add(d)
    }

    /// One line for the log: what the lease configures.
    pub fn describe(&self) -> String {
        let list = |v: &[Ipv4Addr]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        let length = match self.length {
            Some(l) => format!("{} s", l.as_secs()),
            None => "infinite".into(),
        };
        format!(
            "{}/{} router {} dns {} (lease {length} from {})",
            self.ip,
            self.prefix,
            list(&self.routers),
            list(&self.dns),
            self.server
        )
    }
}

/// The prefix of a class A, B or C address: what a server that sends no mask means.
fn classful(ip: Ipv4Addr) -> u8 {
    match ip.octets()[0] {
        0..=127 => 8,
        128..=191 => 16,
        _ => 24,
    }
}

/// The wait before DISCOVER number `n` (from 0) is retried.
fn backoff(n: u32) -> Duration {
    FIRST_WAIT.saturating_mul(1u32 << n.min(6)).min(LAST_WAIT)
}

/// Run the client for good: it returns only when its wire fails (the caller exits, and the
/// service's restart policy starts it again).
pub fn run<W: Wire>(w: &mut W, s: &Settings) -> std::io::Error {
    loop {
        let lease = match acquire(w, s) {
            Ok(l) => l,
            Err(e) => return e,
        };
        if let Err(e) = w.bound(&lease) {
            return e;
        }
        if let Err(e) = keep(w, s, lease) {
            return e;
        }
    }
}

fn request(s: &Settings, kind: Kind, xid: u32, secs: Duration) -> Request {
    Request {
        kind,
        xid,
        mac: s.mac,
        secs: secs.as_secs().min(u16::MAX as u64) as u16,
        ciaddr: Ipv4Addr::UNSPECIFIED,
        requested: None,
        server: None,
        hostname: s.hostname.clone(),
    }
}

/// Send, or say why not: a failed send (the link down, no buffer, no route to the server) is
/// a lost packet, which the retries are there for.
fn send<W: Wire>(w: &mut W, req: &Request, to: Dest) {
    if let Err(e) = w.send(req, to) {
        w.say(&format!("sending a {:?} ({to:?}): {e}", req.kind));
    }
}

/// The first answer to exchange `xid` for this client that `want` accepts, or `None` at
/// `until`. Answers for others (another xid or hardware address) are skipped.
fn answer<W: Wire>(
    w: &mut W,
    s: &Settings,
    xid: u32,
    until: Instant,
    want: impl Fn(&Reply) -> bool,
) -> std::io::Result<Option<Reply>> {
    loop {
        match w.recv(until)? {
            None => return Ok(None),
            Some(r) if r.xid == xid && r.chaddr == s.mac && want(&r) => return Ok(Some(r)),
            Some(_) => {}
        }
    }
}

/// From no address to a lease.
fn acquire<W: Wire>(w: &mut W, s: &Settings) -> std::io::Result<Lease> {
    let mut round = 0u32;
    loop {
        let xid = w.xid();
        let began = w.now();
        // DISCOVER until an offer comes.
        let offer = loop {
            let secs = w.now() - began;
            send(w, &request(s, Kind::Discover, xid, secs), Dest::Broadcast);
            let until = w.now() + backoff(round) + w.jitter();
            round = round.saturating_add(1);
            let offer = answer(w, s, xid, until, |r| {
                r.kind == Kind::Offer && !r.yiaddr.is_unspecified() && r.server.is_some()
            })?;
            if let Some(o) = offer {
                break o;
            }
        };
        let server = offer.server.unwrap_or(Ipv4Addr::UNSPECIFIED);
        w.say(&format!("offer of {} from {server}", offer.yiaddr));
        // Take it: REQUEST it, broadcast, so the other servers know theirs was not taken.
        for n in 0..REQUEST_TRIES {
            let sent = w.now();
            let mut req = request(s, Kind::Request, xid, sent - began);
            req.requested = Some(offer.yiaddr);
            req.server = Some(server);
            send(w, &req, Dest::Broadcast);
            let until = w.now() + backoff(n) + w.jitter();
            let got = answer(w, s, xid, until, |r| {
                matches!(r.kind, Kind::Ack | Kind::Nak) && r.server.is_none_or(|a| a == server)
            })?;
            match got {
                Some(r) if r.kind == Kind::Ack => match Lease::from_ack(&r, server, sent) {
                    Ok(lease) => return Ok(lease),
                    Err(why) => {
                        w.say(&format!("the ACK from {server} is refused: {why}"));
                        break;
                    }
                },
                Some(nak) => {
                    let why = nak.message.unwrap_or_default();
                    w.say(&format!("NAK from {server} {why}"));
                    break;
                }
                None => {}
            }
        }
        // A NAK, a refused ACK or no answer: start again, not at once (a server that NAKs
        // everything must not make a busy loop).
        let until = w.now() + Duration::from_secs(1) + w.jitter();
        idle(w, until)?;
    }
}

/// Let the time pass (answers that come meanwhile are not for us: dropped).
fn idle<W: Wire>(w: &mut W, until: Instant) -> std::io::Result<()> {
    while w.recv(until)?.is_some() {}
    Ok(())
}

/// Hold a lease: renew it at T1, rebind at T2; `Ok` when it ended (NAK or expiry) and its
/// address has been taken away.
fn keep<W: Wire>(w: &mut W, s: &Settings, mut lease: Lease) -> std::io::Result<()> {
    loop {
        let Some(t1) = lease.at(lease.renew) else {
            // Infinite: nothing to renew, ever.
            loop {
                let until = w.now() + Duration::from_secs(86400);
                idle(w, until)?;
            }
        };
        idle(w, t1)?;
        let t2 = lease.at(lease.rebind).unwrap_or(t1);
        let end = lease.length.and_then(|l| lease.at(l)).unwrap_or(t2);
        let xid = w.xid();
        let began = w.now();
        let renewed = loop {
            let now = w.now();
            let (to, phase_end) = if now < t2 {
                (Dest::Server(lease.server), t2)
            } else if now < end {
                (Dest::Broadcast, end)
            } else {
                break None;
            };
            let mut req = request(s, Kind::Request, xid, now - began);
            req.ciaddr = lease.ip;
            send(w, &req, to);
            let wait = ((phase_end - now) / 2).max(MIN_RETRY).min(phase_end - now);
            let got = answer(w, s, xid, now + wait, |r| {
                matches!(r.kind, Kind::Ack | Kind::Nak)
            })?;
            match got {
                Some(r) if r.kind == Kind::Ack => {
                    let server = r.server.unwrap_or(lease.server);
                    match Lease::from_ack(&r, server, now) {
                        Ok(l) => break Some(l),
                        Err(why) => {
                            // As if unanswered: the next request waits its turn.
                            w.say(&format!("the ACK from {server} is refused: {why}"));
                            idle(w, now + wait)?;
                        }
                    }
                }
                Some(nak) => {
                    let why = nak.message.unwrap_or_default();
                    w.say(&format!("NAK while renewing {} {why}", lease.ip));
                    break None;
                }
                None => {}
            }
        };
        match renewed {
            Some(l) => {
                w.bound(&l)?;
                lease = l;
            }
            None => {
                w.say(&format!("lease of {} ended", lease.ip));
                w.lost(&lease);
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netconf::dhcp::message::tests::{reply, MAC};
    use std::collections::VecDeque;

    /// The scripted server: the answers to a request (sent to a destination, the n-th).
    type Serve = Box<dyn FnMut(&Request, Dest, usize) -> Vec<Vec<u8>>>;

    /// A scripted server: each request sent is answered by `serve`, its answers delivered
    /// `delay` later; the clock jumps to the deadline of a wait that gets nothing.
    struct Fake {
        now: Instant,
        xid: u32,
        queue: VecDeque<(Instant, Reply)>,
        sent: Vec<(Instant, Request, Dest)>,
        serve: Serve,
        log: Vec<String>,
        bound: Vec<Lease>,
        lost: Vec<Lease>,
        /// The test ends (the wire fails) at this time.
        stop: Instant,
    }

    impl Fake {
        fn new(serve: impl FnMut(&Request, Dest, usize) -> Vec<Vec<u8>> + 'static) -> Fake {
            let now = Instant::now();
            Fake {
                now,
                xid: 100,
                queue: VecDeque::new(),
                sent: Vec::new(),
                serve: Box::new(serve),
                log: Vec::new(),
                bound: Vec::new(),
                lost: Vec::new(),
                stop: now + Duration::from_secs(86400 * 3),
            }
        }
        fn at(&self, t: Instant) -> u64 {
            (t - self.sent[0].0).as_secs()
        }
    }

    impl Wire for Fake {
        fn now(&self) -> Instant {
            self.now
        }
        fn xid(&mut self) -> u32 {
            self.xid += 1;
            self.xid
        }
        fn jitter(&mut self) -> Duration {
            Duration::ZERO
        }
        fn send(&mut self, req: &Request, to: Dest) -> std::io::Result<()> {
            let n = self.sent.len();
            self.sent.push((self.now, req.clone(), to));
            for b in (self.serve)(req, to, n) {
                let r = Reply::parse(&b).expect("the script's answers parse");
                self.queue
                    .push_back((self.now + Duration::from_millis(5), r));
            }
            Ok(())
        }
        fn recv(&mut self, until: Instant) -> std::io::Result<Option<Reply>> {
            if until >= self.stop {
                return Err(std::io::Error::other("end of the test"));
            }
            match self.queue.front() {
                Some((t, _)) if *t <= until => {
                    let (t, r) = self.queue.pop_front().unwrap();
                    self.now = self.now.max(t);
                    Ok(Some(r))
                }
                _ => {
                    self.now = until;
                    Ok(None)
                }
            }
        }
        fn bound(&mut self, lease: &Lease) -> std::io::Result<()> {
            self.bound.push(lease.clone());
            Ok(())
        }
        fn lost(&mut self, lease: &Lease) {
            self.lost.push(lease.clone());
        }
        fn say(&mut self, what: &str) {
            self.log.push(what.to_string());
        }
    }

    const SERVER: [u8; 4] = [10, 0, 2, 2];
    const ME: [u8; 4] = [10, 0, 2, 15];

    fn settings() -> Settings {
        Settings {
            mac: MAC,
            hostname: Some("rancher".into()),
        }
    }

    fn offer(xid: u32) -> Vec<u8> {
        reply(2, xid, ME, &[(54, &SERVER), (1, &[255, 255, 255, 0])])
    }

    fn ack(xid: u32, lease: u32) -> Vec<u8> {
        reply(
            5,
            xid,
            ME,
            &[
                (54, &SERVER),
                (1, &[255, 255, 255, 0]),
                (3, &SERVER),
                (6, &[10, 0, 2, 3]),
                (51, &lease.to_be_bytes()),
            ],
        )
    }

    #[test]
    fn a_lease_at_once_from_a_server_that_answers() {
        let mut w = Fake::new(|req, _, _| match req.kind {
            Kind::Discover => vec![offer(req.xid)],
            Kind::Request => vec![ack(req.xid, u32::MAX)],
            _ => vec![],
        });
        let _ = run(&mut w, &settings());
        assert_eq!(w.sent.len(), 2);
        let (_, req, to) = &w.sent[1];
        assert_eq!(*to, Dest::Broadcast);
        assert_eq!(req.requested, Some(Ipv4Addr::from(ME)));
        assert_eq!(req.server, Some(Ipv4Addr::from(SERVER)));
        assert_eq!(req.xid, w.sent[0].1.xid, "one exchange, one xid");
        let l = &w.bound[0];
        assert_eq!(
            l.describe(),
            "10.0.2.15/24 router 10.0.2.2 dns 10.0.2.3 (lease infinite from 10.0.2.2)"
        );
        assert!(w.lost.is_empty());
    }

    #[test]
    fn discovers_are_retried_with_a_growing_wait_and_strangers_are_ignored() {
        let mut w = Fake::new(|req, _, n| match (req.kind, n) {
            // Answers for another client (other xid; other hardware address) first.
            (Kind::Discover, 0..=2) => vec![offer(req.xid + 1), {
                let mut b = offer(req.xid);
                b[33] ^= 1;
                b
            }],
            (Kind::Discover, _) => vec![offer(req.xid)],
            (Kind::Request, _) => vec![ack(req.xid, u32::MAX)],
            _ => vec![],
        });
        let _ = run(&mut w, &settings());
        let times: Vec<u64> = w.sent.iter().map(|(t, _, _)| w.at(*t)).collect();
        assert_eq!(times, [0, 2, 6, 14, 14]);
        assert_eq!(w.sent[3].1.secs, 14);
        assert_eq!(w.bound.len(), 1);
    }

    #[test]
    fn renewed_from_its_server_at_t1_then_rebound_at_t2_then_lost() {
        // A 1000 s lease; the server answers the first renewal, then goes silent.
        let mut w = Fake::new(|req, to, n| match (req.kind, to) {
            (Kind::Discover, _) if n == 0 => vec![offer(req.xid)],
            (Kind::Request, _) if n <= 2 => vec![ack(req.xid, 1000)],
            _ => vec![],
        });
        w.stop = w.now + Duration::from_secs(5000);
        let _ = run(&mut w, &settings());
        let sent: Vec<(u64, Dest, Ipv4Addr)> = w
            .sent
            .iter()
            .map(|(t, r, d)| (w.at(*t), *d, r.ciaddr))
            .collect();
        let me = Ipv4Addr::from(ME);
        let server = Dest::Server(Ipv4Addr::from(SERVER));
        assert_eq!(
            &sent[..10],
            &[
                (0, Dest::Broadcast, Ipv4Addr::UNSPECIFIED),
                (0, Dest::Broadcast, Ipv4Addr::UNSPECIFIED),
                // T1 of the first lease: renewed at once.
                (500, server, me),
                // T1 of the renewal (counted from its request), then half the time left to
                // T2 (1375), at least 60 s apart.
                (1000, server, me),
                (1187, server, me),
                (1281, server, me),
                (1341, server, me),
                // T2: rebinding, broadcast, until the lease ends at 1500.
                (1375, Dest::Broadcast, me),
                (1437, Dest::Broadcast, me),
                (1497, Dest::Broadcast, me),
            ]
        );
        assert_eq!(w.bound.len(), 2, "bound, then renewed");
        assert_eq!(w.lost.len(), 1, "{:?}", w.log);
        assert!(w.log.iter().any(|l| l == "lease of 10.0.2.15 ended"));
        // And it starts again from nothing.
        assert_eq!(w.sent[10].1.kind, Kind::Discover);
        assert_eq!(sent[10].2, Ipv4Addr::UNSPECIFIED);
    }

    #[test]
    fn a_bad_ack_while_renewing_is_no_answer_not_a_flood() {
        // Renewals are answered with an ACK of no address: refused, each in its turn.
        let mut w = Fake::new(|req, _, n| match (req.kind, n) {
            (Kind::Discover, 0) => vec![offer(req.xid)],
            (Kind::Request, 1) => vec![ack(req.xid, 1000)],
            (Kind::Request, _) => vec![reply(5, req.xid, [0; 4], &[(54, &SERVER)])],
            _ => vec![],
        });
        w.stop = w.now + Duration::from_secs(1400);
        let _ = run(&mut w, &settings());
        let times: Vec<u64> = w.sent.iter().map(|(t, _, _)| w.at(*t)).collect();
        // Renewing at T1 (500), then each request after half the time left to T2, at least
        // 60 s apart; rebinding from T2 (875); the lease ends at 1000 and it starts again.
        assert_eq!(
            &times[..10],
            [0, 0, 500, 687, 781, 841, 875, 937, 997, 1000],
            "{:?}",
            w.log
        );
        assert_eq!(w.sent[9].1.kind, Kind::Discover);
        assert_eq!(w.lost.len(), 1);
    }

    #[test]
    fn a_nak_or_a_bad_ack_starts_again_after_a_pause() {
        let mut w = Fake::new(|req, _, n| match (req.kind, n) {
            (Kind::Discover, _) => vec![offer(req.xid)],
            (Kind::Request, 1) => vec![reply(6, req.xid, [0; 4], &[(54, &SERVER), (56, b"no\n")])],
            // An ACK of a broadcast address.
            (Kind::Request, 3) => vec![reply(5, req.xid, [255; 4], &[(54, &SERVER)])],
            (Kind::Request, _) => vec![ack(req.xid, u32::MAX)],
            _ => vec![],
        });
        let _ = run(&mut w, &settings());
        let times: Vec<(u64, Kind)> = w.sent.iter().map(|(t, r, _)| (w.at(*t), r.kind)).collect();
        assert_eq!(
            times,
            [
                (0, Kind::Discover),
                (0, Kind::Request),
                (1, Kind::Discover),
                (1, Kind::Request),
                (2, Kind::Discover),
                (2, Kind::Request),
            ]
        );
        assert!(
            w.log.iter().any(|l| l == "NAK from 10.0.2.2 no"),
            "{:?}",
            w.log
        );
        assert!(
            w.log.iter().any(|l| l.contains("255.255.255.255")),
            "{:?}",
            w.log
        );
        assert_eq!(w.bound.len(), 1);
    }

    #[test]
    fn lease_times_from_the_server_or_the_rfc() {
        let t = Instant::now();
        let mut r = Reply::parse(&ack(1, 1000)).unwrap();
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!((l.renew.as_secs(), l.rebind.as_secs()), (500, 875));
        r.renew = Some(100);
        r.rebind = Some(200);
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!((l.renew.as_secs(), l.rebind.as_secs()), (100, 200));
        // T1 = T2 = 0, or a T1 of a second: renewals at network speed; the RFC's instead.
        for (t1, t2) in [(0, 0), (1, 200), (200, 200)] {
            r.renew = Some(t1);
            r.rebind = Some(t2);
            let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
            assert_eq!(
                (l.renew.as_secs(), l.rebind.as_secs()),
                (500, 875),
                "{t1} {t2}"
            );
        }
        r.renew = Some(100);
        // T2 past the lease: the RFC's.
        r.rebind = Some(5000);
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!(l.rebind.as_secs(), 875);
        r.lease = Some(0);
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!(l.length, Some(Duration::from_secs(MIN_LEASE as u64)));
        r.lease = None;
        r.prefix = None;
        r.mtu = Some(100);
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!(l.length, Some(Duration::from_secs(3600)));
        assert_eq!(l.prefix, 8, "10/8 when no mask is given");
        r.routers = vec![
            Ipv4Addr::new(127, 0, 0, 1),
            Ipv4Addr::from(ME),
            Ipv4Addr::from(SERVER),
        ];
        let l = Lease::from_ack(&r, Ipv4Addr::from(SERVER), t).unwrap();
        assert_eq!(
            l.routers,
            [Ipv4Addr::from(SERVER)],
            "loopback and itself left out"
        );
        assert_eq!(l.mtu, None, "an MTU below 576 is not taken");
    }
}
