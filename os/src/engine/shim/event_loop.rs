//! The shim's one loop: `poll(2)` on its socket, its clients, the container's output and stdin,
//! a pidfd of the container's init and a signalfd for SIGCHLD. Every descriptor is
//! non-blocking; nothing here waits except in `poll`.
//!
//! The shim is a child subreaper (the container's init is re-parented to it once libcontainer's
//! intermediate process has gone), so in a container that shares the host's pid namespace
//! (the console, the user engine) every orphan of its processes lands here too: those are
//! reaped as they end ([`reap_others`]), the init is left to its pidfd.

use super::log::Stream;
use super::protocol::{ExitFile, Reply, Request, MAX_REQUEST};
use super::{Args, Shim, MAX_PENDING, START_WITHIN};
use crate::engine::api::stream::{frame, StreamKind};
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

/// How long output is still read after the init has exited (other processes of a container
/// that shares the host's pid namespace may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);
/// How long clients get to take what is queued for them once it is all over.
const FLUSH: Duration = Duration::from_secs(5);

enum Kind {
    /// Its request line is not complete yet.
    Pending,
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
    },
    Waiter,
    /// Write what is queued, then close.
    Closing,
}

struct Client {
    conn: UnixStream,
    kind: Kind,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    /// It sent EOF.
    read_closed: bool,
    dead: bool,
}

struct State {
    shim: Shim,
    tty: bool,
    stdin_once: bool,
    clients: Vec<Client>,
    stdin_buf: Vec<u8>,
    close_stdin: bool,
    started: bool,
    /// Created at a nice value other than 0 (`Args::nice`).
    niced: bool,
    exit: Option<i32>,
    drain_until: Option<Instant>,
    finished: bool,
    pidfd: Option<OwnedFd>,
    /// SIGCHLD, for the orphans re-parented to us.
    sigchld: Option<nix::sys::signalfd::SignalFd>,
}

pub(super) fn run(shim: Shim, args: &Args) {
    let created = Instant::now();
    let pidfd = pidfd_open(shim.pid);
    if pidfd.is_none() {
        tracing::warn!(id = args.id, "shim: no pidfd; polling the child");
    }
    let mut st = State {
        shim,
        tty: args.tty,
        stdin_once: args.stdin_once,
        clients: Vec::new(),
        stdin_buf: Vec::new(),
        close_stdin: false,
        started: false,
        niced: args.nice != 0,
        exit: None,
        drain_until: None,
        finished: false,
        pidfd,
        sigchld: sigchld_fd(),
    };
    let mut flush_until: Option<Instant> = None;
    loop {
        if !st.started && created.elapsed() > START_WITHIN && st.exit.is_none() {
            tracing::warn!(id = args.id, "shim: never started; removing the container");
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(st.shim.pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            st.started = true;
        }
        if st.exit.is_some() && !st.finished {
            let drained = st.shim.out.is_none() && st.shim.err.is_none();
            let late = st.drain_until.is_some_and(|d| Instant::now() >= d);
            if drained || late {
                finish(&mut st, args);
                flush_until = Some(Instant::now() + FLUSH);
            }
        }
        st.clients.retain(|c| !c.dead);
        if st.finished {
            let flushed = st.clients.iter().all(|c| c.out.is_empty());
            if flushed || flush_until.is_some_and(|d| Instant::now() >= d) {
                break;
            }
        }
        poll_once(&mut st);
    }
    for c in &st.clients {
        let _ = c.conn.shutdown(std::net::Shutdown::Both);
    }
    let _ = std::fs::remove_file(super::socket_path(&args.dir));
}

/// The slots of one `poll` call, by what they stand for.
#[derive(Clone, Copy)]
enum Slot {
    Listener,
    Pidfd,
    Sigchld,
    Out(Stream),
    Stdin,
    Client(usize),
}

fn poll_once(st: &mut State) {
    let behind = st.clients.iter().map(|c| c.out.len()).max().unwrap_or(0);
    let mut fds: Vec<libc::pollfd> = Vec::new();
    let mut slots: Vec<Slot> = Vec::new();
    let mut add = |fd: RawFd, events: i16, slot: Slot| {
        fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        slots.push(slot);
    };
    add(st.shim.listener.as_raw_fd(), libc::POLLIN, Slot::Listener);
    if let Some(sfd) = &st.sigchld {
        add(sfd.as_raw_fd(), libc::POLLIN, Slot::Sigchld);
    }
    if st.exit.is_none() {
        if let Some(p) = &st.pidfd {
            add(p.as_raw_fd(), libc::POLLIN, Slot::Pidfd);
        }
    }
    if behind < MAX_PENDING && !st.finished {
        if let Some(f) = &st.shim.out {
            add(f.as_raw_fd(), libc::POLLIN, Slot::Out(Stream::Stdout));
        }
        if let Some(f) = &st.shim.err {
            add(f.as_raw_fd(), libc::POLLIN, Slot::Out(Stream::Stderr));
        }
    }
    if let Some(f) = &st.shim.stdin {
        if !st.stdin_buf.is_empty() {
            add(f.as_raw_fd(), libc::POLLOUT, Slot::Stdin);
        }
    }
    for (i, c) in st.clients.iter().enumerate() {
        let wants_input = match c.kind {
            Kind::Pending => true,
            Kind::Attach { stdin, .. } => {
                stdin && !c.read_closed && st.stdin_buf.len() < MAX_PENDING
            }
            _ => false,
        };
        let mut ev = 0;
        if wants_input {
            ev |= libc::POLLIN;
        }
        if !c.out.is_empty() {
            ev |= libc::POLLOUT;
        }
        add(c.conn.as_raw_fd(), ev, Slot::Client(i));
    }
    // Without a pidfd, or while draining, wake up regularly.
    let timeout = if st.pidfd.is_none() || st.exit.is_some() {
        100
    } else {
        1000
    };
    // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs, each naming a descriptor
    // that stays open until this call returns (they all belong to `st`).
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
    if n < 0 {
        return; // EINTR
    }
    if st.pidfd.is_none() && st.exit.is_none() {
        reap(st);
    }
    for (pfd, slot) in fds.iter().zip(slots) {
        let re = pfd.revents;
        if re == 0 {
            continue;
        }
        match slot {
            Slot::Listener => accept(st),
            Slot::Pidfd => reap(st),
            Slot::Sigchld => {
                if let Some(sfd) = st.sigchld.as_mut() {
                    while let Ok(Some(_)) = sfd.read_signal() {}
                }
                reap_others(st.shim.pid);
            }
            Slot::Out(s) => read_output(st, s),
            Slot::Stdin => write_stdin(st),
            Slot::Client(i) => {
                if re & libc::POLLOUT != 0 {
                    flush_client(&mut st.clients[i]);
                }
                if re & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    read_client(st, i, re);
                }
            }
        }
    }
    if st.close_stdin && st.stdin_buf.is_empty() && !st.tty {
        st.shim.stdin = None;
    }
}

fn accept(st: &mut State) {
    loop {
        match st.shim.listener.accept() {
            Ok((conn, _)) => {
                if conn.set_nonblocking(true).is_err() {
                    continue;
                }
                st.clients.push(Client {
                    conn,
                    kind: Kind::Pending,
                    inbuf: Vec::new(),
                    out: Vec::new(),
                    read_closed: false,
                    dead: false,
                });
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                tracing::warn!(error = %e, "shim: accept");
                return;
            }
        }
    }
}

fn reap(st: &mut State) {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let pid = nix::unistd::Pid::from_raw(st.shim.pid);
    let code = match waitpid(pid, Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => c,
        Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
        Ok(_) => return,
        // Not our child any more (cannot happen: we are its parent); take it as gone.
        Err(nix::errno::Errno::ECHILD) => 255,
        Err(_) => return,
    };
    tracing::info!(pid = st.shim.pid, code, "shim: container exited");
    st.exit = Some(code);
    st.drain_until = Some(Instant::now() + DRAIN);
    // Reap whatever else was re-parented to us (we are a subreaper).
    while let Ok(s) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if s == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Reap every ended child but the container's init (its status is for [`reap`]): orphans of
/// the container's processes re-parented to us. `waitid(WNOWAIT)` looks before it takes.
fn reap_others(init: i32) {
    use nix::sys::wait::{waitid, waitpid, Id, WaitPidFlag, WaitStatus};
    loop {
        let peek = waitid(
            Id::All,
            WaitPidFlag::WEXITED | WaitPidFlag::WNOHANG | WaitPidFlag::WNOWAIT,
        );
        let pid = match peek {
            Ok(WaitStatus::StillAlive) | Err(_) => return,
            Ok(s) => match s.pid() {
                Some(p) => p,
                None => return,
            },
        };
        if pid.as_raw() == init {
            return; // the pidfd says so too; `reap` takes it (and what is behind it)
        }
        if waitpid(pid, Some(WaitPidFlag::WNOHANG)).is_err() {
            return;
        }
    }
}

/// A signalfd for SIGCHLD (blocked first, so it is read there, not delivered). None when the
/// kernel refuses: orphans are then reaped when the container ends.
fn sigchld_fd() -> Option<nix::sys::signalfd::SignalFd> {
    use nix::sys::signal::{SigSet, Signal};
    use nix::sys::signalfd::{SfdFlags, SignalFd};
    let mut set = SigSet::empty();
    set.add(Signal::SIGCHLD);
    set.thread_block().ok()?;
    SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok()
}

fn read_output(st: &mut State, stream: Stream) {
    let mut buf = vec![0u8; 64 * 1024];
    let file = match stream {
        Stream::Stdout => &mut st.shim.out,
        Stream::Stderr => &mut st.shim.err,
    };
    let Some(f) = file else { return };
    let n = match f.read(&mut buf) {
        Ok(0) => {
            *file = None;
            return;
        }
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => return,
        // A pty master reads EIO once no process holds the terminal.
        Err(_) => {
            *file = None;
            return;
        }
    };
    let data = &buf[..n];
    if let Err(e) = st.shim.log.write(stream, data) {
        tracing::warn!(error = %e, "shim: writing the log");
    }
    let kind = match stream {
        Stream::Stdout => StreamKind::Stdout,
        Stream::Stderr => StreamKind::Stderr,
    };
    for c in &mut st.clients {
        if let Kind::Attach { stdout, stderr, .. } = c.kind {
            let wanted = match stream {
                Stream::Stdout => stdout,
                Stream::Stderr => stderr,
            };
            if !wanted {
                continue;
            }
            if st.tty {
                c.out.extend_from_slice(data);
            } else {
                c.out.extend_from_slice(&frame(kind, data));
            }
            flush_client(c);
        }
    }
}

fn write_stdin(st: &mut State) {
    let Some(f) = &mut st.shim.stdin else {
        st.stdin_buf.clear();
        return;
    };
    match f.write(&st.stdin_buf) {
        Ok(n) => {
            st.stdin_buf.drain(..n);
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {}
        Err(_) => {
            // The container closed its stdin (EPIPE): what is left has no reader.
            st.shim.stdin = None;
            st.stdin_buf.clear();
        }
    }
}

fn flush_client(c: &mut Client) {
    while !c.out.is_empty() {
        match c.conn.write(&c.out) {
            Ok(0) => {
                c.dead = true;
                return;
            }
            Ok(n) => {
                c.out.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => {
                c.dead = true;
                c.out.clear();
                return;
            }
        }
    }
    if matches!(c.kind, Kind::Closing) {
        let _ = c.conn.shutdown(std::net::Shutdown::Both);
        c.dead = true;
    }
}

fn read_client(st: &mut State, i: usize, revents: i16) {
    let mut buf = vec![0u8; 64 * 1024];
    let n = match st.clients[i].conn.read(&mut buf) {
        Ok(n) => n,
        Err(e) if e.kind() == ErrorKind::WouldBlock || e.kind() == ErrorKind::Interrupted => {
            if revents & (libc::POLLHUP | libc::POLLERR) != 0 {
                st.clients[i].dead = true;
            }
            return;
        }
        Err(_) => {
            st.clients[i].dead = true;
            return;
        }
    };
    let c = &mut st.clients[i];
    match c.kind {
        Kind::Pending => {
            if n == 0 {
                c.dead = true;
                return;
            }
            c.inbuf.extend_from_slice(&buf[..n]);
            let Some(nl) = c.inbuf.iter().position(|&b| b == b'\n') else {
                if c.inbuf.len() > MAX_REQUEST {
                    reply(c, &error("request line too long"));
                }
                return;
            };
            let line = c.inbuf[..nl].to_vec();
            let rest = c.inbuf[nl + 1..].to_vec();
            c.inbuf.clear();
            match serde_json::from_slice::<Request>(&line) {
                Ok(req) => handle(st, i, req, rest),
                Err(e) => reply(&mut st.clients[i], &error(&format!("bad request: {e}"))),
            }
        }
        Kind::Attach { stdin: true, .. } => {
            if n == 0 {
                c.read_closed = true;
                if st.stdin_once {
                    st.close_stdin = true;
                }
            } else if st.shim.stdin.is_some() {
                st.stdin_buf.extend_from_slice(&buf[..n]);
            }
        }
        _ => {
            if n == 0 && revents & libc::POLLHUP != 0 {
                c.dead = true;
            }
        }
    }
}

fn error(msg: &str) -> Reply {
    Reply::Error {
        error: msg.to_string(),
    }
}

fn reply(c: &mut Client, r: &Reply) {
    let mut line = serde_json::to_vec(r).unwrap_or_default();
    line.push(b'\n');
    c.out.extend_from_slice(&line);
    c.kind = Kind::Closing;
    flush_client(c);
}

fn handle(st: &mut State, i: usize, req: Request, rest: Vec<u8>) {
    match req {
        Request::Start => {
            let r = if st.started {
                error("already started")
            } else {
                st.started = true;
                if st.niced {
                    // Created beside the boot's critical path; runs as any other from here
                    // (the container's process is still one thread, waiting for this start).
                    super::set_nice(0, 0);
                    super::set_nice(st.shim.pid, 0);
                }
                match st.shim.container.start() {
                    Ok(()) => Reply::Ok { ok: true },
                    Err(e) => error(&super::error_chain(&e)),
                }
            };
            reply(&mut st.clients[i], &r);
        }
        Request::Attach {
            stdin,
            stdout,
            stderr,
        } => {
            if st.finished {
                reply(&mut st.clients[i], &error("the container has exited"));
                return;
            }
            let stdin = stdin && st.shim.stdin.is_some();
            if stdin && !rest.is_empty() {
                st.stdin_buf.extend_from_slice(&rest);
            }
            st.clients[i].kind = Kind::Attach {
                stdin,
                stdout,
                stderr,
            };
        }
        Request::Kill { signal } => {
            let r = if st.exit.is_some() {
                error("the container has exited")
            } else {
                // Our unreaped child: its pid cannot have been reused.
                // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
                let rc = unsafe { libc::kill(st.shim.pid, signal) };
                if rc == 0 {
                    Reply::Ok { ok: true }
                } else {
                    error(&std::io::Error::last_os_error().to_string())
                }
            };
            reply(&mut st.clients[i], &r);
        }
        Request::Resize { height, width } => {
            let r = match &st.shim.master {
                Some(m) => {
                    let ws = libc::winsize {
                        ws_row: height,
                        ws_col: width,
                        ws_xpixel: 0,
                        ws_ypixel: 0,
                    };
                    // SAFETY: TIOCSWINSZ reads one winsize struct, which lives on our stack
                    // for the call; `m` is the open pty master.
                    let rc = unsafe { libc::ioctl(m.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
                    if rc == 0 {
                        Reply::Ok { ok: true }
                    } else {
                        error(&std::io::Error::last_os_error().to_string())
                    }
                }
                None => error("the container has no terminal"),
            };
            reply(&mut st.clients[i], &r);
        }
        Request::Wait => match (st.finished, st.exit) {
            (true, Some(code)) => reply(&mut st.clients[i], &Reply::Exit { exit_code: code }),
            _ => st.clients[i].kind = Kind::Waiter,
        },
    }
}

/// The container has exited and its output is in: record it, clean up, tell everyone.
fn finish(st: &mut State, args: &Args) {
    let code = st.exit.unwrap_or(255);
    st.shim.out = None;
    st.shim.err = None;
    st.shim.stdin = None;
    if let Err(e) = st.shim.log.finish() {
        tracing::warn!(error = %e, "shim: finishing the log");
    }
    let finished_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0);
    let exit = ExitFile {
        exit_code: code,
        finished_at,
    };
    let path = super::exit_path(&args.dir);
    let json = serde_json::to_vec(&exit).unwrap_or_default();
    if let Err(e) = crate::config::atomic::write_atomic(&path, &json, 0o600) {
        tracing::error!(path = %path.display(), error = %e, "shim: writing the exit file");
    }
    if let Err(e) = st.shim.container.delete(true) {
        tracing::warn!(id = args.id, error = %e, "shim: deleting the container");
    }
    for c in &mut st.clients {
        match c.kind {
            Kind::Waiter => reply(c, &Reply::Exit { exit_code: code }),
            Kind::Attach { .. } | Kind::Pending => {
                c.kind = Kind::Closing;
                flush_client(c);
            }
            Kind::Closing => {}
        }
    }
    st.finished = true;
}

fn pidfd_open(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open(2) takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return None;
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Some(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}
