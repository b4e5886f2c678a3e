//! Built-in reference servers, faithful to the lab programs, run as `labrun serve NAME`.
//!
//! They run as child processes of the same binary, never inside the load generator, so a
//! built-in and a student's program take one code path through the supervisor and are
//! measured the same way. The blocking ones mirror the lab's Python exactly (one
//! `recv(1024)`, then send everything back); `echo-async` is the fast yardstick.

mod broadcast;
mod chat_stdin;
mod echo_async;
mod echo_blocking;
mod udp_echo;

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};

use serde::{Deserialize, Serialize};

/// The lab's read size: `conn.recv(1024)`.
pub const LAB_RECV_BYTES: usize = 1024;

/// A reference server built into labrun.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Builtin {
    /// Lab program 1: one client at a time, `recv(1024)` and send-all, then the next client.
    EchoIterative,
    /// Lab program 3: one OS thread per client, the same loop in each.
    EchoThreaded,
    /// Event-driven (tokio) echo, the fast reference to compare against.
    EchoAsync,
    /// Lab program 2: one client, turn by turn, each reply the next line of its stdin.
    ChatStdin,
    /// Lab program 5: a chat room relaying every chunk to every other client.
    Broadcast,
    /// UDP echo: each datagram sent back to where it came from.
    UdpEcho,
}

impl Builtin {
    /// Every built-in, for listings.
    pub const ALL: [Builtin; 6] = [
        Builtin::EchoIterative,
        Builtin::EchoThreaded,
        Builtin::EchoAsync,
        Builtin::ChatStdin,
        Builtin::Broadcast,
        Builtin::UdpEcho,
    ];

    /// The kebab-case name used in scenarios and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Builtin::EchoIterative => "echo-iterative",
            Builtin::EchoThreaded => "echo-threaded",
            Builtin::EchoAsync => "echo-async",
            Builtin::ChatStdin => "chat-stdin",
            Builtin::Broadcast => "broadcast",
            Builtin::UdpEcho => "udp-echo",
        }
    }

    /// One line on what it is, for `labrun list`.
    pub fn summary(self) -> &'static str {
        match self {
            Builtin::EchoIterative => "lab 1: iterative echo, one client at a time, recv(1024) + sendall",
            Builtin::EchoThreaded => "lab 3: concurrent echo, one OS thread per client",
            Builtin::EchoAsync => "event-driven echo (tokio), the fast reference",
            Builtin::ChatStdin => "lab 2: one client, turn by turn; replies are the lines of its stdin",
            Builtin::Broadcast => "lab 5: chat room, a thread per client, each chunk relayed to all others",
            Builtin::UdpEcho => "UDP echo: every datagram (up to 65,507 bytes) back to its sender",
        }
    }
}

/// Binds `127.0.0.1:port` (0 picks a free port), announces the address on stdout the way
/// the lab programs do, and serves until killed.
pub fn serve(builtin: Builtin, port: u16) -> io::Result<()> {
    if builtin == Builtin::UdpEcho {
        let socket = std::net::UdpSocket::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
        announce(builtin, socket.local_addr()?)?;
        return udp_echo::serve(socket);
    }
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))?;
    announce(builtin, listener.local_addr()?)?;
    match builtin {
        Builtin::EchoIterative => echo_blocking::serve_iterative(listener),
        Builtin::EchoThreaded => echo_blocking::serve_threaded(listener),
        Builtin::EchoAsync => echo_async::serve(listener),
        Builtin::ChatStdin => chat_stdin::serve(listener),
        Builtin::Broadcast => broadcast::serve(listener),
        Builtin::UdpEcho => unreachable!("served on a UDP socket above"),
    }
}

fn announce(builtin: Builtin, address: SocketAddr) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{} listening on {address}", builtin.name())?;
    out.flush()
}
