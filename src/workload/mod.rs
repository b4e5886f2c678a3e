//! Client behaviours and the driver that runs them: every simulated client's socket is
//! opened here (readiness and still-up probes are `supervise::reach`'s; the servers labrun
//! plays for client programs are `clientprog`'s).
//!
//! [`drive`] deals the simulated clients to worker threads, runs each as a tokio task on its
//! worker's single-threaded runtime, starts them on the group's schedule and collects a
//! [`ClientRecord`] from each. An echo client's conversation, the per-message hot path, is
//! stepped straight from its socket's events by the worker's [`reactor`] instead of being
//! woken as a task. Round trips go into the worker's own histograms (see [`tally`]), so no
//! lock and no shared counter sits on the per-message path.

mod accept_queue;
mod activity;
mod broadcast;
mod chat;
mod client;
mod datagram;
mod echo;
mod pacer;
mod payload;
pub mod probe;
mod reactor;
pub mod record;
pub mod room;
mod schedule;
mod tally;

use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use pacer::PacingFigures;
pub use record::{ClientEnd, ClientErrorKind, ClientRecord, DatagramTally};
pub use tally::MessageCount;

use crate::histogram::Latency;
use crate::scenario::{GroupPlan, ServersUnderTest, Transport, WorkloadKind};
use crate::workload::room::{MemberSpec, Room, RoomOutcome};
use pacer::ConnectPacer;
use tally::WorkerTally;

/// The receive buffer of each worker's echo conversations: large enough that big echoes
/// arrive in few reads.
const WORKER_RECEIVE_BUFFER_BYTES: usize = 64 * 1024;

/// Connects in progress at once per worker: the default accept queue of a Python server
/// (`listen()` without an argument) is 128.
const CONNECT_WINDOW: usize = 128;

/// The clients' side of a run.
pub struct Drive {
    /// One record per client, ordered by group then client number.
    pub records: Vec<ClientRecord>,
    /// Round-trip times of each group, merged from every worker.
    pub rtt: Vec<Latency>,
    /// The ledger of each broadcast room.
    pub rooms: Vec<RoomOutcome>,
    /// How each server's connects were paced to its accept queue (indexed like
    /// `ServersUnderTest::servers`); `None` where its listener could not be read, or it had no TCP clients.
    pub pacing: Vec<Option<PacingFigures>>,
}

/// Shared inputs of a drive.
pub struct DriveSetup<'a> {
    /// The servers under test and the client groups to drive at them.
    pub under_test: &'a ServersUnderTest,
    /// Seed for payload generation.
    pub seed: u64,
    /// Address of each server, indexed like `ServersUnderTest::servers`.
    pub addresses: &'a [SocketAddr],
    /// Time zero of the run; timelines are offsets from it.
    pub run_start: Instant,
    /// When every client must stop.
    pub run_deadline: Instant,
    /// Fires on Ctrl-C.
    pub cancel: CancellationToken,
    /// Counts completed messages for the progress display.
    pub progress: Arc<tally::MessageCount>,
    /// Worker threads to spread the clients over (at most one per client).
    pub workers: usize,
}

/// One client to run, in a form that can move to its worker thread.
struct Job {
    group: Arc<GroupPlan>,
    group_index: usize,
    index: u32,
    address: SocketAddr,
    server_activity: Arc<activity::ServerActivity>,
    start_at: Instant,
    kind: JobKind,
    pacer: Option<Arc<ConnectPacer>>,
}

/// Which workload a job runs, with what it shares with other clients.
enum JobKind {
    Echo,
    Datagrams,
    Chat(chat::Seat),
    Broadcast(broadcast::Membership),
}

/// What every worker's clients share.
#[derive(Clone)]
struct Shared {
    seed: u64,
    run_start: Instant,
    run_deadline: Instant,
    cancel: CancellationToken,
    progress: Arc<tally::MessageCount>,
    well_behaved_done: CancellationToken,
    /// Well-behaved clients still running; the last one to finish fires `well_behaved_done`.
    well_behaved_left: Arc<AtomicU64>,
    groups: usize,
}

/// What one worker thread hands back.
struct WorkerOutcome {
    records: Vec<ClientRecord>,
    rtt: Vec<Latency>,
}

/// Runs every client group of the plan and waits for all clients to finish.
///
/// The clients are dealt round-robin to `setup.workers` threads, each with a
/// single-threaded runtime of its own, the way a hand-written epoll client keeps one event
/// loop per core: a client's wake-ups never cross threads, and each worker records round
/// trips into its own histograms, merged here once everyone is done. The caller's runtime
/// stays free for the servers' events meanwhile.
pub async fn drive(setup: DriveSetup<'_>) -> io::Result<Drive> {
    let under_test = setup.under_test;
    for group in &under_test.groups {
        payload::prepare(group.payload);
    }
    let started = Instant::now();
    let operators: Vec<Arc<Vec<String>>> = under_test
        .servers
        .iter()
        .map(|server| Arc::new(server.operator_lines()))
        .collect();
    let rooms = open_rooms(under_test);
    let activities: Vec<Arc<activity::ServerActivity>> = under_test
        .servers
        .iter()
        .map(|_| Arc::new(activity::ServerActivity::new(setup.run_start)))
        .collect();
    let pacers = connect_pacers(under_test, setup.addresses);
    let places = Places {
        addresses: setup.addresses,
        activities: &activities,
        pacers: &pacers,
        rooms: &rooms,
        operators: &operators,
    };
    let (jobs, well_behaved) = jobs(under_test, &places, started);
    let shared = Shared {
        seed: setup.seed,
        run_start: setup.run_start,
        run_deadline: setup.run_deadline,
        cancel: setup.cancel.clone(),
        progress: Arc::clone(&setup.progress),
        well_behaved_done: CancellationToken::new(),
        well_behaved_left: Arc::new(AtomicU64::new(well_behaved)),
        groups: under_test.groups.len(),
    };
    if well_behaved == 0 {
        // A shard may hold only faulty clients: nobody is left for stalled ones to wait for.
        shared.well_behaved_done.cancel();
    }
    let WorkerOutcome { mut records, rtt } = run_workers(jobs, shared, setup.workers).await?;
    let pacing: Vec<Option<PacingFigures>> = pacers.iter().map(|p| p.as_ref().map(|p| p.figures())).collect();
    for record in &mut records {
        if let Some(figures) = pacing[under_test.groups[record.group].server] {
            pacer::blame_the_kernel(record, figures.backlog);
        }
    }
    records.sort_by_key(|r| (r.group, r.index));
    let rooms = rooms
        .iter()
        .zip(&under_test.servers)
        .filter_map(|(room, server)| room.as_ref().map(|open| open.room.finish(&server.name)))
        .collect();
    Ok(Drive {
        records,
        rtt,
        rooms,
        pacing,
    })
}

/// Where each server's clients go and what they share: its address, its activity, its
/// connect pacer, its broadcast room and its operator's lines, indexed by server.
struct Places<'a> {
    addresses: &'a [SocketAddr],
    activities: &'a [Arc<activity::ServerActivity>],
    pacers: &'a [Option<Arc<ConnectPacer>>],
    rooms: &'a [Option<OpenRoom>],
    operators: &'a [Arc<Vec<String>>],
}

/// A connect pacer for each server that TCP clients connect to (none where the accept
/// queue cannot be watched).
fn connect_pacers(under_test: &ServersUnderTest, addresses: &[SocketAddr]) -> Vec<Option<Arc<ConnectPacer>>> {
    (0..under_test.servers.len())
        .map(|server| {
            let tcp_clients = under_test
                .groups
                .iter()
                .any(|g| g.server == server && g.transport == Transport::Tcp);
            tcp_clients
                .then(|| ConnectPacer::open(addresses[server]))
                .flatten()
                .map(Arc::new)
        })
        .collect()
}

/// Every client of this process's share of the run as a job, and how many of them are
/// well-behaved (the ones a stalled faulty client waits for).
fn jobs(under_test: &ServersUnderTest, places: &Places, started: Instant) -> (Vec<Job>, u64) {
    let mut sessions = chat::Sessions::new(under_test.servers.len());
    let mut jobs = Vec::new();
    let mut well_behaved = 0u64;
    for (group_index, group) in under_test.groups.iter().enumerate() {
        let shared_group = Arc::new(group.clone());
        for index in (0..group.count).filter(|&i| under_test.runs(group_index, i)) {
            if !group.is_faulty(index) {
                well_behaved += 1;
            }
            let kind = match group.workload {
                WorkloadKind::Echo if group.transport == Transport::Udp => JobKind::Datagrams,
                WorkloadKind::Echo => JobKind::Echo,
                WorkloadKind::Chat => JobKind::Chat(sessions.seat(group, &places.operators[group.server])),
                WorkloadKind::Broadcast => {
                    let open = places.rooms[group.server]
                        .as_ref()
                        .expect("a room for every broadcast server");
                    JobKind::Broadcast(broadcast::Membership {
                        room: Arc::clone(&open.room),
                        id: open.first_ids[group_index] + index,
                        load: group.load.then_some(open.pause),
                    })
                }
            };
            jobs.push(Job {
                group: Arc::clone(&shared_group),
                group_index,
                index,
                address: places.addresses[group.server],
                server_activity: Arc::clone(&places.activities[group.server]),
                start_at: started + group.start_after + group.start.offset(index, group.count),
                kind,
                pacer: places.pacers[group.server].clone(),
            });
        }
    }
    (jobs, well_behaved)
}

/// From this many clients on, the clients' side, not the server, is what one thread
/// cannot keep up with: each wake-up costs the client about what the server spends on the
/// echo, and the worker's thread is pegged while the server waits for it. Measured on 2
/// CPUs against a one-threaded C epoll server, 64-byte closed-loop echo: at 100
/// connections one worker gives 207k msgs/s and two 181k (the second worker takes the
/// server's CPU); at 1000, one gives 130k and two 152k; the two cross near 400.
const MANY_CLIENTS: u64 = 500;

/// Client threads when `--workers` is not given: half the CPUs (at least one), leaving the
/// rest to the servers under test, which share the machine; every CPU for a load of
/// [`MANY_CLIENTS`] or more, where the clients' own wake-ups are the bottleneck.
pub fn default_workers(clients: u64) -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    match clients >= MANY_CLIENTS {
        true => cpus,
        false => (cpus / 2).max(1),
    }
}

/// Deals `jobs` round-robin to up to `workers` threads, waits for every one of them, and
/// gathers their records and round-trip histograms (one per group).
async fn run_workers(jobs: Vec<Job>, shared: Shared, workers: usize) -> io::Result<WorkerOutcome> {
    let groups = shared.groups;
    let workers = workers.clamp(1, jobs.len().max(1));
    let mut dealt: Vec<Vec<Job>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, job) in jobs.into_iter().enumerate() {
        dealt[i % workers].push(job);
    }
    let mut running = Vec::with_capacity(workers);
    for (number, jobs) in dealt.into_iter().enumerate() {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        let shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name(format!("labrun-clients-{number}"))
            .spawn(move || {
                let outcome = run_worker(jobs, shared, number, workers);
                let _ = sender.send(outcome);
            })?;
        running.push((thread, receiver));
    }
    let mut gathered = WorkerOutcome {
        records: Vec::new(),
        rtt: vec![Latency::default(); groups],
    };
    // Every worker is waited for, even after one failed to start, so none is left running.
    let mut failure = None;
    for (thread, receiver) in running {
        match receiver.await {
            Ok(Ok(outcome)) => {
                gathered.records.extend(outcome.records);
                for (total, part) in gathered.rtt.iter_mut().zip(&outcome.rtt) {
                    total.merge(part);
                }
            }
            Ok(Err(err)) => failure = Some(err),
            // The worker dropped its sender without answering: it panicked. Carry the panic
            // to the caller, whose guards tear the servers down on the way out.
            Err(_) => match thread.join() {
                Err(panic) => std::panic::resume_unwind(panic),
                Ok(()) => unreachable!("a worker that returns always answers"),
            },
        }
    }
    match failure {
        Some(err) => Err(err),
        None => Ok(gathered),
    }
}

/// One worker thread: a single-threaded runtime running its share of the clients.
fn run_worker(jobs: Vec<Job>, shared: Shared, worker: usize, workers: usize) -> io::Result<WorkerOutcome> {
    // Sockets and timers only: signals and child processes are the main runtime's business.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    let local = tokio::task::LocalSet::new();
    let tally = Rc::new(WorkerTally::new(
        shared.groups,
        Arc::clone(&shared.progress),
        worker,
        workers,
    ));
    let connect_window = Rc::new(tokio::sync::Semaphore::new(CONNECT_WINDOW));
    let records = local.block_on(&runtime, async {
        let conversations = jobs
            .iter()
            .filter(|job| matches!(job.kind, JobKind::Echo))
            .count();
        // Only a worker with echo clients needs the loop (and its buffer and its task).
        let reactor = match conversations {
            0 => None,
            _ => Some(Rc::new(reactor::Reactor::new(
                &shared.cancel,
                conversations,
                WORKER_RECEIVE_BUFFER_BYTES,
            )?)),
        };
        if let Some(reactor) = &reactor {
            let running = Rc::clone(reactor);
            tokio::task::spawn_local(async move { running.run().await });
        }
        let mut tasks = JoinSet::new();
        for job in jobs {
            let ctx = client::ClientContext {
                group: job.group,
                group_index: job.group_index,
                index: job.index,
                address: job.address,
                server_activity: job.server_activity,
                seed: shared.seed,
                run_start: shared.run_start,
                start_at: job.start_at,
                run_deadline: shared.run_deadline,
                cancel: shared.cancel.clone(),
                tally: Rc::clone(&tally),
                connect_window: Rc::clone(&connect_window),
                pacer: job.pacer,
                well_behaved_done: shared.well_behaved_done.clone(),
            };
            match job.kind {
                JobKind::Datagrams => tasks.spawn_local(datagram::run(ctx)),
                JobKind::Echo => {
                    let reactor = reactor.as_ref().expect("a worker with echo jobs has a reactor");
                    tasks.spawn_local(echo::run(ctx, Rc::clone(reactor)))
                }
                JobKind::Chat(seat) => tasks.spawn_local(chat::run(ctx, seat)),
                JobKind::Broadcast(membership) => tasks.spawn_local(broadcast::run(ctx, membership)),
            };
        }
        let mut records = Vec::with_capacity(tasks.len());
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(record) => {
                    if record.fault.is_none() && shared.well_behaved_left.fetch_sub(1, Ordering::AcqRel) == 1
                    {
                        shared.well_behaved_done.cancel();
                    }
                    records.push(record);
                }
                Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
                Err(_) => unreachable!("client tasks are never aborted"),
            }
        }
        Ok::<_, io::Error>(records)
    })?;
    Ok(WorkerOutcome {
        records,
        rtt: tally.finish(),
    })
}

/// A broadcast server's room, as its clients find it.
struct OpenRoom {
    room: Arc<Room>,
    /// The first room id of each group: members are numbered across the room's groups, in
    /// plan order.
    first_ids: Vec<u32>,
    /// How its load members pause.
    pause: broadcast::LoadPause,
}

/// A room for each server that has broadcast clients.
fn open_rooms(under_test: &ServersUnderTest) -> Vec<Option<OpenRoom>> {
    (0..under_test.servers.len())
        .map(|server| {
            let mut members = Vec::new();
            let mut first_ids = vec![0u32; under_test.groups.len()];
            let mut shortest_timeout = Duration::MAX;
            for (group_index, group) in under_test.groups.iter().enumerate() {
                if group.server != server || group.workload != WorkloadKind::Broadcast {
                    continue;
                }
                first_ids[group_index] = members.len() as u32;
                shortest_timeout = shortest_timeout.min(group.reply_timeout);
                members.extend((0..group.count).map(|index| MemberSpec {
                    name: format!("{}#{}", group.name, index + 1),
                    group: group_index,
                    in_barrier: group.start_after.is_zero()
                        && group.start.offset(index, group.count).is_zero(),
                    load: group.load,
                }));
            }
            let include_sender = under_test
                .groups
                .iter()
                .any(|g| g.server == server && g.workload == WorkloadKind::Broadcast && g.include_sender);
            (!members.is_empty()).then(|| OpenRoom {
                room: Arc::new(Room::new(members, under_test.groups.len(), include_sender)),
                first_ids,
                pause: broadcast::LoadPause::new(shortest_timeout),
            })
        })
        .collect()
}

/// Raises the soft open-files limit to the hard limit and returns the limit now in force:
/// every simulated client is a socket, and the common default of 1024 would cap a run at
/// about a thousand clients.
pub fn raise_open_files_limit() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum
        && setrlimit(
            Resource::Nofile,
            Rlimit {
                current: limit.maximum,
                maximum: limit.maximum,
            },
        )
        .is_ok()
    {
        return limit.maximum.unwrap_or(u64::MAX);
    }
    limit.current.unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_clients_get_every_cpu_and_few_leave_half_to_the_servers() {
        let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        assert_eq!(default_workers(1), (cpus / 2).max(1));
        assert_eq!(default_workers(MANY_CLIENTS - 1), (cpus / 2).max(1));
        assert_eq!(default_workers(MANY_CLIENTS), cpus);
        assert_eq!(default_workers(10_000), cpus);
    }
}
