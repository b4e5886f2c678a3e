//! A worker's own event loop for its echo conversations, the one per-message hot path.
//!
//! Under tokio each echoed message costs a task wake-up: the IO driver marks the socket's
//! readiness and wakes its task, the `LocalSet` queues and polls it, and the task finds its
//! socket ready again through the same readiness word. Profiled at 100 connections that was
//! about a third of labrun's user time per message (0.3 µs against a hand-written epoll
//! client's 0.17 µs for its whole loop). Here the sockets of a worker's conversations live in
//! an epoll instance of their own ([`mio::Poll`]), and each event steps its conversation
//! directly: no task, no waker, no readiness word. That instance is itself registered with
//! the worker's tokio runtime, so the worker still parks in one place and every other phase
//! of a client (connecting, faults, the trailing watch) stays ordinary async code.
//!
//! A conversation is handed over with its socket ([`Reactor::converse`]) and handed back,
//! socket and all, when its step says it is over or Ctrl-C comes. Its timer is one instant
//! (its next deadline, see [`Exchange::step`]) in an ordered set of every conversation's,
//! moved when the step moves it: one entry per conversation however often that happens.

use std::cell::{Cell, RefCell};
use std::collections::BTreeSet;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, RawFd};
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use mio::{Events, Interest, Token};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Events taken from the kernel per call: a worker's share of a thousand connections
/// answers in one or two calls.
const EVENTS_PER_POLL: usize = 1024;
/// What the loop's timer is set to while no conversation has a deadline.
const IDLE_TIMER: Duration = Duration::from_secs(3600);

/// One conversation's state machine, stepped on every event of its socket and at its
/// deadline.
pub trait Exchange {
    /// How the conversation ended.
    type Output;

    /// One wake-up: moves the conversation on as far as the socket allows without waiting,
    /// then either ends it or sets `deadline` to when it must be stepped again even if its
    /// socket stays silent (it may also be stepped earlier, for nothing).
    fn step(
        &mut self,
        socket: &mut Socket,
        buffer: &mut [u8],
        deadline: &mut Option<Instant>,
    ) -> Poll<Self::Output>;

    /// How the conversation ends when Ctrl-C comes first.
    fn interrupted(&self) -> Self::Output;
}

/// A conversation's socket as its steps see it: reads and writes that never block, and that
/// skip the system call when the kernel's last word already says it would block.
pub struct Socket {
    stream: mio::net::TcpStream,
    /// A read came back short since the last readable event: the receive queue is empty,
    /// and the next data to arrive raises a new event (epoll is edge-triggered).
    drained: bool,
    /// Likewise for writes: the send buffer was full.
    full: bool,
    /// The peer's FIN has been seen: reads go on until they return 0.
    read_closed: bool,
}

impl Socket {
    /// Reads into `buffer`: `Pending` when nothing is there yet, `Ready(Ok(0))` at the peer's
    /// end of stream.
    pub fn read(&mut self, buffer: &mut [u8]) -> Poll<io::Result<usize>> {
        if self.drained {
            return Poll::Pending;
        }
        let read = without_blocking(|| self.stream.read(buffer));
        self.drained = match read {
            Poll::Pending => true,
            Poll::Ready(Ok(n)) => n > 0 && n < buffer.len() && !self.read_closed,
            Poll::Ready(Err(_)) => false,
        };
        read
    }

    /// Writes from `bytes`: `Pending` when the send buffer is full.
    pub fn write(&mut self, bytes: &[u8]) -> Poll<io::Result<usize>> {
        if self.full {
            return Poll::Pending;
        }
        let written = without_blocking(|| self.stream.write(bytes));
        self.full = match written {
            Poll::Pending => true,
            Poll::Ready(Ok(n)) => n < bytes.len(),
            Poll::Ready(Err(_)) => false,
        };
        written
    }

    /// Shuts down the sending side (a FIN after what was written).
    pub fn shutdown_write(&mut self) -> io::Result<()> {
        self.stream.shutdown(Shutdown::Write)
    }

    /// Takes in what an event said about the socket.
    fn note(&mut self, event: &mio::event::Event) {
        if event.is_readable() || event.is_read_closed() || event.is_error() {
            self.drained = false;
        }
        if event.is_writable() || event.is_write_closed() || event.is_error() {
            self.full = false;
        }
        self.read_closed |= event.is_read_closed();
    }
}

/// Makes a non-blocking `call`, again when a signal interrupted it: `Pending` when it
/// would block.
fn without_blocking(mut call: impl FnMut() -> io::Result<usize>) -> Poll<io::Result<usize>> {
    loop {
        match call() {
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            done => return Poll::Ready(done),
        }
    }
}

/// A conversation in the loop.
struct Entry<E: Exchange> {
    exchange: E,
    socket: Socket,
    /// When it must next be stepped, as its last step said.
    deadline: Option<Instant>,
    /// How it ended, until its owner collects it.
    output: Option<E::Output>,
    /// Its owner, to wake when it ends.
    owner: Option<Waker>,
}

/// The loop's epoll instance, and its descriptor read once so that tokio can ask for it
/// without borrowing the instance.
struct Instance {
    poll: RefCell<mio::Poll>,
    fd: RawFd,
}

impl AsRawFd for Instance {
    fn as_raw_fd(&self) -> RawFd {
        self.fd
    }
}

/// The event loop of one worker's conversations (see the module's documentation). Runs as
/// one task ([`Reactor::run`]) on the worker's `LocalSet`.
pub struct Reactor<E: Exchange> {
    /// The loop's epoll instance, registered with tokio: readable when any of its sockets
    /// has an event.
    instance: AsyncFd<Instance>,
    entries: RefCell<Slab<Entry<E>>>,
    /// Each conversation's deadline, earliest first, with its entry. Only steps set them,
    /// and steps run only in the loop's own task, which looks at the earliest before it waits.
    deadlines: RefCell<BTreeSet<(Instant, usize)>>,
    /// Ctrl-C.
    stop: Rc<LocalStop>,
    /// Where the conversations read: one buffer for them all, since a step never waits.
    buffer: RefCell<Vec<u8>>,
}

impl<E: Exchange> Reactor<E> {
    /// A loop for up to `conversations` at once (room for more is made when needed), which
    /// read into a buffer of `buffer_bytes`, ended by `cancel`. Must be made within the
    /// worker's `LocalSet`.
    pub fn new(cancel: &CancellationToken, conversations: usize, buffer_bytes: usize) -> io::Result<Self> {
        let poll = mio::Poll::new()?;
        let fd = poll.as_raw_fd();
        let instance = Instance {
            poll: RefCell::new(poll),
            fd,
        };
        // SAFETY: the descriptor is the instance's own, which the `AsyncFd` owns: it stays
        // open, and the same, until the `AsyncFd` is dropped.
        let instance = unsafe { AsyncFd::register_with_interest(instance, tokio::io::Interest::READABLE) }?;
        Ok(Reactor {
            instance,
            // Sized once: a table doubling as ten thousand clients connect would hold its old
            // and new copies at once.
            entries: RefCell::new(Slab::with_capacity(conversations)),
            deadlines: RefCell::new(BTreeSet::new()),
            stop: LocalStop::watching(cancel),
            buffer: RefCell::new(vec![0; buffer_bytes]),
        })
    }

    /// Runs `exchange` on `stream` until it ends, and hands both back with how it ended, or
    /// with why the stream could not be handed over or back.
    pub async fn converse(&self, exchange: E, stream: TcpStream) -> (E, io::Result<(E::Output, TcpStream)>) {
        if self.stop.stopped() {
            let output = exchange.interrupted();
            return (exchange, Ok((output, stream)));
        }
        let stream = match stream.into_std() {
            Ok(stream) => mio::net::TcpStream::from_std(stream),
            Err(err) => return (exchange, Err(err)),
        };
        let mut socket = Socket {
            stream,
            drained: false,
            full: false,
            read_closed: false,
        };
        let token = self.entries.borrow().vacant_key();
        let registered = self.with_registry(|registry| {
            registry.register(
                &mut socket.stream,
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
        });
        if let Err(err) = registered {
            return (exchange, Err(err));
        }
        self.entries.borrow_mut().insert(Entry {
            exchange,
            socket,
            deadline: None,
            output: None,
            owner: None,
        });
        // Removes the entry if this future is dropped before it ends.
        let mut handed = Handed {
            reactor: self,
            token: Some(token),
        };
        let (mut ended, output) = poll_fn(|cx| {
            let mut entries = self.entries.borrow_mut();
            // Only this future and its guard remove the entry.
            let entry = &mut entries[token];
            if let Some(output) = entry.output.take() {
                return Poll::Ready((entries.remove(token), output));
            }
            match &entry.owner {
                Some(owner) if owner.will_wake(cx.waker()) => {}
                _ => entry.owner = Some(cx.waker().clone()),
            }
            Poll::Pending
        })
        .await;
        handed.token = None;
        let handed_back = self.with_registry(|registry| registry.deregister(&mut ended.socket.stream));
        let stream = handed_back.and_then(|()| TcpStream::from_std(ended.socket.stream.into()));
        (ended.exchange, stream.map(|stream| (output, stream)))
    }

    /// The loop itself: waits for events, deadlines and Ctrl-C, and steps the conversations
    /// they concern. Returns once Ctrl-C has ended every conversation it held.
    pub async fn run(&self) {
        let mut events = Events::with_capacity(EVENTS_PER_POLL);
        let mut timer = pin!(tokio::time::sleep(IDLE_TIMER));
        let mut timer_at = None;
        loop {
            let woke = poll_fn(|cx| {
                if self.stop.poll_stopped(cx) {
                    return Poll::Ready(None);
                }
                if let Some(at) = self.earliest_deadline()
                    && timer_at != Some(at)
                {
                    timer.as_mut().reset(at);
                    timer_at = Some(at);
                }
                let timer_fired = timer.as_mut().poll(cx).is_ready();
                if timer_fired {
                    timer_at = None;
                    timer.as_mut().reset(Instant::now() + IDLE_TIMER);
                }
                match self.instance.poll_read_ready(cx) {
                    Poll::Ready(Ok(ready)) => Poll::Ready(Some(Some(ready))),
                    // Only a runtime shutting down fails this, every time: end rather than spin.
                    Poll::Ready(Err(_)) => Poll::Ready(None),
                    Poll::Pending if timer_fired => Poll::Ready(Some(None)),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            // Ctrl-C (or a runtime going away): every conversation ends as interrupted.
            let Some(guard) = woke else {
                self.interrupt_all();
                return;
            };
            if let Some(mut guard) = guard {
                let polled = self
                    .instance
                    .get_ref()
                    .poll
                    .borrow_mut()
                    .poll(&mut events, Some(Duration::ZERO));
                // Fewer events than room for them: the instance is empty for now, and the next
                // event raises its readiness again. (A failed call leaves it to the next event
                // or deadline rather than spin.)
                let more = polled.is_ok() && events.iter().count() == EVENTS_PER_POLL;
                if !more {
                    guard.clear_ready();
                }
                for event in &events {
                    self.step(event.token().0, Some(event));
                }
                self.step_due(Instant::now());
                if more {
                    // The worker's other clients (connecting, say) get their turn.
                    tokio::task::yield_now().await;
                }
                continue;
            }
            self.step_due(Instant::now());
        }
    }

    /// Calls `work` with the instance's registry, where sockets join and leave it.
    fn with_registry<T>(&self, work: impl FnOnce(&mio::Registry) -> T) -> T {
        work(self.instance.get_ref().poll.borrow().registry())
    }

    /// The earliest deadline.
    fn earliest_deadline(&self) -> Option<Instant> {
        self.deadlines.borrow().first().map(|(at, _)| *at)
    }

    /// Steps every conversation whose deadline has come.
    fn step_due(&self, now: Instant) {
        loop {
            let due = {
                let mut deadlines = self.deadlines.borrow_mut();
                match deadlines.first() {
                    Some((at, _)) if *at <= now => deadlines.pop_first(),
                    _ => None,
                }
            };
            let Some((_, token)) = due else {
                return;
            };
            // Its deadline is spent: the step sets the next one.
            if let Some(entry) = self.entries.borrow_mut().get_mut(token) {
                entry.deadline = None;
            }
            self.step(token, None);
        }
    }

    /// Moves conversation `token`'s deadline from `before` to `after` in the set.
    fn move_deadline(&self, token: usize, before: Option<Instant>, after: Option<Instant>) {
        if before == after {
            return;
        }
        let mut deadlines = self.deadlines.borrow_mut();
        if let Some(at) = before {
            deadlines.remove(&(at, token));
        }
        if let Some(at) = after {
            deadlines.insert((at, token));
        }
    }

    /// Steps conversation `token` after `event` (none: its deadline came).
    fn step(&self, token: usize, event: Option<&mio::event::Event>) {
        let mut entries = self.entries.borrow_mut();
        let Some(entry) = entries.get_mut(token) else {
            return;
        };
        if entry.output.is_some() {
            return;
        }
        if let Some(event) = event {
            entry.socket.note(event);
        }
        let before = entry.deadline;
        let mut buffer = self.buffer.borrow_mut();
        match entry
            .exchange
            .step(&mut entry.socket, &mut buffer, &mut entry.deadline)
        {
            Poll::Ready(output) => {
                entry.output = Some(output);
                entry.deadline = None;
                if let Some(owner) = entry.owner.take() {
                    owner.wake();
                }
            }
            Poll::Pending => {}
        }
        self.move_deadline(token, before, entry.deadline);
    }

    /// Ends every conversation as Ctrl-C does.
    fn interrupt_all(&self) {
        self.deadlines.borrow_mut().clear();
        for (_, entry) in self.entries.borrow_mut().iter_mut() {
            entry.deadline = None;
            if entry.output.is_none() {
                entry.output = Some(entry.exchange.interrupted());
                if let Some(owner) = entry.owner.take() {
                    owner.wake();
                }
            }
        }
    }
}

/// A conversation handed to a [`Reactor`]: removed from it if its owner goes away first.
struct Handed<'r, E: Exchange> {
    reactor: &'r Reactor<E>,
    token: Option<usize>,
}

impl<E: Exchange> Drop for Handed<'_, E> {
    fn drop(&mut self) {
        if let Some(token) = self.token.take()
            && let Some(mut entry) = self.reactor.entries.borrow_mut().try_remove(token)
        {
            self.reactor.move_deadline(token, entry.deadline, None);
            let _ = self
                .reactor
                .with_registry(|registry| registry.deregister(&mut entry.socket.stream));
        }
    }
}

/// Ctrl-C as the loop sees it: a flag and a waker, set by a task that waits on the run's
/// token. Polling the token itself takes its mutex, twice, each time the loop wakes; this
/// is a `Cell` read, since the loop and that task share one thread.
struct LocalStop {
    stopped: Cell<bool>,
    waker: RefCell<Option<Waker>>,
}

impl LocalStop {
    /// A stop set when `cancel` fires, by a task spawned on the current `LocalSet`.
    fn watching(cancel: &CancellationToken) -> Rc<LocalStop> {
        let stop = Rc::new(LocalStop {
            stopped: Cell::new(false),
            waker: RefCell::new(None),
        });
        let (watched, cancel) = (Rc::clone(&stop), cancel.clone());
        tokio::task::spawn_local(async move {
            cancel.cancelled().await;
            watched.stopped.set(true);
            let waker = watched.waker.borrow_mut().take();
            if let Some(waker) = waker {
                waker.wake();
            }
        });
        stop
    }

    /// Whether Ctrl-C came.
    fn stopped(&self) -> bool {
        self.stopped.get()
    }

    /// Whether Ctrl-C came; if not, the task polling is woken when it does.
    fn poll_stopped(&self, cx: &Context<'_>) -> bool {
        if self.stopped.get() {
            return true;
        }
        let mut kept = self.waker.borrow_mut();
        match kept.as_ref() {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => *kept = Some(cx.waker().clone()),
        }
        false
    }
}

/// What tests of conversations need: a worker's runtime, and a reactor running on it.
#[cfg(test)]
pub mod testing {
    use super::*;

    /// Runs `work` where a worker runs its clients: a single-threaded runtime's `LocalSet`.
    pub fn on_a_worker<F: Future>(work: F) -> F::Output {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        tokio::task::LocalSet::new().block_on(&runtime, work)
    }

    /// A reactor whose loop runs on the current `LocalSet`, ended by `cancel`.
    pub fn running<E: Exchange + 'static>(cancel: &CancellationToken) -> Rc<Reactor<E>> {
        let reactor = Rc::new(Reactor::new(cancel, 1, 64 * 1024).expect("an epoll instance"));
        let looping = Rc::clone(&reactor);
        tokio::task::spawn_local(async move { looping.run().await });
        reactor
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    use super::*;

    /// Reads until end of stream, or gives up at `until`; each byte read moves its deadline
    /// a millisecond earlier, as a deadline that keeps moving would.
    struct ReadToEnd {
        received: Vec<u8>,
        steps: u32,
        until: Instant,
    }

    impl Exchange for ReadToEnd {
        type Output = &'static str;

        fn step(
            &mut self,
            socket: &mut Socket,
            buffer: &mut [u8],
            deadline: &mut Option<Instant>,
        ) -> Poll<&'static str> {
            self.steps += 1;
            loop {
                match socket.read(buffer) {
                    Poll::Ready(Ok(0)) => return Poll::Ready("end of stream"),
                    Poll::Ready(Ok(n)) => self.received.extend_from_slice(&buffer[..n]),
                    Poll::Ready(Err(_)) => return Poll::Ready("error"),
                    Poll::Pending => break,
                }
            }
            if Instant::now() >= self.until {
                return Poll::Ready("deadline");
            }
            *deadline = Some(self.until - Duration::from_millis(self.received.len() as u64));
            Poll::Pending
        }

        fn interrupted(&self) -> &'static str {
            "interrupted"
        }
    }

    /// Runs `exchange` in a reactor against a peer that `peer` plays on a blocking socket
    /// from its own thread, with `cancel` fired after `cancel_after` if given.
    fn converse_with(
        peer: impl FnOnce(std::net::TcpStream) + Send + 'static,
        until: Duration,
        cancel_after: Option<Duration>,
    ) -> (ReadToEnd, &'static str, Duration, usize) {
        testing::on_a_worker(async {
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
            let address = listener.local_addr().expect("address");
            let connecting = std::thread::spawn(move || {
                let stream = std::net::TcpStream::connect(address).expect("connect");
                peer(stream);
            });
            let (stream, _) = listener.accept().await.expect("accept");
            let cancel = CancellationToken::new();
            let reactor = testing::running(&cancel);
            if let Some(after) = cancel_after {
                let cancel = cancel.clone();
                tokio::task::spawn_local(async move {
                    tokio::time::sleep(after).await;
                    cancel.cancel();
                });
            }
            // The most deadlines the loop holds at once, looked at every millisecond.
            let held = Rc::new(std::cell::Cell::new(0));
            let (watched, most) = (Rc::clone(&reactor), Rc::clone(&held));
            let watching = tokio::task::spawn_local(async move {
                loop {
                    most.set(most.get().max(watched.deadlines.borrow().len()));
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            });
            let started = Instant::now();
            let exchange = ReadToEnd {
                received: Vec::new(),
                steps: 0,
                until: started + until,
            };
            let (exchange, ended) = reactor.converse(exchange, stream).await;
            let (output, mut stream) = ended.expect("the stream handed back");
            let took = started.elapsed();
            watching.abort();
            assert!(reactor.deadlines.borrow().is_empty(), "a deadline left behind");
            // The stream is tokio's again, and still works (unless the peer closed it).
            let mut rest = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
            connecting.join().expect("the peer's thread");
            (exchange, output, took, held.get())
        })
    }

    /// A peer that says nothing for `wait`, then closes.
    fn silent_for(wait: Duration) -> impl FnOnce(std::net::TcpStream) + Send + 'static {
        move |peer| {
            std::thread::sleep(wait);
            drop(peer);
        }
    }

    #[test]
    fn bytes_then_fin_in_one_go_are_read_to_the_end() {
        // The FIN may be in before the first read: the short read must not stop the reading.
        for _ in 0..20 {
            let (exchange, output, _, _) = converse_with(
                |mut peer| {
                    let _ = peer.write_all(b"hello");
                },
                Duration::from_secs(5),
                None,
            );
            assert_eq!(output, "end of stream");
            assert_eq!(exchange.received, b"hello");
        }
    }

    #[test]
    fn bytes_in_pieces_each_wake_the_conversation() {
        let (exchange, output, _, _) = converse_with(
            |mut peer| {
                for piece in [&b"one "[..], b"two ", b"three"] {
                    let _ = peer.write_all(piece);
                    std::thread::sleep(Duration::from_millis(30));
                }
            },
            Duration::from_secs(5),
            None,
        );
        assert_eq!(output, "end of stream");
        assert_eq!(exchange.received, b"one two three");
        assert!(exchange.steps >= 2, "{} steps", exchange.steps);
    }

    #[test]
    fn a_silent_peer_ends_the_conversation_at_its_deadline() {
        let (exchange, output, took, _) = converse_with(
            silent_for(Duration::from_millis(600)),
            Duration::from_millis(200),
            None,
        );
        // Before the peer closes at 600 ms.
        assert_eq!(output, "deadline");
        assert!(took >= Duration::from_millis(200), "{took:?}");
        // Woken by its first event and by its deadline, not spun.
        assert!(exchange.steps <= 4, "{} steps", exchange.steps);
    }

    #[test]
    fn ctrl_c_ends_a_waiting_conversation_at_once() {
        let (_, output, _, _) = converse_with(
            silent_for(Duration::from_millis(400)),
            Duration::from_secs(10),
            Some(Duration::from_millis(100)),
        );
        // Before the peer closes at 400 ms.
        assert_eq!(output, "interrupted");
    }

    #[test]
    fn a_deadline_that_keeps_moving_is_held_once() {
        let (exchange, output, _, held) = converse_with(
            |mut peer| {
                let _ = peer.set_nodelay(true);
                for _ in 0..100 {
                    let _ = peer.write_all(b"x");
                    std::thread::sleep(Duration::from_millis(1));
                }
            },
            Duration::from_secs(60),
            None,
        );
        assert_eq!(output, "end of stream");
        assert_eq!(exchange.received.len(), 100);
        assert!(exchange.steps > 10, "{} steps", exchange.steps);
        assert_eq!(held, 1);
    }
}
