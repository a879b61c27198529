//! `ros ntpd`: the `ntp` system service's time client.
//!
//! Debian's busybox-static has no `ntpd` applet, so the client is ours: SNTP (RFC 4330) through
//! the `rsntp` crate, in the os binary that the `ntp` container gets bind-mounted. It asks the
//! servers in turn; the first answer sets the clock (a step when the offset is large, a slew
//! with `adjtime` otherwise), and the next poll comes later, up to [`MAX_POLL`].
//!
//! When no server answers (no network yet, no DNS, a machine cut off from the internet, as
//! every test VM is), it says so in one line per round and tries again with a growing delay,
//! [`FIRST_RETRY`] doubling to [`MAX_RETRY`]. It never exits for that: an unreachable server is
//! a normal state of the world, not a crash for the supervisor to restart.
//!
//! The clock and the servers are seams ([`Clock`], [`Source`]) so the loop is tested without
//! touching the host's clock or the network.

use std::time::Duration;

/// Offsets above this are stepped; smaller ones are slewed.
pub const STEP_THRESHOLD: Duration = Duration::from_millis(128);
/// Poll interval after a successful synchronisation, doubling up to [`MAX_POLL`].
pub const MIN_POLL: Duration = Duration::from_secs(64);
pub const MAX_POLL: Duration = Duration::from_secs(1024);
/// Delay before the first retry when no server answered, doubling up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(5);
pub const MAX_RETRY: Duration = Duration::from_secs(300);

/// How long one server gets to answer.
const TIMEOUT: Duration = Duration::from_secs(3);
const NTP_PORT: u16 = 123;

/// Where time comes from.
pub trait Source {
    /// The clock offset (server − local) in seconds, from `server` (`host` or `host:port`).
    fn offset(&mut self, server: &str) -> Result<f64, String>;
}

/// The clock being disciplined.
pub trait Clock {
    /// Jump by `offset` seconds.
    fn step(&mut self, offset: f64) -> Result<(), String>;
    /// Adjust gradually by `offset` seconds.
    fn slew(&mut self, offset: f64) -> Result<(), String>;
}

/// What one round did.
#[derive(Debug, Clone, PartialEq)]
pub enum Round {
    Stepped {
        server: String,
        offset: f64,
    },
    Slewed {
        server: String,
        offset: f64,
    },
    /// Every server failed: (server, why) for each.
    NoAnswer(Vec<(String, String)>),
    /// A server answered but the clock could not be set.
    ClockError {
        server: String,
        error: String,
    },
}

impl std::fmt::Display for Round {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Round::Stepped { server, offset } => {
                write!(
                    f,
                    "synchronised with {server}: offset {offset:+.3} s, clock stepped"
                )
            }
            Round::Slewed { server, offset } => {
                write!(
                    f,
                    "synchronised with {server}: offset {offset:+.3} s, clock slewed"
                )
            }
            Round::NoAnswer(fails) => {
                let list: Vec<String> = fails.iter().map(|(s, e)| format!("{s}: {e}")).collect();
                write!(f, "no NTP server answered ({})", list.join("; "))
            }
            Round::ClockError { server, error } => {
                write!(f, "{server} answered but the clock was not set: {error}")
            }
        }
    }
}

/// One round: ask the servers in turn, set the clock from the first answer.
pub fn round(servers: &[String], source: &mut dyn Source, clock: &mut dyn Clock) -> Round {
    let mut fails = Vec::new();
    for server in servers {
        match source.offset(server) {
            Ok(offset) => {
                let stepped = offset.abs() > STEP_THRESHOLD.as_secs_f64();
                let set = if stepped {
                    clock.step(offset)
                } else {
                    clock.slew(offset)
                };
                let server = server.clone();
                return match (set, stepped) {
                    (Err(error), _) => Round::ClockError { server, error },
                    (Ok(()), true) => Round::Stepped { server, offset },
                    (Ok(()), false) => Round::Slewed { server, offset },
                };
            }
            Err(e) => fails.push((server.clone(), e)),
        }
    }
    Round::NoAnswer(fails)
}

/// The schedule: after a round, how long to wait. `streak` counts rounds of the same kind.
pub fn next_delay(round: &Round, streak: u32) -> Duration {
    let (base, max) = match round {
        Round::Stepped { .. } | Round::Slewed { .. } => (MIN_POLL, MAX_POLL),
        Round::NoAnswer(_) | Round::ClockError { .. } => (FIRST_RETRY, MAX_RETRY),
    };
    base.saturating_mul(1u32 << streak.min(16)).min(max)
}

/// The real source: SNTP through `rsntp`.
pub struct Sntp(rsntp::SntpClient);

impl Default for Sntp {
    fn default() -> Self {
        let mut c = rsntp::SntpClient::new();
        c.set_timeout(TIMEOUT);
        Sntp(c)
    }
}

/// `host`, `host:port`, `[v6]:port`.
fn split_port(server: &str) -> (&str, u16) {
    if let Some(rest) = server.strip_prefix('[') {
        if let Some((host, port)) = rest.split_once("]:") {
            if let Ok(p) = port.parse() {
                return (host, p);
            }
        }
        return (rest.trim_end_matches(']'), NTP_PORT);
    }
    match server.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => match port.parse() {
            Ok(p) => (host, p),
            Err(_) => (server, NTP_PORT),
        },
        _ => (server, NTP_PORT),
    }
}

impl Source for Sntp {
    fn offset(&mut self, server: &str) -> Result<f64, String> {
        let (host, port) = split_port(server);
        self.0
            .synchronize((host, port))
            .map(|r| r.clock_offset().as_secs_f64())
            .map_err(|e| e.to_string())
    }
}

/// The real clock: `clock_settime` to step, `adjtime` to slew (needs CAP_SYS_TIME).
pub struct SystemClock;

impl Clock for SystemClock {
    fn step(&mut self, offset: f64) -> Result<(), String> {
        use nix::time::{clock_gettime, clock_settime, ClockId};
        let now = clock_gettime(ClockId::CLOCK_REALTIME).map_err(|e| e.to_string())?;
        let nanos =
            now.tv_sec() as i128 * 1_000_000_000 + now.tv_nsec() as i128 + (offset * 1e9) as i128;
        let ts = nix::sys::time::TimeSpec::new(
            nanos.div_euclid(1_000_000_000) as libc::time_t,
            nanos.rem_euclid(1_000_000_000) as libc::c_long,
        );
        clock_settime(ClockId::CLOCK_REALTIME, ts).map_err(|e| format!("clock_settime: {e}"))
    }

    fn slew(&mut self, offset: f64) -> Result<(), String> {
        let micros = (offset * 1e6) as i64;
        let delta = libc::timeval {
            tv_sec: micros.div_euclid(1_000_000) as libc::time_t,
            tv_usec: micros.rem_euclid(1_000_000) as libc::suseconds_t,
        };
        // SAFETY: `delta` is a valid timeval for the call's duration; the old-delta pointer may
        // be null.
        let rc = unsafe { libc::adjtime(&delta, std::ptr::null_mut()) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("adjtime: {}", std::io::Error::last_os_error()))
        }
    }
}

/// `ros ntpd [SERVER…]`: run forever (the container's main process).
pub fn main(args: &[String]) -> std::process::ExitCode {
    let servers: Vec<String> = args
        .iter()
        .filter(|a| !a.starts_with('-'))
        .cloned()
        .collect();
    if servers.is_empty() {
        eprintln!("usage: ros ntpd SERVER[:PORT]…");
        return std::process::ExitCode::from(2);
    }
    // In its container `ros ntpd` is PID 1 of a pid namespace, where the kernel drops every
    // signal without a handler: SIGTERM/SIGINT are blocked (so they wait, queued) before
    // anything else, and a thread of their own takes them whenever they come and ends the
    // process at once. Mid-round too: a round that finds no server waits out DNS and SNTP
    // timeouts for many seconds, longer than a shutdown gives a service to stop.
    let mut stop = nix::sys::signal::SigSet::empty();
    stop.add(nix::sys::signal::Signal::SIGTERM);
    stop.add(nix::sys::signal::Signal::SIGINT);
    if let Err(e) = stop.thread_block() {
        eprintln!("ntpd: blocking SIGTERM: {e}");
    }
    if let Err(e) = std::thread::Builder::new()
        .name("ntpd-stop".into())
        .spawn(move || stop_on_signal(&stop))
    {
        eprintln!("ntpd: no thread for SIGTERM ({e}): stopping");
        return std::process::ExitCode::FAILURE;
    }
    let (mut source, mut clock) = (Sntp::default(), SystemClock);
    let mut last_kind = None;
    let mut streak = 0u32;
    eprintln!("ntpd: servers {}", servers.join(", "));
    loop {
        let r = round(&servers, &mut source, &mut clock);
        let ok = matches!(r, Round::Stepped { .. } | Round::Slewed { .. });
        streak = if last_kind == Some(ok) { streak + 1 } else { 0 };
        last_kind = Some(ok);
        let delay = next_delay(&r, streak);
        if ok {
            eprintln!("ntpd: {r}; next poll in {} s", delay.as_secs());
        } else {
            eprintln!("ntpd: {r}; retrying in {} s", delay.as_secs());
        }
        std::thread::sleep(delay);
    }
}

/// Wait for one of `set` (blocked in every thread) and end the process. A clock step or slew
/// under way is one system call, never left half done.
fn stop_on_signal(set: &nix::sys::signal::SigSet) {
    loop {
        match set.wait() {
            Ok(sig) => {
                eprintln!("ntpd: {sig}: stopping");
                std::process::exit(0);
            }
            // EINTR: something else woke the wait; wait on.
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                eprintln!("ntpd: waiting for SIGTERM: {e}: stopping");
                std::process::exit(1);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fake(Vec<Result<f64, String>>);
    impl Source for Fake {
        fn offset(&mut self, _: &str) -> Result<f64, String> {
            self.0.remove(0)
        }
    }
    #[derive(Default)]
    struct Log(Vec<String>);
    impl Clock for Log {
        fn step(&mut self, o: f64) -> Result<(), String> {
            self.0.push(format!("step {o}"));
            Ok(())
        }
        fn slew(&mut self, o: f64) -> Result<(), String> {
            self.0.push(format!("slew {o}"));
            Ok(())
        }
    }

    fn servers() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    #[test]
    fn first_answer_wins_large_offsets_step_small_ones_slew() {
        let mut clock = Log::default();
        let r = round(
            &servers(),
            &mut Fake(vec![Err("timeout".into()), Ok(2.5)]),
            &mut clock,
        );
        assert_eq!(
            r,
            Round::Stepped {
                server: "b".into(),
                offset: 2.5
            }
        );
        let r = round(&servers(), &mut Fake(vec![Ok(-0.01)]), &mut clock);
        assert!(matches!(r, Round::Slewed { .. }));
        assert_eq!(clock.0, ["step 2.5", "slew -0.01"]);
    }

    #[test]
    fn no_answer_names_every_server_and_retries_sooner_than_a_poll() {
        let r = round(
            &servers(),
            &mut Fake(vec![Err("no DNS".into()), Err("timeout".into())]),
            &mut Log::default(),
        );
        assert_eq!(
            r.to_string(),
            "no NTP server answered (a: no DNS; b: timeout)"
        );
        assert_eq!(next_delay(&r, 0), FIRST_RETRY);
        assert_eq!(next_delay(&r, 1), FIRST_RETRY * 2);
        assert_eq!(next_delay(&r, 30), MAX_RETRY);
        let ok = Round::Slewed {
            server: "a".into(),
            offset: 0.0,
        };
        assert_eq!(next_delay(&ok, 0), MIN_POLL);
        assert_eq!(next_delay(&ok, 9), MAX_POLL);
    }

    #[test]
    fn ports_split_from_hosts() {
        assert_eq!(split_port("pool.ntp.org"), ("pool.ntp.org", 123));
        assert_eq!(split_port("127.0.0.1:1123"), ("127.0.0.1", 1123));
        assert_eq!(split_port("[::1]:5"), ("::1", 5));
        assert_eq!(split_port("::1"), ("::1", 123));
    }

    /// The real SNTP source against a server on loopback that answers as a stratum-1 server
    /// whose clock is 10 s ahead.
    #[test]
    fn sntp_source_measures_a_real_servers_offset() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let mut req = [0u8; 48];
            let (_, from) = sock.recv_from(&mut req).unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                + Duration::from_secs(10);
            let secs = now.as_secs() + 2_208_988_800; // NTP epoch 1900
            let frac = ((now.subsec_nanos() as u64) << 32) / 1_000_000_000;
            let ts = ((secs << 32) | frac).to_be_bytes();
            let mut resp = [0u8; 48];
            resp[0] = 0x24; // LI 0, VN 4, mode 4 (server)
            resp[1] = 1; // stratum 1
            resp[12..16].copy_from_slice(b"GPS\0");
            resp[16..24].copy_from_slice(&ts); // reference
            resp[24..32].copy_from_slice(&req[40..48]); // originate = their transmit
            resp[32..40].copy_from_slice(&ts); // receive
            resp[40..48].copy_from_slice(&ts); // transmit
            sock.send_to(&resp, from).unwrap();
        });
        let offset = Sntp::default()
            .offset(&format!("127.0.0.1:{port}"))
            .unwrap();
        assert!((offset - 10.0).abs() < 0.5, "offset {offset}");
    }

    #[test]
    fn sntp_source_reports_a_silent_server() {
        // A bound socket that never answers.
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = sock.local_addr().unwrap().port();
        let mut s = Sntp(rsntp::SntpClient::new());
        s.0.set_timeout(Duration::from_millis(200));
        assert!(s.offset(&format!("127.0.0.1:{port}")).is_err());
        drop(sock);
    }
}
