//! What every simulated client shares, whatever its workload: its context, bounded waits,
//! connecting, and the ways a session ends early.
//!
//! Every wait a client makes goes through [`ClientContext::bounded`], bounded by the reply
//! timeout, the run deadline and Ctrl-C, whichever comes first, so a server that hangs can
//! never hang labrun.

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::activity::ServerActivity;
use super::pacer::ConnectPacer;
use super::record::{ClientEnd, ClientError, ClientErrorKind, Timeline};
use super::tally::WorkerTally;
use crate::scenario::{ConnectMode, GroupPlan};

/// What one client needs to know. It lives on its worker thread (see [`super::drive`]).
pub struct ClientContext {
    /// The group's plan.
    pub group: Arc<GroupPlan>,
    /// Index of the group in the plan.
    pub group_index: usize,
    /// The client's number in its group.
    pub index: u32,
    /// Where its server listens.
    pub address: SocketAddr,
    /// When its server last answered any of its clients.
    pub server_activity: Arc<ServerActivity>,
    /// Scenario seed for payloads.
    pub seed: u64,
    /// Time zero of the run.
    pub run_start: Instant,
    /// When this client begins.
    pub start_at: Instant,
    /// The run's global deadline.
    pub run_deadline: Instant,
    /// Fires on Ctrl-C.
    pub cancel: CancellationToken,
    /// Its worker's figures, where each completed message is counted.
    pub tally: Rc<WorkerTally>,
    /// Its worker's connect window: how many of its clients may be connecting at once.
    pub connect_window: Rc<tokio::sync::Semaphore>,
    /// Its server's connect pacer, when the kernel tells the server's accept queue.
    pub pacer: Option<Arc<ConnectPacer>>,
    /// Fires once every well-behaved client has finished; stalled clients hold on until then.
    pub well_behaved_done: CancellationToken,
}

/// Why a bounded wait ended early.
pub enum Interruption {
    /// The reply timeout passed.
    ReplyTimeout,
    /// The run's deadline passed.
    RunDeadline,
    /// Ctrl-C.
    Cancelled,
}

impl ClientContext {
    /// Waits for `work` unless the reply timeout (if given), the run deadline or Ctrl-C
    /// comes first.
    pub async fn bounded<T>(
        &self,
        reply_deadline: Option<Instant>,
        work: impl Future<Output = T>,
    ) -> Result<T, Interruption> {
        let (deadline, reason) = match reply_deadline {
            Some(reply) if reply < self.run_deadline => (reply, Interruption::ReplyTimeout),
            _ => (self.run_deadline, Interruption::RunDeadline),
        };
        tokio::select! {
            biased;
            () = self.cancel.cancelled() => Err(Interruption::Cancelled),
            outcome = tokio::time::timeout_at(deadline, work) => outcome.map_err(|_| reason),
        }
    }

    /// Counts one completed message, with its round-trip time when it has one.
    pub fn message_done(&self, rtt: Option<Duration>) {
        self.tally.message_done(self.group_index, rtt);
    }

    /// Time since the start of the run.
    pub fn since_start(&self) -> Duration {
        self.run_start.elapsed()
    }

    /// Waits for the client's start time, then connects within the reply timeout, noting
    /// both milestones. `Err` is how the session ended instead.
    pub async fn connect(&self, timeline: &mut Timeline) -> Result<TcpStream, ClientEnd> {
        self.connect_shaped(timeline, |_| {}).await
    }

    /// [`connect`](Self::connect), with `shape` setting options on the socket before its SYN
    /// leaves: the receive buffer and the segment size are settled in the handshake.
    pub async fn connect_shaped(
        &self,
        timeline: &mut Timeline,
        shape: impl FnOnce(&TcpSocket),
    ) -> Result<TcpStream, ClientEnd> {
        if let Err(interruption) = self.bounded(None, tokio::time::sleep_until(self.start_at)).await {
            // A start scheduled past the run's deadline is a deadline failure, not silence.
            return Err(interrupted_end(interruption, None, &self.group));
        }
        // A storm of thousands of clients starting together connects through a window, as a
        // hand-written client paces its connects: the SYNs then queue here rather than
        // overflow the server's accept queue into one-second retransmits, and the connect
        // time measured is the server's.
        let _connecting = match self.bounded(None, self.connect_window.acquire()).await {
            Ok(permit) => permit.ok(),
            Err(interruption) => return Err(interrupted_end(interruption, None, &self.group)),
        };
        let timeout = self.group.reply_timeout;
        // The window alone cannot know a server's backlog: a `listen(5)` queue overflows
        // with six. The pacer waits for room in it (see `pacer`).
        let admission = match &self.pacer {
            Some(pacer) => {
                let storm = self.group.connect == ConnectMode::Storm;
                let queued_since = Instant::now();
                match self
                    .bounded(None, pacer.admit(storm, timeout, Some(&self.server_activity)))
                    .await
                {
                    Ok(admission) => Some(admission),
                    Err(Interruption::RunDeadline) => {
                        return Err(failed(
                            ClientErrorKind::NotServed,
                            None,
                            format!(
                                "not served: it waited {} for room in the server's full accept queue \
                                 until the run's deadline",
                                crate::units::duration(queued_since.elapsed())
                            ),
                        ));
                    }
                    Err(interruption) => return Err(interrupted_end(interruption, None, &self.group)),
                }
            }
            None => None,
        };
        timeline.connect_start = Some(self.since_start());
        let socket = match self.address {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        };
        let socket = socket.map_err(|err| {
            failed(
                ClientErrorKind::Connect,
                None,
                format!("cannot open a socket for {}: {err}", self.address),
            )
        })?;
        shape(&socket);
        let connect = self
            .bounded(Some(Instant::now() + timeout), socket.connect(self.address))
            .await;
        let stream = match connect {
            Ok(Ok(stream)) => stream,
            Ok(Err(err)) => {
                return Err(failed(
                    ClientErrorKind::Connect,
                    None,
                    format!("cannot connect to {}: {err}", self.address),
                ));
            }
            Err(Interruption::ReplyTimeout) => {
                return Err(failed(
                    ClientErrorKind::Connect,
                    None,
                    format!(
                        "connecting to {} took longer than {}",
                        self.address,
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Err(other) => return Err(interrupted_end(other, None, &self.group)),
        };
        timeline.connected = Some(self.since_start());
        timeline.handshake_stalled = admission.is_some_and(|admission| admission.connected(&stream));
        // Small messages must leave at once; Nagle would add delayed-ACK stalls to RTT.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }
}

/// A session that failed for a reason other than what the server sent.
pub fn failed(kind: ClientErrorKind, message: Option<u32>, detail: String) -> ClientEnd {
    ClientEnd::Failed(ClientError {
        kind,
        message,
        detail,
    })
}

/// Whether a socket error means the peer reset or abandoned the connection.
pub fn is_reset(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionAborted
    )
}

/// Any other socket error.
pub fn socket_failure(err: &io::Error, message: Option<u32>) -> ClientEnd {
    failed(ClientErrorKind::Io, message, format!("socket error: {err}"))
}

/// How a session ends when a bounded wait was cut short by the run's deadline or Ctrl-C.
pub fn interrupted_end(interruption: Interruption, message: Option<u32>, group: &GroupPlan) -> ClientEnd {
    match interruption {
        Interruption::Cancelled => ClientEnd::Interrupted,
        Interruption::RunDeadline | Interruption::ReplyTimeout => failed(
            ClientErrorKind::Deadline,
            message,
            format!(
                "the run's deadline passed before client group `{}` finished",
                group.name
            ),
        ),
    }
}
