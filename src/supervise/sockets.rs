//! Which TCP ports a process group listens on, read from the kernel, not from the network.
//!
//! Readiness is "the server's process group owns a listening socket on its port". That is
//! what a TCP connect probe would find out, without using up a connection: the classic
//! lab 1 server serves exactly one client and exits, and a probe would be that client. The
//! same reading tells a student whose server never became ready which port it *does* listen
//! on (a hard-coded 6000 instead of the port it was given), and who holds a busy port.
//!
//! Linux only: listening sockets come from `/proc/net/tcp{,6}` (state `0A`), a UDP server's
//! bound sockets from `/proc/net/udp{,6}` (state `07`), their owners from the
//! `socket:[inode]` links in `/proc/<pid>/fd`.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::scenario::Transport;

/// The kernel's table of a transport's sockets, and the state number of one that serves:
/// LISTEN for TCP, UNCONN (bound, not connected) for UDP.
fn table(transport: Transport) -> ([(&'static str, bool); 2], &'static str) {
    match transport {
        Transport::Tcp => ([("/proc/net/tcp", false), ("/proc/net/tcp6", true)], "0A"),
        Transport::Udp => ([("/proc/net/udp", false), ("/proc/net/udp6", true)], "07"),
    }
}

/// A listening socket and the process holding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Local address it is bound to.
    pub address: SocketAddr,
    /// A process that has it open.
    pub pid: u32,
}

impl Listener {
    /// Whether a client connecting to `127.0.0.1:port` reaches this socket.
    pub fn reachable_on_loopback(&self, port: u16) -> bool {
        self.address.port() == port
            && match self.address.ip() {
                IpAddr::V4(ip) => ip.is_unspecified() || ip.is_loopback(),
                // A dual-stack wildcard socket accepts IPv4 too (unless IPV6_V6ONLY).
                IpAddr::V6(ip) => {
                    ip.is_unspecified() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
                }
            }
    }
}

/// Every listening (TCP) or bound (UDP) socket held by one of `pids`.
pub fn listeners_held_by(transport: Transport, pids: &[u32]) -> io::Result<Vec<Listener>> {
    let listening = listening_inodes(transport)?;
    let mut found = Vec::new();
    for &pid in pids {
        for inode in socket_inodes(pid) {
            if let Some(address) = listening.get(&inode) {
                found.push(Listener {
                    address: *address,
                    pid,
                });
            }
        }
    }
    found.sort_by_key(|l| (l.address.port(), l.pid));
    found.dedup_by_key(|l| l.address);
    Ok(found)
}

/// A process holding a listening socket on `port` (any address), if the kernel tells.
pub fn holder_of_port(transport: Transport, port: u16) -> Option<u32> {
    let listening = listening_inodes(transport).ok()?;
    let wanted: Vec<u64> = listening
        .iter()
        .filter(|(_, address)| address.port() == port)
        .map(|(inode, _)| *inode)
        .collect();
    if wanted.is_empty() {
        return None;
    }
    processes()
        .ok()?
        .into_iter()
        .find(|&pid| socket_inodes(pid).any(|inode| wanted.contains(&inode)))
}

/// A process's command line for messages, with arguments separated by spaces.
pub fn command_line(pid: u32) -> Option<String> {
    let raw = fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = raw
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(crate::escape::escape_bytes)
        .collect();
    (!args.is_empty()).then(|| args.join(" "))
}

fn processes() -> io::Result<Vec<u32>> {
    Ok(fs::read_dir("/proc")?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect())
}

fn socket_inodes(pid: u32) -> impl Iterator<Item = u64> {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .filter_map(|entry| {
            let target = fs::read_link(entry.ok()?.path()).ok()?;
            let target = target.to_str()?;
            target.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
}

fn listening_inodes(transport: Transport) -> io::Result<HashMap<u64, SocketAddr>> {
    let mut inodes = HashMap::new();
    let (files, state) = table(transport);
    for (path, v6) in files {
        let table = match fs::read_to_string(path) {
            Ok(table) => table,
            Err(err) if err.kind() == io::ErrorKind::NotFound && v6 => continue,
            Err(err) => return Err(err),
        };
        inodes.extend(
            table
                .lines()
                .skip(1)
                .filter_map(|line| parse_listen_line(line, v6, state)),
        );
    }
    Ok(inodes)
}

/// One row of `/proc/net/tcp{,6}`: `sl local rem st tx:rx tr:when retr uid timeout inode …`.
fn parse_listen_line(line: &str, v6: bool, state: &str) -> Option<(u64, SocketAddr)> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.get(3) != Some(&state) {
        return None;
    }
    let (ip_hex, port_hex) = fields.get(1)?.split_once(':')?;
    let port = u16::from_str_radix(port_hex, 16).ok()?;
    let ip = if v6 {
        IpAddr::V6(parse_ipv6(ip_hex)?)
    } else {
        IpAddr::V4(parse_ipv4(ip_hex)?)
    };
    let inode = fields.get(9)?.parse().ok()?;
    Some((inode, SocketAddr::new(ip, port)))
}

/// The kernel prints the address as one host-order (little-endian) 32-bit word.
fn parse_ipv4(hex: &str) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::from(u32::from_str_radix(hex, 16).ok()?.swap_bytes()))
}

/// Four host-order 32-bit words.
fn parse_ipv6(hex: &str) -> Option<Ipv6Addr> {
    if hex.len() != 32 {
        return None;
    }
    let mut octets = [0u8; 16];
    for (word, chunk) in octets.chunks_mut(4).enumerate() {
        let value = u32::from_str_radix(hex.get(word * 8..word * 8 + 8)?, 16).ok()?;
        chunk.copy_from_slice(&value.swap_bytes().to_be_bytes());
    }
    Some(Ipv6Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kernel_rows() {
        let v4 = "   0: 0100007F:1770 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_listen_line(v4, false, "0A"),
            Some((12345, "127.0.0.1:6000".parse().unwrap()))
        );
        let v6 = "   0: 00000000000000000000000001000000:1771 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0";
        assert_eq!(
            parse_listen_line(v6, true, "0A"),
            Some((777, "[::1]:6001".parse().unwrap()))
        );
        let established = v4.replace(" 0A ", " 01 ");
        assert_eq!(parse_listen_line(&established, false, "0A"), None);
    }

    #[test]
    fn finds_our_own_listener_and_its_holder() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let found = listeners_held_by(crate::scenario::Transport::Tcp, &[std::process::id()]).unwrap();
        assert!(found.iter().any(|l| l.reachable_on_loopback(port)), "{found:?}");
        assert_eq!(
            holder_of_port(crate::scenario::Transport::Tcp, port),
            Some(std::process::id())
        );
    }

    #[test]
    fn loopback_reachability() {
        let at = |text: &str| Listener {
            address: text.parse().unwrap(),
            pid: 1,
        };
        assert!(at("0.0.0.0:80").reachable_on_loopback(80));
        assert!(at("127.0.0.1:80").reachable_on_loopback(80));
        assert!(at("[::]:80").reachable_on_loopback(80));
        assert!(!at("[::1]:80").reachable_on_loopback(80));
        assert!(!at("127.0.0.1:81").reachable_on_loopback(80));
    }
}
