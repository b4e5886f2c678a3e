//! Finding and killing every process a server created, including ones that left its group.
//!
//! Signalling a server's process group catches ordinary children. A program that calls
//! `setsid()` (or double-forks to daemonize) leaves the group, and its processes would
//! outlive the run. Two things close that gap: labrun makes itself a *child subreaper*, so
//! orphans of its servers are re-parented to labrun rather than to init, and teardown walks
//! the parent links in `/proc` to find every descendant, wherever its group or session.
//!
//! Everything labrun launched is therefore in labrun's own process tree. Readiness, polled
//! every few milliseconds, reads only that tree: down from labrun through the kernel's
//! `/proc/<pid>/task/<tid>/children` lists, a few files per process of the tree, not the
//! stat file of every process on the machine (hundreds, on every poll). Teardown still
//! scans all of `/proc`: a process that forks and exits in a loop moves to labrun after
//! labrun's list was read and before its stat is, so a walk down the lists can miss it,
//! while a scan in pid order still finds the child, whose pid is higher. A kernel without
//! the lists (`CONFIG_PROC_CHILDREN` off) is scanned for readiness too.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::sync::OnceLock;

use rustix::process::{Pid, Signal, WaitOptions, kill_process, waitpid};

/// Processes that were labrun's children before it launched anything, each with its start
/// time (so a reused pid is not taken for one): a server started with `server & exec labrun`
/// is one. labrun did not start them, so no sweep ever signals them or their descendants.
static INHERITED: OnceLock<HashSet<(u32, u64)>> = OnceLock::new();

/// Makes orphaned descendants re-parent to this process, so teardown can still find them,
/// after noting the children labrun inherited (see [`INHERITED`]). Called before anything
/// is launched.
pub fn become_subreaper() {
    let inherited = descendants_of(std::process::id())
        .into_iter()
        .filter_map(|pid| Some((pid, start_time(pid)?)))
        .collect();
    let _ = INHERITED.set(inherited);
    // Best effort: without it, teardown still kills everything that kept a parent link.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
}

/// Every live descendant of labrun that it launched (or that descends from what it
/// launched): the inherited ones and their trees are left out.
fn launched_descendants() -> Vec<u32> {
    let own = std::process::id();
    let Some(inherited) = INHERITED.get().filter(|set| !set.is_empty()) else {
        return descendants_of(own);
    };
    let mut links = live_links(&process_table());
    // Only a pid labrun inherited needs its start time read: the others are not skipped.
    let was_inherited = |pid: u32| {
        inherited.iter().any(|(old, _)| *old == pid)
            && start_time(pid).is_some_and(|started| inherited.contains(&(pid, started)))
    };
    links.retain(|pid, _| !was_inherited(*pid));
    descendants_in(&links, own)
}

/// Every live descendant of `root` (children, grandchildren, …), found through `/proc`.
pub fn descendants_of(root: u32) -> Vec<u32> {
    descendants_in(&live_links(&process_table()), root)
}

/// One server's processes, for readiness: its leader, the leader's descendants, and the
/// members of its process group (a double fork leaves a grandchild there, re-parented to
/// labrun), read from labrun's own tree.
pub fn family_of(leader: u32, group: Pid) -> Vec<u32> {
    let group = group.as_raw_nonzero().get() as u32;
    let table = subtree_table(std::process::id());
    let mut family: HashSet<u32> = descendants_in(&live_links(&table), leader).into_iter().collect();
    family.insert(leader);
    family.extend(
        table
            .iter()
            .filter(|(_, stat)| !stat.zombie && stat.group == group)
            .map(|(pid, _)| *pid),
    );
    family.into_iter().collect()
}

/// The descendants of `root` in a pid → parent table.
fn descendants_in(parents: &HashMap<u32, u32>, root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for (&pid, &parent) in parents {
        children.entry(parent).or_default().push(pid);
    }
    let mut found = Vec::new();
    let mut pending = vec![root];
    let mut seen = HashSet::from([root]);
    while let Some(pid) = pending.pop() {
        for &child in children.get(&pid).into_iter().flatten() {
            if seen.insert(child) {
                found.push(child);
                pending.push(child);
            }
        }
    }
    found
}

/// Sends `signal` to each process (already-gone ones are skipped).
pub fn signal_all(pids: &[u32], signal: Signal) {
    for &pid in pids {
        if let Some(pid) = Pid::from_raw(pid as i32) {
            let _ = kill_process(pid, signal);
        }
    }
}

/// Reaps those of `pids` that have become labrun's own children (re-parented orphans), so
/// no zombie lingers. Others belong to a parent that reaps them itself.
pub fn reap_adopted(pids: &[u32]) {
    for &pid in pids {
        if let Some(pid) = Pid::from_raw(pid as i32) {
            let _ = waitpid(Some(pid), WaitOptions::NOHANG);
        }
    }
}

/// Sends SIGKILL to every descendant of labrun itself (its servers and anything they left
/// behind), without reaping: safe from a panic hook or a signal handler task.
pub fn kill_descendants_of_labrun() {
    signal_all(&launched_descendants(), Signal::KILL);
}

/// The final sweep after all servers are stopped: kills whatever a server daemonized away
/// from its tree (the subreaper setting brought it back under labrun) and reaps it.
///
/// A process that forks and exits in a loop changes pid faster than a reading of `/proc`
/// can keep up (and wraps the pid space round, defeating any order), so one reading can
/// miss it: each process found is killed with its whole process group, which every later
/// generation of such a loop shares, and the sweep ends only after three readings in a row
/// find nothing.
pub fn sweep() {
    let own_group = rustix::process::getpgrp();
    let mut empty_readings = 0;
    for _ in 0..100 {
        let left = launched_descendants();
        if left.is_empty() {
            empty_readings += 1;
            if empty_readings == 3 {
                return;
            }
        } else {
            empty_readings = 0;
            for group in groups_of(&left).into_iter().filter(|g| *g != own_group) {
                let _ = rustix::process::kill_process_group(group, Signal::KILL);
            }
            signal_all(&left, Signal::KILL);
            reap_adopted(&left);
        }
        reap_exited_children();
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// The distinct process groups of `pids` (those still alive).
fn groups_of(pids: &[u32]) -> Vec<Pid> {
    let mut groups: Vec<Pid> = pids
        .iter()
        .filter_map(|&pid| Pid::from_raw(stat(pid)?.group as i32))
        .collect();
    groups.sort_by_key(|g| g.as_raw_nonzero());
    groups.dedup();
    groups
}

/// Reaps every child of labrun that has exited: orphans re-parented to it while they ran
/// must not pile up as its zombies (a fork loop leaves thousands).
fn reap_exited_children() {
    while let Ok(Some(_)) = rustix::process::wait(WaitOptions::NOHANG) {}
}

/// A server's processes at one moment, below its leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Census {
    /// Live processes (not threads) descending from the leader or in its process group.
    pub live: u32,
    /// Children of the leader or of those processes that ended and were never waited for.
    pub zombies: u32,
}

/// Counts the live processes of the server whose leader is `root` (its descendants, and
/// the members of its process group, which a double fork leaves there after re-parenting
/// the grandchild to labrun) and the zombies among their children, its own and the group's.
pub fn census(root: u32) -> Census {
    let table = process_table();
    let mut tree: HashSet<u32> = descendants_in(&live_links(&table), root).into_iter().collect();
    tree.extend(
        table
            .iter()
            .filter(|(pid, stat)| !stat.zombie && stat.group == root && *pid != root)
            .map(|(pid, _)| *pid),
    );
    let zombies = table
        .iter()
        .filter(|(_, stat)| {
            stat.zombie && (stat.parent == root || stat.group == root || tree.contains(&stat.parent))
        })
        .count();
    Census {
        live: tree.len() as u32,
        zombies: zombies as u32,
    }
}

/// The fields of `/proc/<pid>/stat` teardown needs.
struct Stat {
    zombie: bool,
    parent: u32,
    group: u32,
}

/// Reads `/proc/<pid>/stat`, skipping the command name, which may contain spaces.
fn stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = text[text.rfind(')')? + 1..].split_whitespace();
    let zombie = fields.next()? == "Z";
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    Some(Stat {
        zombie,
        parent,
        group,
    })
}

/// When `pid` started, in clock ticks since boot (`/proc/<pid>/stat` field 22).
fn start_time(pid: u32) -> Option<u64> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// pid → parent pid for every live process (zombies are dead already; they only wait to be
/// reaped).
fn live_links(table: &[(u32, Stat)]) -> HashMap<u32, u32> {
    table
        .iter()
        .filter(|(_, stat)| !stat.zombie)
        .map(|(pid, stat)| (*pid, stat.parent))
        .collect()
}

/// `root` and every process below it (zombies included), each with its stat fields: read
/// down the kernel's children lists where it has them, else from all of `/proc`.
fn subtree_table(root: u32) -> Vec<(u32, Stat)> {
    if !children_lists_exist() {
        return process_table();
    }
    let mut table = Vec::new();
    let mut pending = vec![root];
    let mut seen = HashSet::from([root]);
    while let Some(pid) = pending.pop() {
        let Some(stat) = stat(pid) else { continue };
        table.push((pid, stat));
        for child in children_of(pid) {
            if seen.insert(child) {
                pending.push(child);
            }
        }
    }
    table
}

/// Whether this kernel lists each thread's children (`CONFIG_PROC_CHILDREN`).
fn children_lists_exist() -> bool {
    static EXIST: OnceLock<bool> = OnceLock::new();
    *EXIST.get_or_init(|| std::path::Path::new("/proc/thread-self/children").exists())
}

/// The children of `pid`: the kernel lists each under the thread that forked it, so every
/// thread's list is read. Empty for a process that is gone.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(threads) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    threads
        .flatten()
        .filter_map(|thread| fs::read_to_string(thread.path().join("children")).ok())
        .flat_map(|list| {
            list.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// Every process in `/proc` with its stat fields, zombies included.
fn process_table() -> Vec<(u32, Stat)> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            Some((pid, stat(pid)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_zombies_and_live_children() {
        // Three children that exit unwaited, one that lives on.
        let mut parent = std::process::Command::new("python3")
            .args([
                "-c",
                "import os, subprocess, time\n\
                 for _ in range(3):\n    if os.fork() == 0:\n        os._exit(0)\n\
                 subprocess.Popen(['sleep', '30'])\ntime.sleep(30)\n",
            ])
            .spawn()
            .expect("python3 runs");
        let mut seen = Census::default();
        for _ in 0..200 {
            seen = census(parent.id());
            if seen == (Census { live: 1, zombies: 3 }) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        signal_all(&descendants_of(parent.id()), Signal::KILL);
        let _ = parent.kill();
        let _ = parent.wait();
        assert_eq!(seen, Census { live: 1, zombies: 3 });
    }

    #[test]
    fn finds_grandchildren() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .expect("sh runs");
        let shell = child.id();
        let mut found = Vec::new();
        for _ in 0..100 {
            found = descendants_of(shell);
            if found.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert!(descendants_of(std::process::id()).contains(&shell));
        signal_all(&found, Signal::KILL);
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found.len(), 2, "{found:?}");
    }
}
