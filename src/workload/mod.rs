//! Client behaviours and the driver that runs them: the only module that opens client sockets.
//!
//! [`drive`] spawns one tokio task per simulated client, starts them on the group's schedule
//! and collects a [`ClientRecord`] from each. Clients share nothing mutable but a relaxed
//! progress counter; their samples come back in their records and are folded into
//! histograms afterwards, so no lock sits on the per-message path.

mod broadcast;
mod chat;
mod client;
mod datagram;
mod echo;
mod payload;
pub mod probe;
pub mod record;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use payload::PayloadGenerator;
pub use record::{ClientEnd, ClientError, ClientErrorKind, ClientRecord, DatagramTally, Timeline};

use crate::scenario::{Plan, Transport, WorkloadKind};
use crate::verify::ledger::{MemberSpec, Room, RoomOutcome};

/// The clients' side of a run.
pub struct Drive {
    /// One record per client, ordered by group then client number.
    pub records: Vec<ClientRecord>,
    /// From the first client's start to the last client's end.
    pub elapsed: Duration,
    /// The ledger of each broadcast room.
    pub rooms: Vec<RoomOutcome>,
}

/// Shared inputs of a drive.
pub struct DriveSetup<'a> {
    /// The plan.
    pub plan: &'a Plan,
    /// Address of each server, indexed like `plan.servers`.
    pub addresses: &'a [SocketAddr],
    /// Time zero of the run; timelines are offsets from it.
    pub run_start: Instant,
    /// When every client must stop.
    pub run_deadline: Instant,
    /// Fires on Ctrl-C.
    pub cancel: CancellationToken,
    /// Counts completed messages for the progress display.
    pub progress: Arc<AtomicU64>,
}

/// Runs every client group of the plan concurrently and waits for all clients to finish.
pub async fn drive(setup: DriveSetup<'_>) -> Drive {
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    let well_behaved_done = CancellationToken::new();
    let operators: Vec<Arc<Vec<String>>> = setup
        .plan
        .servers
        .iter()
        .map(|server| Arc::new(server.operator_lines()))
        .collect();
    let rooms = open_rooms(setup.plan);
    let plan = setup.plan;
    let mut well_behaved_left: u64 = plan
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            (0..group.count)
                .filter(|&i| plan.runs(g, i) && !group.is_faulty(i))
                .count() as u64
        })
        .sum();
    if well_behaved_left == 0 {
        // A shard may hold only faulty clients: nobody is left for stalled ones to wait for.
        well_behaved_done.cancel();
    }
    for (group_index, group) in setup.plan.groups.iter().enumerate() {
        let shared = Arc::new(group.clone());
        for index in (0..group.count).filter(|&i| plan.runs(group_index, i)) {
            let ctx = client::ClientContext {
                group: Arc::clone(&shared),
                group_index,
                index,
                address: setup.addresses[group.server],
                seed: setup.plan.seed,
                run_start: setup.run_start,
                start_at: started + group.start_after + group.start.offset(index, group.count),
                run_deadline: setup.run_deadline,
                cancel: setup.cancel.clone(),
                progress: Arc::clone(&setup.progress),
                well_behaved_done: well_behaved_done.clone(),
            };
            match group.workload {
                WorkloadKind::Echo if group.transport == Transport::Udp => tasks.spawn(datagram::run(ctx)),
                WorkloadKind::Echo => tasks.spawn(echo::run(ctx)),
                WorkloadKind::Chat => tasks.spawn(chat::run(ctx, Arc::clone(&operators[group.server]))),
                WorkloadKind::Broadcast => {
                    let (room, ids) = rooms[group.server]
                        .as_ref()
                        .expect("a room for every broadcast server");
                    let membership = broadcast::Membership {
                        room: Arc::clone(room),
                        id: ids[group_index] + index,
                    };
                    tasks.spawn(broadcast::run(ctx, membership))
                }
            };
        }
    }
    let mut records = Vec::with_capacity(tasks.len());
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(record) => {
                if record.fault.is_none() {
                    well_behaved_left -= 1;
                    if well_behaved_left == 0 {
                        well_behaved_done.cancel();
                    }
                }
                records.push(record);
            }
            // A panicking client is a labrun bug: carry the panic to the caller, whose guards
            // tear the servers down on the way out.
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => unreachable!("client tasks are never aborted"),
        }
    }
    records.sort_by_key(|r| (r.group, r.index));
    let rooms = rooms
        .iter()
        .zip(&setup.plan.servers)
        .filter_map(|(room, server)| room.as_ref().map(|(room, _)| room.finish(&server.name)))
        .collect();
    Drive {
        records,
        elapsed: started.elapsed(),
        rooms,
    }
}

/// A room for each server that has broadcast clients, with the first room id of each group:
/// members are numbered across the room's groups, in plan order.
fn open_rooms(plan: &Plan) -> Vec<Option<(Arc<Room>, Vec<u32>)>> {
    (0..plan.servers.len())
        .map(|server| {
            let mut members = Vec::new();
            let mut first_ids = vec![0u32; plan.groups.len()];
            for (group_index, group) in plan.groups.iter().enumerate() {
                if group.server != server || group.workload != WorkloadKind::Broadcast {
                    continue;
                }
                first_ids[group_index] = members.len() as u32;
                members.extend((0..group.count).map(|index| MemberSpec {
                    name: format!("{}#{}", group.name, index + 1),
                    group: group_index,
                    in_barrier: group.start_after.is_zero()
                        && group.start.offset(index, group.count).is_zero(),
                }));
            }
            let include_sender = plan
                .groups
                .iter()
                .any(|g| g.server == server && g.workload == WorkloadKind::Broadcast && g.include_sender);
            (!members.is_empty()).then(|| {
                (
                    Arc::new(Room::new(members, plan.groups.len(), include_sender)),
                    first_ids,
                )
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
