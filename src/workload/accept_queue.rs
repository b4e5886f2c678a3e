//! A server's accept queue, read from the kernel through sock_diag (`NETLINK_SOCK_DIAG`).
//!
//! For a listening TCP socket, `inet_diag` reports the accept queue's length (connections
//! the kernel has completed and the server has not yet `accept()`ed) as `idiag_rqueue`, and
//! its capacity, the backlog the server passed to `listen()`, as `idiag_wqueue`. A client
//! that connects while that queue is full has its SYN, or the ACK that completes its
//! handshake, dropped, and waits out a retransmission (1 s, then 3 s, 7 s …) before the
//! server ever sees it: the wait is the kernel's, not the server's. The connect pacer (see
//! `pacer`) reads these figures to keep clients out of a full queue, and asks after each
//! connect whether the server's side of it is established yet: if not, its last ACK was
//! dropped or is still to be processed, and the client is held by the kernel, not by the
//! server.
//!
//! A raw netlink socket through rustix, with the few fixed-layout structs of
//! `linux/inet_diag.h` written out by hand: two requests and one reply layout do not
//! justify a netlink crate. Linux only, like the rest of labrun's kernel reading; a kernel
//! that refuses (no `inet_diag` module) leaves labrun to connect unpaced, as before.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::OwnedFd;

use rustix::net::netlink::{self, SocketAddrNetlink};
use rustix::net::{AddressFamily, RecvFlags, SendFlags, SocketFlags, SocketType};

/// `SOCK_DIAG_BY_FAMILY` from `linux/sock_diag.h`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLM_F_REQUEST`, and `NLM_F_ROOT | NLM_F_MATCH` (a dump).
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
/// `NLMSG_ERROR` and `NLMSG_DONE`.
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
/// TCP states (`include/net/tcp_states.h`).
const TCP_SYN_RECV: u8 = 3;
const TCP_LISTEN: u8 = 10;
const IPPROTO_TCP: u8 = 6;
/// `struct nlmsghdr` and `struct inet_diag_req_v2`.
const HEADER_BYTES: usize = 16;
const REQUEST_BYTES: usize = 56;
/// Offsets in `struct inet_diag_msg`: state, local port and address, rqueue, wqueue.
const MSG_STATE: usize = 1;
const MSG_SPORT: usize = 4;
const MSG_SRC: usize = 8;
const MSG_RQUEUE: usize = 56;
const MSG_WQUEUE: usize = 60;
const MSG_BYTES: usize = 72;

/// A listening socket's accept queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcceptQueue {
    /// Connections waiting to be accepted.
    pub queued: u32,
    /// How many it holds: the `listen()` backlog (capped by `net.core.somaxconn`).
    pub backlog: u32,
}

/// The server's side of a connection, just after the client's connect completed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerSide {
    /// A half-open request (`SYN_RECV`): the ACK that finishes its handshake has not been
    /// processed yet, or was dropped because the accept queue was full. It joins the queue
    /// as soon as the kernel takes an ACK of the client's.
    HalfOpen,
    /// No socket of its own, so the lookup found the listener: its handshake was answered
    /// with a SYN cookie and its last ACK dropped.
    OnlyTheListener,
    /// Established, accepted, or gone: it takes no place in the queue any more.
    Other,
}

impl ServerSide {
    /// Whether the kernel left the server's side unfinished: the client believes it is
    /// connected, and the server cannot accept it yet.
    pub fn unfinished(self) -> bool {
        self != ServerSide::Other
    }
}

/// A sock_diag netlink socket.
pub struct SockDiag {
    socket: OwnedFd,
    sequence: u32,
    buffer: Vec<u8>,
}

impl SockDiag {
    /// Opens a netlink socket to the kernel's socket diagnostics.
    pub fn open() -> io::Result<SockDiag> {
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            Some(netlink::SOCK_DIAG),
        )?;
        Ok(SockDiag {
            socket,
            sequence: 0,
            buffer: vec![0u8; 32 * 1024],
        })
    }

    /// The accept queue of the listening socket a client connecting to `server` reaches,
    /// when the kernel knows one. A socket bound to `server`'s own address wins over a
    /// wildcard one, as in the kernel's lookup.
    pub fn accept_queue(&mut self, server: SocketAddr) -> io::Result<Option<AcceptQueue>> {
        let mut best: Option<(bool, AcceptQueue)> = None;
        for family in [AddressFamily::INET, AddressFamily::INET6] {
            let request = self.request(family, 1 << TCP_LISTEN, NLM_F_DUMP, None);
            self.exchange(&request, |msg| {
                let Some(local) = local_address(family, msg) else {
                    return;
                };
                if local.port() != server.port() || !reaches(local.ip(), server.ip()) {
                    return;
                }
                let queue = AcceptQueue {
                    queued: read_u32(msg, MSG_RQUEUE),
                    backlog: read_u32(msg, MSG_WQUEUE),
                };
                let exact = local.ip() == server.ip();
                if best.is_none_or(|(was_exact, _)| exact && !was_exact) {
                    best = Some((exact, queue));
                }
            })?;
        }
        Ok(best.map(|(_, queue)| queue))
    }

    /// What the server's side of the connection from `client` to `server` is, looked up by
    /// its addresses.
    pub fn server_side(&mut self, client: SocketAddr, server: SocketAddr) -> io::Result<ServerSide> {
        let (SocketAddr::V4(client), SocketAddr::V4(server)) = (client, server) else {
            return Ok(ServerSide::Other);
        };
        let request = self.request(
            AddressFamily::INET,
            u32::MAX,
            0,
            Some(((*server.ip(), server.port()), (*client.ip(), client.port()))),
        );
        let mut side = ServerSide::Other;
        let found = self.exchange(&request, |msg| {
            side = match msg[MSG_STATE] {
                TCP_SYN_RECV => ServerSide::HalfOpen,
                TCP_LISTEN => ServerSide::OnlyTheListener,
                _ => ServerSide::Other,
            };
        });
        match found {
            Ok(()) => Ok(side),
            // Nothing by that address: the server's side is gone, and so is its listener.
            Err(err) if err.raw_os_error() == Some(rustix::io::Errno::NOENT.raw_os_error()) => {
                Ok(ServerSide::Other)
            }
            Err(err) => Err(err),
        }
    }

    /// A `SOCK_DIAG_BY_FAMILY` request for TCP sockets in `states`, for one socket when
    /// `exact` gives its (local, remote) addresses.
    fn request(
        &mut self,
        family: AddressFamily,
        states: u32,
        flags: u16,
        exact: Option<((Ipv4Addr, u16), (Ipv4Addr, u16))>,
    ) -> [u8; HEADER_BYTES + REQUEST_BYTES] {
        self.sequence = self.sequence.wrapping_add(1);
        let mut bytes = [0u8; HEADER_BYTES + REQUEST_BYTES];
        bytes[0..4].copy_from_slice(&((HEADER_BYTES + REQUEST_BYTES) as u32).to_ne_bytes());
        bytes[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        bytes[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        bytes[8..12].copy_from_slice(&self.sequence.to_ne_bytes());
        let request = &mut bytes[HEADER_BYTES..];
        request[0] = family.as_raw() as u8;
        request[1] = IPPROTO_TCP;
        request[4..8].copy_from_slice(&states.to_ne_bytes());
        // `struct inet_diag_sockid` at offset 8: ports and addresses in network order.
        if let Some(((local, local_port), (remote, remote_port))) = exact {
            request[8..10].copy_from_slice(&local_port.to_be_bytes());
            request[10..12].copy_from_slice(&remote_port.to_be_bytes());
            request[12..16].copy_from_slice(&local.octets());
            request[28..32].copy_from_slice(&remote.octets());
        }
        // No cookie (`INET_DIAG_NOCOOKIE`): look the socket up by its addresses.
        request[48..56].fill(0xff);
        bytes
    }

    /// Sends `request` and hands each `inet_diag_msg` of the answer to `each`, until the
    /// kernel says it is done (a dump) or has sent its one answer.
    fn exchange(&mut self, request: &[u8], mut each: impl FnMut(&[u8])) -> io::Result<()> {
        let dump = u16::from_ne_bytes([request[6], request[7]]) & NLM_F_DUMP != 0;
        rustix::net::sendto(
            &self.socket,
            request,
            SendFlags::empty(),
            &SocketAddrNetlink::new(0, 0),
        )?;
        loop {
            let (_, received) = rustix::net::recv(&self.socket, &mut self.buffer[..], RecvFlags::empty())?;
            let mut rest = self.buffer.get(..received).unwrap_or_default();
            while rest.len() >= HEADER_BYTES {
                let length = read_u32(rest, 0) as usize;
                let kind = u16::from_ne_bytes([rest[4], rest[5]]);
                let sequence = read_u32(rest, 8);
                if length < HEADER_BYTES || length > rest.len() {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "a malformed netlink answer",
                    ));
                }
                let body = &rest[HEADER_BYTES..length];
                rest = rest.get(align(length)..).unwrap_or_default();
                if sequence != self.sequence {
                    continue; // an answer to an earlier request that was given up on
                }
                match kind {
                    NLMSG_DONE => return Ok(()),
                    NLMSG_ERROR => {
                        let errno = body
                            .get(..4)
                            .map_or(0, |b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
                        return match errno {
                            0 => Ok(()),
                            negative => Err(io::Error::from_raw_os_error(-negative)),
                        };
                    }
                    SOCK_DIAG_BY_FAMILY if body.len() >= MSG_BYTES => {
                        each(body);
                        if !dump {
                            return Ok(());
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Netlink messages are padded to four bytes.
fn align(length: usize) -> usize {
    (length + 3) & !3
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_ne_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The local address of an `inet_diag_msg`.
fn local_address(family: AddressFamily, msg: &[u8]) -> Option<SocketAddr> {
    let port = u16::from_be_bytes([msg[MSG_SPORT], msg[MSG_SPORT + 1]]);
    let ip = if family == AddressFamily::INET {
        IpAddr::from(<[u8; 4]>::try_from(msg.get(MSG_SRC..MSG_SRC + 4)?).ok()?)
    } else {
        IpAddr::from(<[u8; 16]>::try_from(msg.get(MSG_SRC..MSG_SRC + 16)?).ok()?)
    };
    Some(SocketAddr::new(ip, port))
}

/// Whether a socket listening on `local` accepts connections made to `target`.
fn reaches(local: IpAddr, target: IpAddr) -> bool {
    let local = match local {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    local == target || local.is_unspecified()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    /// A listener with the given backlog, through rustix (std always asks for 128).
    fn listen(backlog: i32) -> TcpListener {
        use rustix::net::{SocketAddrV4, bind, socket};
        let socket = socket(AddressFamily::INET, SocketType::STREAM, None).unwrap();
        bind(&socket, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)).unwrap();
        rustix::net::listen(&socket, backlog).unwrap();
        TcpListener::from(socket)
    }

    #[test]
    fn reads_the_backlog_and_the_queue_of_a_listener() {
        let listener = listen(5);
        let address = listener.local_addr().unwrap();
        let mut diag = SockDiag::open().unwrap();
        let empty = diag.accept_queue(address).unwrap();
        assert_eq!(
            empty,
            Some(AcceptQueue {
                queued: 0,
                backlog: 5
            })
        );
        let waiting: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(address).unwrap()).collect();
        assert_eq!(diag.accept_queue(address).unwrap().map(|q| q.queued), Some(3));
        for client in &waiting {
            let side = diag.server_side(client.local_addr().unwrap(), address).unwrap();
            assert_eq!(side, ServerSide::Other);
        }
        drop(listener);
        assert_eq!(diag.accept_queue(address).unwrap(), None);
    }

    #[test]
    fn wildcard_listeners_reach_loopback() {
        let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!(reaches(IpAddr::V4(Ipv4Addr::UNSPECIFIED), loopback));
        assert!(reaches("::".parse().unwrap(), loopback));
        assert!(reaches("::ffff:127.0.0.1".parse().unwrap(), loopback));
        assert!(!reaches("127.0.0.2".parse().unwrap(), loopback));
    }
}
