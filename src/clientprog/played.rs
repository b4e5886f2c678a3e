//! The servers labrun plays for a client program under test: in process, every connection
//! recorded byte for byte.
//!
//! In process rather than as `labrun serve` children: the recording is the point, and a
//! child would have to ship every byte back. They are deliberately forgiving references
//! (64 KiB reads, `TCP_NODELAY`) so that any wrong byte is the client's doing. What a server
//! answers is decided by [`Responder`], apart from the socket loop, so the protocol can be
//! tested without sockets. A `down` server binds its port without listening: the port is
//! held (nobody else can take it) and every connect is refused, as when a server is not
//! running.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::ProgramError;
use super::record::{ConnectionEnd, ConnectionRecord};
use crate::scenario::{PlayedRole, PlayedServerPlan, PortChoice, Replies};

/// Read size: far above what a lab client sends per line, so a line is one read.
const READ_BYTES: usize = 64 * 1024;
/// Connections recorded per session; a lab client makes one or two. Later ones are
/// accepted and closed at once, so a client that loops on connect costs a bounded amount
/// of memory (each recorded one may hold a read buffer and its kept bytes).
const MAX_RECORDED_CONNECTIONS: usize = 64;
/// Pause after a failed accept (out of descriptors, say), instead of spinning on it.
const ACCEPT_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// What a played server does with each message, whatever the socket does.
#[derive(Debug, Clone)]
pub struct Responder {
    role: PlayedRole,
    replies: Option<Replies>,
    close_after: Option<u32>,
    answered: u32,
}

/// A played server's answer to one message.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    /// Bytes to send back, if any.
    pub reply: Option<Vec<u8>>,
    /// Close the connection after the reply, and why.
    pub close: Option<ConnectionEnd>,
}

impl Responder {
    /// The responder for one new connection to `plan`'s server.
    pub fn new(plan: &PlayedServerPlan) -> Responder {
        Responder {
            role: plan.role,
            replies: plan.replies.clone(),
            close_after: plan.close_after,
            answered: 0,
        }
    }

    /// Whether to close a connection as soon as it is accepted (`close_after = 0`).
    pub fn closes_at_once(&self) -> bool {
        self.close_after == Some(0)
    }

    /// The answer to the next message.
    pub fn answer(&mut self, message: &[u8]) -> Answer {
        let reply = match self.role {
            PlayedRole::Echo => Some(message.to_vec()),
            PlayedRole::Chat if message == b"exit" => {
                return Answer {
                    reply: None,
                    close: Some(ConnectionEnd::ChatEnded),
                };
            }
            PlayedRole::Chat => match self.replies.as_ref().and_then(|r| r.reply(self.answered + 1)) {
                Some(line) => Some(line.into_bytes()),
                None => {
                    return Answer {
                        reply: None,
                        close: Some(ConnectionEnd::OutOfReplies),
                    };
                }
            },
            PlayedRole::Down => None,
        };
        self.answered = self.answered.saturating_add(1);
        Answer {
            reply,
            close: (self.close_after == Some(self.answered)).then_some(ConnectionEnd::ServerClosed),
        }
    }
}

type Log = Arc<Mutex<Vec<Arc<Mutex<ConnectionRecord>>>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned record still holds valid bytes.
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The played servers of one session, serving until [`PlayedServers::stop`].
pub struct PlayedServers {
    ports: Vec<u16>,
    accepting: JoinSet<()>,
    /// `down` servers' sockets: bound, never listening.
    held: Vec<TcpSocket>,
    log: Log,
    stop: CancellationToken,
}

impl PlayedServers {
    /// Binds every played server's port and starts serving; times are recorded from `zero`.
    pub fn start(plans: &[PlayedServerPlan], zero: Instant) -> Result<PlayedServers, ProgramError> {
        let mut servers = PlayedServers {
            ports: Vec::with_capacity(plans.len()),
            accepting: JoinSet::new(),
            held: Vec::new(),
            log: Log::default(),
            stop: CancellationToken::new(),
        };
        for (index, plan) in plans.iter().enumerate() {
            let socket = bind(plan)?;
            let port = socket
                .local_addr()
                .map_err(|source| bind_failed(plan, source))?
                .port();
            servers.ports.push(port);
            if plan.role == PlayedRole::Down {
                servers.held.push(socket);
                continue;
            }
            let listener = socket.listen(128).map_err(|source| bind_failed(plan, source))?;
            let (log, stop, plan) = (Arc::clone(&servers.log), servers.stop.clone(), plan.clone());
            servers.accepting.spawn(async move {
                // Dropping this set at the end aborts the connections still open.
                let mut connections = JoinSet::new();
                loop {
                    let stream = tokio::select! {
                        () = stop.cancelled() => break,
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => stream,
                            Err(_) => {
                                tokio::time::sleep(ACCEPT_RETRY).await;
                                continue;
                            }
                        },
                    };
                    if lock(&log).len() >= MAX_RECORDED_CONNECTIONS {
                        drop(stream);
                        continue;
                    }
                    let record = Arc::new(Mutex::new(ConnectionRecord::new(index, zero.elapsed())));
                    lock(&log).push(Arc::clone(&record));
                    connections.spawn(serve(stream, Responder::new(&plan), record, zero));
                }
                connections.shutdown().await;
            });
        }
        Ok(servers)
    }

    /// Each played server's port, in plan order.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Stops serving (connections still open are closed) and returns every connection's
    /// record, in the order they were accepted.
    pub async fn stop(mut self) -> Vec<ConnectionRecord> {
        self.stop.cancel();
        while self.accepting.join_next().await.is_some() {}
        drop(self.held);
        // Every connection task is gone, so each record is this log's alone: moved, not copied.
        let log = std::mem::take(&mut *lock(&self.log));
        log.into_iter()
            .map(|record| {
                let mut record = Arc::try_unwrap(record)
                    .map(|record| {
                        record
                            .into_inner()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                    })
                    .unwrap_or_else(|shared| lock(&shared).clone());
                record.end.get_or_insert(ConnectionEnd::StillOpen);
                record
            })
            .collect()
    }
}

/// Serves one connection until either side ends it.
async fn serve(
    mut stream: TcpStream,
    mut responder: Responder,
    record: Arc<Mutex<ConnectionRecord>>,
    zero: Instant,
) {
    // Small replies go out at once, not after the client's delayed ACK.
    let _ = stream.set_nodelay(true);
    let mut buffer = vec![0u8; READ_BYTES];
    let end = if responder.closes_at_once() {
        ConnectionEnd::ServerClosed
    } else {
        loop {
            let n = match stream.read(&mut buffer).await {
                Ok(0) => break ConnectionEnd::ClientClosed,
                Ok(n) => n,
                Err(_) => break ConnectionEnd::ClientReset,
            };
            let message = &buffer[..n];
            lock(&record).receive(message);
            let answer = responder.answer(message);
            if let Some(reply) = answer.reply {
                if stream.write_all(&reply).await.is_err() {
                    break ConnectionEnd::ClientReset;
                }
                let mut record = lock(&record);
                record.replies = record.replies.saturating_add(1);
            }
            if let Some(end) = answer.close {
                break end;
            }
        }
    };
    {
        let mut record = lock(&record);
        record.end = Some(end);
        record.ended_at = Some(zero.elapsed());
    }
    if end != ConnectionEnd::ClientClosed && end != ConnectionEnd::ClientReset {
        hang_up(stream, &mut buffer).await;
    }
}

/// Ends a connection the way a lab server's `close()` does when the client has nothing in
/// flight: a FIN, so the client's next `recv` returns `b''`. Closing with unread bytes would
/// send a reset instead, and whether the client's next line had arrived yet is a race, so a
/// correct client would crash on `ConnectionResetError` in some runs. Whatever the client
/// still sends is read and dropped until it closes too, or until the session stops and
/// aborts this task.
async fn hang_up(mut stream: TcpStream, buffer: &mut [u8]) {
    if stream.shutdown().await.is_err() {
        return;
    }
    while matches!(stream.read(buffer).await, Ok(n) if n > 0) {}
}

/// Binds the server's port on loopback; a taken port names who holds it. A listening server
/// sets `SO_REUSEADDR`, so a port the previous session just closed is free again; a `down`
/// one first tries without, since Linux would let another `SO_REUSEADDR` socket bind and
/// listen on a port that is bound but not listening, and the port would not be held. When
/// that bind finds the port in use (most often by a connection of an earlier phase still in
/// `TIME_WAIT` after a played server hung up first) it binds with `SO_REUSEADDR`, which
/// still fails if anything listens there; the port is then held less firmly, which matters
/// only on a shared loopback.
fn bind(plan: &PlayedServerPlan) -> Result<TcpSocket, ProgramError> {
    let port = match plan.port {
        PortChoice::Auto => 0,
        PortChoice::Fixed(port) => port,
    };
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let attempt = |reuse: bool| -> Result<std::io::Result<TcpSocket>, ProgramError> {
        let socket = TcpSocket::new_v4().map_err(|source| bind_failed(plan, source))?;
        socket
            .set_reuseaddr(reuse)
            .map_err(|source| bind_failed(plan, source))?;
        Ok(socket.bind(address).map(|()| socket))
    };
    let mut bound = attempt(plan.role != PlayedRole::Down)?;
    if plan.role == PlayedRole::Down
        && matches!(&bound, Err(err) if err.kind() == std::io::ErrorKind::AddrInUse)
    {
        bound = attempt(true)?;
    }
    match bound {
        Ok(socket) => Ok(socket),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => Err(ProgramError::PortInUse {
            server: plan.name.clone(),
            port,
            holder: crate::supervise::port_holder(port),
        }),
        Err(source) => Err(bind_failed(plan, source)),
    }
}

fn bind_failed(plan: &PlayedServerPlan, source: std::io::Error) -> ProgramError {
    ProgramError::Bind {
        server: plan.name.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(role: PlayedRole, replies: Option<Replies>, close_after: Option<u32>) -> PlayedServerPlan {
        PlayedServerPlan {
            name: "s".into(),
            role,
            port: PortChoice::Auto,
            replies,
            close_after,
        }
    }

    #[test]
    fn echo_answers_with_the_message_and_closes_when_told() {
        let mut echo = Responder::new(&plan(PlayedRole::Echo, None, Some(2)));
        assert!(!echo.closes_at_once());
        assert_eq!(echo.answer(b"hi").reply.as_deref(), Some(&b"hi"[..]));
        let second = echo.answer(b"again");
        assert_eq!(second.close, Some(ConnectionEnd::ServerClosed));
        assert!(Responder::new(&plan(PlayedRole::Echo, None, Some(0))).closes_at_once());
    }

    #[test]
    fn chat_answers_in_turn_and_ends_on_exit_or_silence() {
        let replies = Some(Replies::Lines(vec!["one".into()]));
        let mut chat = Responder::new(&plan(PlayedRole::Chat, replies, None));
        assert_eq!(
            chat.answer(b"hello"),
            Answer {
                reply: Some(b"one".to_vec()),
                close: None
            }
        );
        assert_eq!(chat.answer(b"more").close, Some(ConnectionEnd::OutOfReplies));
        let mut chat = Responder::new(&plan(
            PlayedRole::Chat,
            Some(Replies::Template("r{n}".into())),
            None,
        ));
        assert_eq!(chat.answer(b"a").reply.as_deref(), Some(&b"r1"[..]));
        assert_eq!(chat.answer(b"exit").close, Some(ConnectionEnd::ChatEnded));
    }

    /// A client's next line racing the hang-up must read the end of the stream, never a
    /// reset; and the `TIME_WAIT` the hang-ups leave must not stop a later `down` server
    /// from holding the port, while a listener there still does.
    #[tokio::test]
    async fn a_hang_up_is_an_orderly_close_and_leaves_the_port_usable() {
        let servers =
            PlayedServers::start(&[plan(PlayedRole::Echo, None, Some(1))], Instant::now()).expect("binds");
        let port = servers.ports()[0];
        for _ in 0..50 {
            let mut client = TcpStream::connect(("127.0.0.1", port)).await.expect("connects");
            client.write_all(b"hello").await.expect("sends");
            let mut echo = [0u8; 5];
            client.read_exact(&mut echo).await.expect("echo");
            client
                .write_all(b"are you there?")
                .await
                .expect("the hang-up is not a reset");
            let mut rest = [0u8; 16];
            assert_eq!(client.read(&mut rest).await.expect("no reset"), 0);
        }
        // Lines typed after the hang-up are read and dropped, not answered with a reset
        // (which, had it won the race with the FIN, is what the client would have read).
        let mut late = TcpStream::connect(("127.0.0.1", port)).await.expect("connects");
        late.write_all(b"hello").await.expect("sends");
        let mut rest = [0u8; 16];
        while late.read(&mut rest).await.expect("no reset") > 0 {}
        for _ in 0..3 {
            late.write_all(b"still there?").await.expect("no reset");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        servers.stop().await;
        let down = PlayedServerPlan {
            port: PortChoice::Fixed(port),
            ..plan(PlayedRole::Down, None, None)
        };
        let held =
            PlayedServers::start(std::slice::from_ref(&down), Instant::now()).expect("binds over TIME_WAIT");
        held.stop().await;
        let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("binds");
        let taken = PlayedServerPlan {
            port: PortChoice::Fixed(listener.local_addr().expect("address").port()),
            ..down
        };
        assert!(matches!(
            PlayedServers::start(&[taken], Instant::now()),
            Err(ProgramError::PortInUse { .. })
        ));
    }

    #[tokio::test]
    async fn records_what_a_client_sends_and_refuses_for_a_down_server() {
        let plans = [
            plan(PlayedRole::Echo, None, None),
            plan(PlayedRole::Down, None, None),
        ];
        let servers = PlayedServers::start(&plans, Instant::now()).expect("binds");
        let ports = servers.ports().to_vec();
        let mut client = TcpStream::connect(("127.0.0.1", ports[0]))
            .await
            .expect("connects");
        client.write_all(b"hello").await.expect("sends");
        let mut echo = [0u8; 5];
        client.read_exact(&mut echo).await.expect("echo");
        assert_eq!(&echo, b"hello");
        drop(client);
        let refused = TcpStream::connect(("127.0.0.1", ports[1])).await;
        assert_eq!(
            refused.expect_err("down").kind(),
            std::io::ErrorKind::ConnectionRefused
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let records = servers.stop().await;
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].received, b"hello");
        assert_eq!(records[0].replies, 1);
        assert!(matches!(
            records[0].end,
            Some(ConnectionEnd::ClientClosed | ConnectionEnd::StillOpen)
        ));
    }
}
