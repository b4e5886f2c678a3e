//! The UDP echo reference server: every datagram back to its sender, whole.
//!
//! The buffer holds the largest UDP payload (65,507 bytes), so unlike a lab server's
//! `recvfrom(1024)` it never truncates.

use std::io;
use std::net::UdpSocket;

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

/// Serves until killed.
pub fn serve(socket: UdpSocket) -> io::Result<()> {
    let mut buffer = vec![0u8; MAX_DATAGRAM];
    loop {
        match socket.recv_from(&mut buffer) {
            // A send error (the peer's port closed, a full buffer) loses that one echo, as
            // UDP may; the server goes on.
            Ok((n, from)) => {
                let _ = socket.send_to(&buffer[..n], from);
            }
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {}
        }
    }
}
