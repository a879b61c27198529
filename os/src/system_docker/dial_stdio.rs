//! `docker system dial-stdio`: stdin to the engine's socket, the socket to stdout, until both
//! ends are done. This is what the docker CLI runs on the far side of `DOCKER_HOST=ssh://…`
//! (`ssh HOST docker system dial-stdio`), so a workstation's own CLI drives this machine's
//! engine with nothing else set up.

use super::client::{Client, ClientError};
use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;

pub fn dial_stdio(client: &Client) -> Result<(), ClientError> {
    let sock = UnixStream::connect(&client.socket).map_err(|source| ClientError::Connect {
        socket: client.socket.clone(),
        source,
    })?;
    let mut to_sock = sock.try_clone().map_err(|source| ClientError::Io {
        what: "dup the socket".into(),
        source,
    })?;
    // stdin → socket in a thread of its own; at stdin's end the socket's write half closes,
    // as the CLI's own dialer does, and the engine sees the end of the request stream.
    let up = std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
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
    let mut stdout = std::io::stdout().lock();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from_sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout
                    .write_all(&buf[..n])
                    .and_then(|_| stdout.flush())
                    .is_err()
                {
                    break;
                }
            }
        }
    }
    // The engine closed: whatever stdin still holds has no reader. Do not wait for it.
    drop(up);
    Ok(())
}
