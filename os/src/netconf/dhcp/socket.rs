//! The client's two sockets on one link.
//!
//! Without an address the kernel's UDP cannot be trusted to send from 0.0.0.0 or to deliver
//! what comes back (a unicast to an address the link does not have yet is dropped; rp_filter
//! may drop the rest), so, as udhcpc and systemd-networkd do, the client speaks through a
//! packet socket on the link and writes the IPv4 and UDP headers itself; what it reads there
//! is checked before it is believed. Once a lease is configured, renewals go through an
//! ordinary UDP socket bound to the link and port 68.

use super::message::{CLIENT_PORT, SERVER_PORT};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

const ETH_P_IP: u16 = 0x0800;
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Wait until `fd` is readable or `until` has come (`false`).
pub fn readable(fd: &impl AsFd, until: Instant) -> io::Result<bool> {
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let ms = PollTimeout::try_from(left.as_millis().clamp(1, 60_000) as i32)
            .unwrap_or(PollTimeout::MAX);
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, ms) {
            Ok(0) => continue,
            Ok(_) => return Ok(true),
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A packet socket for IPv4 on one link.
pub struct Raw {
    fd: OwnedFd,
    ifindex: i32,
}

fn link_addr(ifindex: i32, to: Option<[u8; 6]>) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain data; all zeroes is a valid (empty) value.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = ETH_P_IP.to_be();
    sll.sll_ifindex = ifindex;
    if let Some(mac) = to {
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&mac);
    }
    sll
}

impl Raw {
    pub fn open(ifindex: i32) -> io::Result<Raw> {
        // SAFETY: socket(2) with constant arguments; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                ETH_P_IP.to_be() as i32,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let sll = link_addr(ifindex, None);
        // SAFETY: `sll` is a valid sockaddr_ll of the size given, alive for the call.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Raw { fd, ifindex })
    }

    /// Broadcast `payload` from 0.0.0.0:68 to 255.255.255.255:67.
    pub fn send_broadcast(&self, payload: &[u8]) -> io::Result<()> {
        let packet = udp_packet(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            CLIENT_PORT,
            SERVER_PORT,
            payload,
        );
        let sll = link_addr(self.ifindex, Some([0xff; 6]));
        // SAFETY: `packet` and `sll` are valid for the lengths given, alive for the call.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The UDP payload of the next IPv4 packet to port 68, or `None` at `until`. Anything
    /// else on the link (and our own packets going out) is skipped.
    pub fn recv(&self, until: Instant) -> io::Result<Option<Vec<u8>>> {
        let mut buf = vec![0u8; 2048];
        loop {
            if !readable(&self.fd, until)? {
                return Ok(None);
            }
            // SAFETY: `buf` is valid for writes of its length for the call.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => continue,
                    _ => return Err(e),
                }
            }
            if let Some(p) = udp_payload(&buf[..n as usize], CLIENT_PORT) {
                return Ok(Some(p.to_vec()));
            }
        }
    }
}

/// The Internet checksum (RFC 1071) of `data`, with `sum` carried in.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u16::from_be_bytes([c[0], c[1]]) as u32;
    }
    if let [last] = chunks.remainder() {
        sum += (*last as u32) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet carrying one UDP datagram.
pub fn udp_packet(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let udp_len = (UDP_HEADER + payload.len()) as u16;
    let total = IP_HEADER as u16 + udp_len;
    let mut p = Vec::with_capacity(total as usize);
    p.extend_from_slice(&[0x45, 0x10]);
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    let c = checksum(&p[..IP_HEADER], 0);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p.extend_from_slice(&sport.to_be_bytes());
    p.extend_from_slice(&dport.to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]);
    p.extend_from_slice(payload);
    // The pseudo-header's sum, then the datagram's.
    let mut pseudo = 0u32;
    for w in [src.octets(), dst.octets()] {
        pseudo += u16::from_be_bytes([w[0], w[1]]) as u32 + u16::from_be_bytes([w[2], w[3]]) as u32;
    }
    pseudo += 17 + udp_len as u32;
    let c = match checksum(&p[IP_HEADER..], pseudo) {
        0 => 0xffff,
        c => c,
    };
    p[IP_HEADER + 6..IP_HEADER + 8].copy_from_slice(&c.to_be_bytes());
    p
}

/// The payload of a UDP datagram to `port` in an IPv4 packet, if the packet is one, whole
/// (not a fragment) and its header's checksum holds. The UDP checksum is not checked: a
/// packet socket may see it before the device filled it in (checksum offload).
pub fn udp_payload(p: &[u8], port: u16) -> Option<&[u8]> {
    let (&vihl, _) = p.split_first()?;
    let ihl = (vihl & 0x0f) as usize * 4;
    if vihl >> 4 != 4 || ihl < IP_HEADER || p.len() < ihl + UDP_HEADER {
        return None;
    }
    let total = u16::from_be_bytes([p[2], p[3]]) as usize;
    let frag = u16::from_be_bytes([p[6], p[7]]);
    if p[9] != 17 || total > p.len() || total < ihl + UDP_HEADER || frag & 0x3fff != 0 {
        return None;
    }
    if checksum(&p[..ihl], 0) != 0 {
        return None;
    }
    let udp = &p[ihl..total];
    let dport = u16::from_be_bytes([udp[2], udp[3]]);
    let len = u16::from_be_bytes([udp[4], udp[5]]) as usize;
    if dport != port || len < UDP_HEADER || len > udp.len() {
        return None;
    }
    Some(&udp[UDP_HEADER..len])
}

/// A UDP socket on port 68 of one link, for a client that has its address.
pub fn udp(link: &str) -> io::Result<UdpSocket> {
    use nix::sys::socket::{
        bind, setsockopt, socket, sockopt, AddressFamily, SockFlag, SockType, SockaddrIn,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    setsockopt(&fd, sockopt::Broadcast, &true)?;
    setsockopt(&fd, sockopt::BindToDevice, &std::ffi::OsString::from(link))?;
    bind(
        fd.as_raw_fd(),
        &SockaddrIn::from(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, CLIENT_PORT)),
    )?;
    Ok(UdpSocket::from(fd))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_packet_built_reads_back_and_damage_is_refused() {
        let p = udp_packet(
            Ipv4Addr::new(10, 0, 2, 2),
            Ipv4Addr::BROADCAST,
            67,
            68,
            b"hello",
        );
        assert_eq!(p.len(), 33);
        assert_eq!(checksum(&p[..20], 0), 0, "the header's checksum holds");
        assert_eq!(udp_payload(&p, 68), Some(&b"hello"[..]));
        assert_eq!(udp_payload(&p, 67), None, "another port");
        // A trailer (Ethernet padding) past the IP length is not payload.
        let mut padded = p.clone();
        padded.extend_from_slice(&[0; 13]);
        assert_eq!(udp_payload(&padded, 68), Some(&b"hello"[..]));
        let mut bad = p.clone();
        bad[8] ^= 1; // TTL: the header's checksum fails
        assert_eq!(udp_payload(&bad, 68), None);
        let mut frag = p.clone();
        frag[6] = 0x20; // more fragments
        assert_eq!(udp_payload(&frag, 68), None);
        let mut long = p.clone();
        long[24..26].copy_from_slice(&200u16.to_be_bytes()); // UDP length past the end
        assert_eq!(udp_payload(&long, 68), None);
        for n in 0..p.len() {
            let _ = udp_payload(&p[..n], 68);
        }
    }

    #[test]
    fn the_udp_checksum_is_the_known_one() {
        // The pseudo-header and datagram sum to 0xffff when the checksum is right.
        let p = udp_packet(
            Ipv4Addr::UNSPECIFIED,
            Ipv4Addr::BROADCAST,
            68,
            67,
            &[1, 2, 3],
        );
        let udp = &p[20..];
        let mut pseudo = 0u32;
        pseudo += 0xffff + 0xffff + 17 + udp.len() as u32;
        assert_eq!(checksum(udp, pseudo), 0);
    }
}
