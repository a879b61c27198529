//! The userland proxy of published ports, as dockerd's `docker-proxy`: the engine itself
//! listens on each published host port and relays to the container. DNAT serves the traffic
//! that comes in from other machines; what DNAT cannot serve goes through here: connections
//! from the machine to itself (`127.0.0.1:8080`, which never crosses a NAT hook that could
//! rewrite it) and from containers on the bridge to the machine's address.
//!
//! Holding the listening socket is also how a port is taken: a second container asking for
//! the same port, or a host service already on it, fails to bind, and the container does not
//! start (no half-wired container). Every socket is bound before any relay starts; dropping
//! the [`Proxy`] stops its relays and closes its sockets.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, UdpSocket};

/// One port to publish: the host's side (`port` 0: the host picks one) and the container's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Want {
    pub udp: bool,
    pub host_ip: Ipv4Addr,
    pub host_port: u16,
    pub ip: Ipv4Addr,
    pub port: u16,
}

/// The relays of one container; dropping it stops them.
#[derive(Debug, Default)]
pub struct Proxy {
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Why a port could not be bound (the caller words it as dockerd does).
#[derive(Debug, thiserror::Error)]
#[error("listen {proto}4 {addr}: bind: {}", go_words(source))]
pub struct BindError {
    pub proto: &'static str,
    pub addr: SocketAddrV4,
    pub source: std::io::Error,
}

/// The errors a bind meets, in the words dockerd (Go) prints them.
fn go_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::AddrInUse => "address already in use".into(),
        std::io::ErrorKind::AddrNotAvailable => "cannot assign requested address".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// How long a UDP flow without traffic is kept (dockerd's proxy: 90 s).
const UDP_IDLE: Duration = Duration::from_secs(90);

enum Bound {
    Tcp(TcpListener),
    Udp(UdpSocket),
}

/// Bind every port, then start relaying; the host ports as bound (in `wants`' order).
pub async fn publish(wants: &[Want]) -> Result<(Proxy, Vec<u16>), BindError> {
    let mut bound = Vec::new();
    for w in wants {
        let addr = SocketAddrV4::new(w.host_ip, w.host_port);
        let proto = if w.udp { "udp" } else { "tcp" };
        let err = |source| BindError {
            proto,
            addr,
            source,
        };
        let b = if w.udp {
            Bound::Udp(UdpSocket::bind(addr).await.map_err(err)?)
        } else {
            Bound::Tcp(TcpListener::bind(addr).await.map_err(err)?)
        };
        bound.push(b);
    }
    let mut proxy = Proxy::default();
    let mut ports = Vec::new();
    for (w, b) in wants.iter().zip(bound) {
        let to = SocketAddr::V4(SocketAddrV4::new(w.ip, w.port));
        let (port, task) = match b {
            Bound::Tcp(l) => (
                l.local_addr().map(|a| a.port()).unwrap_or(w.host_port),
                tokio::spawn(tcp(l, to)),
            ),
            Bound::Udp(s) => (
                s.local_addr().map(|a| a.port()).unwrap_or(w.host_port),
                tokio::spawn(udp(s, to)),
            ),
        };
        ports.push(port);
        proxy.tasks.push(task.abort_handle());
    }
    Ok((proxy, ports))
}

async fn tcp(listener: TcpListener, to: SocketAddr) {
    loop {
        let (mut client, from) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, %to, "proxy: accept");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        tokio::spawn(async move {
            match TcpStream::connect(to).await {
                Ok(mut server) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                }
                Err(e) => tracing::debug!(error = %e, %from, %to, "proxy: connect"),
            }
        });
    }
}

/// UDP: one socket towards the container per client address, answers relayed back from the
/// published socket, a flow forgotten after [`UDP_IDLE`] without traffic.
async fn udp(socket: UdpSocket, to: SocketAddr) {
    let socket = Arc::new(socket);
    let flows: Arc<tokio::sync::Mutex<HashMap<SocketAddr, Arc<UdpSocket>>>> = Default::default();
    let mut buf = vec![0u8; 65535];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf).await else {
            continue;
        };
        let flow = {
            let mut map = flows.lock().await;
            match map.get(&from) {
                Some(f) => f.clone(),
                None => {
                    let Ok(f) = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await else {
                        continue;
                    };
                    if f.connect(to).await.is_err() {
                        continue;
                    }
                    let f = Arc::new(f);
                    map.insert(from, f.clone());
                    let (back, f2, flows2) = (socket.clone(), f.clone(), flows.clone());
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 65535];
                        while let Ok(Ok(n)) =
                            tokio::time::timeout(UDP_IDLE, f2.recv(&mut buf)).await
                        {
                            let _ = back.send_to(&buf[..n], from).await;
                        }
                        flows2.lock().await.remove(&from);
                    });
                    f
                }
            }
        };
        let _ = flow.send(&buf[..n]).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(flavor = "current_thread")]
    async fn tcp_and_udp_are_relayed_and_a_taken_port_is_refused() {
        let lo = Ipv4Addr::LOCALHOST;
        let server = TcpListener::bind((lo, 0)).await.unwrap();
        let sport = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut c, _) = server.accept().await.unwrap();
            let mut b = [0u8; 5];
            c.read_exact(&mut b).await.unwrap();
            c.write_all(&b.to_ascii_uppercase()).await.unwrap();
        });
        let echo = UdpSocket::bind((lo, 0)).await.unwrap();
        let uport = echo.local_addr().unwrap().port();
        tokio::spawn(async move {
            let mut b = [0u8; 64];
            let (n, from) = echo.recv_from(&mut b).await.unwrap();
            echo.send_to(&b[..n], from).await.unwrap();
        });
        let wants = [
            Want {
                udp: false,
                host_ip: lo,
                host_port: 0,
                ip: lo,
                port: sport,
            },
            Want {
                udp: true,
                host_ip: lo,
                host_port: 0,
                ip: lo,
                port: uport,
            },
        ];
        let (proxy, ports) = publish(&wants).await.unwrap();
        assert!(ports.iter().all(|p| *p != 0));
        let mut c = TcpStream::connect((lo, ports[0])).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut b = [0u8; 5];
        c.read_exact(&mut b).await.unwrap();
        assert_eq!(&b, b"HELLO");
        let u = UdpSocket::bind((lo, 0)).await.unwrap();
        u.send_to(b"ping", (lo, ports[1])).await.unwrap();
        let mut b = [0u8; 8];
        let n = tokio::time::timeout(Duration::from_secs(5), u.recv(&mut b))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&b[..n], b"ping");
        // Taken: the second bind fails and names the address; nothing of it stays bound.
        let again = [
            Want {
                host_port: 0,
                ..wants[1]
            },
            Want {
                host_port: ports[0],
                ..wants[0]
            },
        ];
        let e = publish(&again).await.unwrap_err();
        assert_eq!(e.addr.port(), ports[0]);
        assert!(e.to_string().contains("address already in use"), "{e}");
        // Dropped: its sockets close (once the aborted tasks are gone).
        drop(proxy);
        let mut free = false;
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            if TcpListener::bind((lo, ports[0])).await.is_ok() {
                free = true;
                break;
            }
        }
        assert!(
            free,
            "port {} still bound after the proxy was dropped",
            ports[0]
        );
    }
}
