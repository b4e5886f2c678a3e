//! Servers labrun does not launch (`address = "host:port"`, `--target`): finding where one
//! runs and whether it answers. There is no process to watch, so readiness is the first
//! answer — a TCP connection accepted, or a UDP datagram echoed — and "still up" at the end
//! is the same question asked again. Nothing here ever signals anything.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpStream, UdpSocket};
use tokio::time::Instant;

use crate::scenario::{Target, Transport};

/// Longest wait for one connection attempt or one datagram's answer, so that a dropped SYN
/// or datagram is retried well before the ready timeout runs out.
const ATTEMPT_LIMIT: Duration = Duration::from_secs(1);
/// Pause between attempts after a refusal (nothing listening yet) or a failed lookup.
const RETRY_PAUSE: Duration = Duration::from_millis(100);
/// What a readiness datagram carries: an echo server sends it back, and no client of the
/// run sends it, so it cannot be mistaken for one of theirs.
const READY_DATAGRAM: &[u8] = b"labrun: are you there?";

/// How reaching a server went.
pub enum Reached {
    /// It answered at this address.
    At(SocketAddr),
    /// Nothing answered before the deadline; the last reason.
    Not(String),
}

/// Looks `target` up and waits until it answers over `transport`, trying again until
/// `deadline`: a server (or its DNS name) may come up after labrun starts, as a service
/// container or a Deployment does.
pub async fn reach(target: &Target, transport: Transport, deadline: Instant) -> Reached {
    loop {
        let reason = match attempt(target, transport, deadline).await {
            Ok(address) => return Reached::At(address),
            Err(reason) => reason,
        };
        if Instant::now() + RETRY_PAUSE >= deadline {
            return Reached::Not(reason);
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// Attempts the end-of-run check makes before calling a server down: one lost datagram, or
/// one SYN dropped by a backlog still full from the load, must not fail a server that is up.
const STILL_UP_ATTEMPTS: u32 = 3;

/// Whether the server at `address` still answers (the end-of-run "is it still up" of a
/// server labrun did not start), within a few attempts.
pub async fn answers(address: SocketAddr, transport: Transport) -> bool {
    for attempt in 1..=STILL_UP_ATTEMPTS {
        if let Ok(Ok(())) = tokio::time::timeout(ATTEMPT_LIMIT, answer(address, transport)).await {
            return true;
        }
        if attempt < STILL_UP_ATTEMPTS {
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
    false
}

/// One lookup and one answer from each address it gives, in order; the first that answers.
async fn attempt(target: &Target, transport: Transport, deadline: Instant) -> Result<SocketAddr, String> {
    let addresses: Vec<SocketAddr> = match tokio::time::timeout_at(deadline, look_up(target)).await {
        Ok(Ok(found)) => found,
        Ok(Err(err)) => return Err(format!("cannot look up `{}`: {err}", target.host)),
        Err(_) => return Err(format!("looking up `{}` took too long", target.host)),
    };
    let mut last = format!("`{}` has no address", target.host);
    for address in addresses {
        let limit = deadline.min(Instant::now() + ATTEMPT_LIMIT);
        match tokio::time::timeout_at(limit, answer(address, transport)).await {
            Ok(Ok(())) => return Ok(address),
            Ok(Err(err)) => last = format!("{address}: {err}"),
            Err(_) => {
                last = format!(
                    "{address}: no answer within {}",
                    crate::units::duration(ATTEMPT_LIMIT)
                )
            }
        }
    }
    Err(last)
}

/// The addresses `target`'s host name resolves to. The system resolver blocks, and a lookup
/// that hangs cannot be cancelled: it runs on a thread of its own that nothing waits for, so
/// a stuck resolver holds labrun neither past the ready timeout nor at exit (tokio's blocking
/// pool would be waited for when the runtime shuts down).
async fn look_up(target: &Target) -> io::Result<Vec<SocketAddr>> {
    let (tell, told) = tokio::sync::oneshot::channel();
    let name = (target.host.clone(), target.port);
    std::thread::Builder::new()
        .name("labrun-lookup".into())
        .spawn(move || {
            let found = std::net::ToSocketAddrs::to_socket_addrs(&name).map(Iterator::collect);
            let _ = tell.send(found);
        })?;
    told.await
        .unwrap_or_else(|_| Err(io::Error::other("the lookup thread ended without an answer")))
}

/// A connection accepted (TCP), or a datagram echoed (UDP).
async fn answer(address: SocketAddr, transport: Transport) -> io::Result<()> {
    match transport {
        Transport::Tcp => TcpStream::connect(address).await.map(drop),
        Transport::Udp => {
            let unspecified: SocketAddr = match address {
                SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
            };
            let socket = UdpSocket::bind(unspecified).await?;
            socket.connect(address).await?;
            socket.send(READY_DATAGRAM).await?;
            let mut buffer = [0u8; 64];
            socket.recv(&mut buffer).await.map(drop)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A UDP echo server that ignores its first `drop_first` datagrams, then echoes.
    async fn udp_echo_losing(drop_first: usize) -> SocketAddr {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback UDP socket");
        let address = socket.local_addr().expect("its address");
        tokio::spawn(async move {
            let mut buffer = [0u8; 64];
            let mut seen = 0;
            while let Ok((n, from)) = socket.recv_from(&mut buffer).await {
                seen += 1;
                if seen > drop_first {
                    let _ = socket.send_to(&buffer[..n], from).await;
                }
            }
        });
        address
    }

    #[tokio::test]
    async fn a_lost_datagram_does_not_make_a_server_down() {
        let address = udp_echo_losing(1).await;
        assert!(answers(address, Transport::Udp).await);
    }

    #[tokio::test]
    async fn a_server_that_never_answers_is_down() {
        let address = udp_echo_losing(usize::MAX).await;
        assert!(!answers(address, Transport::Udp).await);
    }
}
