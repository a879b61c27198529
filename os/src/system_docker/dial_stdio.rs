//! `docker system dial-stdio`: stdin to the engine's socket, the socket to stdout, until both
//! ends are done. This is what the docker CLI runs on the far side of `DOCKER_HOST=ssh://…`
//! (`ssh HOST docker system dial-stdio`), so a workstation's own CLI drives this machine's
//! engine with nothing else set up.
//!
//! When the engine closes first (the end of an `exec` or `attach` stream) two clients want
//! different things. The docker CLI waits for the ssh command to exit once it has read the end
//! (up to 10 s, then it fails), so Docker's own dial-stdio returns at once. The Python library's
//! ssh transport (`use_ssh_client=True`) instead writes two newlines to ssh's stdin when it
//! closes, and fails with `BrokenPipeError` when ssh has already gone (docker/docker-py#3218),
//! a race it loses now and then against Docker as well. So at the engine's end this closes its
//! own output (ssh passes the end on), then lingers until stdin moves (any byte, or its end:
//! the CLI has usually closed it already) or [`LINGER`] passes, and only then exits.

use super::client::{Client, ClientError};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;
use std::time::Duration;

/// How long the process stays after the engine's end while stdin is silent.
pub const LINGER: Duration = Duration::from_millis(500);

pub fn dial_stdio(client: &Client) -> Result<(), ClientError> {
    // Writes to a closed socket or pipe are errors that end a direction, not a signal that
    // ends the process with a status the CLI would report.
    // SAFETY: setting a signal's disposition has no memory-safety preconditions; no thread
    // exists yet in this single-purpose command.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
    let sock = UnixStream::connect(&client.socket).map_err(|source| ClientError::Connect {
        socket: client.socket.clone(),
        source,
    })?;
    relay(
        sock,
        std::io::stdin(),
        std::io::stdout(),
        close_stdout_and_stderr,
        LINGER,
    )
}

/// Joins `sock` to `input` and `output`. At the socket's end, `close_output` runs (the far
/// side must see the end while this process still lives), then this returns when `input`
/// moves or after `linger`.
pub fn relay<I, O>(
    sock: UnixStream,
    mut input: I,
    mut output: O,
    close_output: impl FnOnce(),
    linger: Duration,
) -> Result<(), ClientError>
where
    I: Read + Send + 'static,
    O: Write,
{
    let mut to_sock = sock.try_clone().map_err(|source| ClientError::Io {
        what: "dup the socket".into(),
        source,
    })?;
    // Input → socket in a thread of its own, which tells the main thread each time input
    // moves. At input's end the socket's write half closes, as the CLI's own dialer does, and
    // the engine sees the end of the request stream.
    let (moved, input_moved) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            let n = input.read(&mut buf);
            let _ = moved.send(());
            match n {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_sock.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_sock.shutdown(Shutdown::Write);
    });
    let mut from_sock = sock;
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from_sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if output
                    .write_all(&buf[..n])
                    .and_then(|_| output.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    drop(output);
    // Whatever input moved before the end says nothing about the client's close: drop it.
    while input_moved.try_recv().is_ok() {}
    close_output();
    let _ = input_moved.recv_timeout(linger);
    Ok(())
}

/// Points fds 1 and 2 at /dev/null: ssh's server sends the end of the channel once both pipes
/// it reads are closed, which a Rust `Stdout` cannot do by itself.
fn close_stdout_and_stderr() {
    let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") else {
        return;
    };
    use std::os::fd::AsRawFd;
    for fd in [1, 2] {
        // SAFETY: dup2 onto the standard descriptors replaces them atomically; nothing in
        // this process reads or writes them afterwards except through the same numbers.
        unsafe {
            libc::dup2(null.as_raw_fd(), fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixStream;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    /// A pipe's write end kept by the test; the read end is the relay's input.
    fn pipe() -> (std::fs::File, std::fs::File) {
        let (r, w) = nix::unistd::pipe().unwrap();
        (std::fs::File::from(r), std::fs::File::from(w))
    }

    #[test]
    fn the_engines_end_closes_output_then_a_byte_on_input_ends_the_relay() {
        let (ours, engine) = UnixStream::pair().unwrap();
        let (input, mut client) = pipe();
        let closed = Arc::new(Mutex::new(None::<Instant>));
        let c = closed.clone();
        let out = Arc::new(Mutex::new(Vec::new()));
        struct Shared(Arc<Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Shared(out.clone());
        let running = std::thread::spawn(move || {
            relay(
                ours,
                input,
                sink,
                move || *c.lock().unwrap() = Some(Instant::now()),
                Duration::from_secs(30),
            )
        });
        // A request goes up, the answer comes down, then the engine hangs up.
        client.write_all(b"GET /_ping HTTP/1.1\r\n\r\n").unwrap();
        let mut engine = engine;
        let mut req = [0u8; 23];
        engine.read_exact(&mut req).unwrap();
        assert_eq!(&req, b"GET /_ping HTTP/1.1\r\n\r\n");
        engine.write_all(b"HTTP/1.1 200 OK\r\n\r\nOK").unwrap();
        drop(engine);
        // Output is closed while the relay still runs, waiting for the client's close.
        let t0 = Instant::now();
        while closed.lock().unwrap().is_none() {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "output never closed"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(&out.lock().unwrap()[..], b"HTTP/1.1 200 OK\r\n\r\nOK");
        std::thread::sleep(Duration::from_millis(200));
        assert!(
            !running.is_finished(),
            "the relay left before the client closed"
        );
        // The Python library's close: two newlines on stdin. The relay ends at once.
        client.write_all(b"\n\n").unwrap();
        let t1 = Instant::now();
        running.join().unwrap().unwrap();
        assert!(t1.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn input_already_ended_means_no_linger_and_a_silent_input_waits_only_the_linger() {
        // The CLI closes stdin before the answer ends: nothing to wait for.
        let (ours, mut engine) = UnixStream::pair().unwrap();
        let (input, client) = pipe();
        drop(client);
        let running = std::thread::spawn(move || {
            relay(ours, input, Vec::new(), || {}, Duration::from_secs(30))
        });
        let mut buf = Vec::new();
        engine.read_to_end(&mut buf).unwrap(); // the relay shut its write half at input's end
        drop(engine);
        let t = Instant::now();
        running.join().unwrap().unwrap();
        assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

        // Input open and silent: the relay gives up after its linger.
        let (ours, engine) = UnixStream::pair().unwrap();
        let (input, _client) = pipe();
        drop(engine);
        let t = Instant::now();
        relay(ours, input, Vec::new(), || {}, Duration::from_millis(300)).unwrap();
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(300), "{took:?}");
    }
}
