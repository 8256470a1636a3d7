//! Choosing a host for one job: the hosts of the list that are neither `,down` nor backed
//! off, and a slot on one of them or on this machine, all counted through the lock
//! directory that every client of the user shares. The slots are tried where the job would
//! start soonest, as the load board (`load`) says: first the hosts known to have a slot
//! free, least busy first; then the hosts not heard from lately (distcc 3.4's among them)
//! in distcc 3.4's order, slot 0 of each in the list's order (or shuffled for
//! `--randomize`) before slot 1 of any; then the hosts known to be full, least busy first.
//! The list's `/N` limits bound each host's slots. It also remembers what a host said it
//! cannot do, so that a build hears it once.
//!
//! Connecting to the host chosen is `net`'s business; what to do when it fails, the client's.

use std::fs;
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::backoff;
use super::hosts::{self, HostSpec};
use super::load::{Board, Standing};
use super::lock::{self, Slot, SlotSet};
use crate::wire::Load;

/// What one invocation may use.
pub struct Farm {
    pub hosts: Vec<HostSpec>,
    /// Where slot locks and backoff marks live; without it nothing is locked.
    pub dir: Option<PathBuf>,
    /// `$DISTCC_DIR`, where the monitor's state files go.
    pub top: Option<PathBuf>,
    pub local_slots: u32,
    pub cpp_slots: u32,
    /// Why there is no host list, to report when a job could have been distributed.
    pub list_error: Option<hosts::HostsError>,
    /// How long a failed host is skipped; `None`: never.
    backoff: Option<Duration>,
}

impl Farm {
    /// Reads the host list (`env` is `DISTCC_HOSTS`, `top` the distcc directory) and drops
    /// the hosts that are down or backed off.
    pub fn load(env: Option<&str>, top: Option<&Path>, backoff: Option<Duration>) -> Farm {
        let (list, list_error) = match hosts::load(env, top) {
            Ok(list) => (list, None),
            Err(e) => (hosts::HostList::default(), Some(e)),
        };
        if list_error.is_none() {
            log::debug!("host list from {}", list.source);
        }
        let dir = match top.map(lock::lock_dir) {
            Some(Ok(dir)) => Some(dir),
            other => {
                let why = match other {
                    Some(Err(e)) => e.to_string(),
                    _ => "neither DISTCC_DIR nor HOME is set".to_string(),
                };
                log::warn!("cannot use the lock directory ({why}); nothing is locked");
                None
            }
        };
        let mut farm = Farm {
            hosts: list.hosts.into_iter().filter(|h| !h.down).collect(),
            dir,
            top: top.map(Path::to_path_buf),
            local_slots: list.local_slots,
            cpp_slots: list.local_slots_cpp,
            list_error,
            backoff,
        };
        if list.randomize {
            shuffle(&mut farm.hosts);
        }
        if let (Some(dir), Some(period)) = (&farm.dir, backoff) {
            farm.hosts.retain(|h| {
                let skip = backoff::is_backed_off(dir, &lock::host_key(h), period);
                if skip {
                    log::debug!("skipping {}: it failed less than {period:?} ago", h.spec);
                }
                !skip
            });
        }
        farm
    }

    /// One of this machine's slots of kind `key`, waiting while all are taken.
    pub fn machine_slot(&self, key: &str, n: u32) -> Option<Slot> {
        let dir = self.dir.as_ref()?;
        lock::take_local(dir, key, n)
            .map_err(|e| log::warn!("failed to lock a local slot in {}: {e}", dir.display()))
            .ok()
    }

    /// One of this machine's preprocessor slots if one is free now.
    pub fn free_cpp_slot(&self) -> Option<Slot> {
        let dir = self.dir.as_ref()?;
        lock::try_take_local(dir, lock::LOCAL_CPP, self.cpp_slots).ok()?
    }

    /// A slot on one of `hosts` if one is free now, as [`Farm::take_host`] gives it;
    /// `None` when every slot is taken.
    pub fn try_take_host(&self, hosts: &[HostSpec]) -> Option<(usize, Option<Slot>)> {
        let Some(dir) = &self.dir else {
            return Some((0, None));
        };
        match self.slots(dir, hosts).try_take() {
            Ok(free) => free.map(|(i, slot)| (i, Some(slot))),
            Err(_) => Some(self.take_host(hosts)),
        }
    }

    /// Takes a slot on one of `hosts`, waiting while every slot is busy; returns the
    /// host's index. Without a lock directory the first host is used, unlocked.
    pub fn take_host(&self, hosts: &[HostSpec]) -> (usize, Option<Slot>) {
        let Some(dir) = &self.dir else {
            return (0, None);
        };
        match self.slots(dir, hosts).take() {
            Ok((i, slot)) => {
                log::debug!("picked {} slot {}", hosts[i].spec, slot.slot);
                (i, Some(slot))
            }
            Err(e) => {
                log::warn!("failed to lock a slot in {}: {e}", dir.display());
                (0, None)
            }
        }
    }

    /// The slots of `hosts` in the order they are tried.
    fn slots(&self, dir: &Path, hosts: &[HostSpec]) -> SlotSet {
        SlotSet::ordered(dir, slot_order(hosts, &self.board()))
    }

    fn board(&self) -> Board {
        self.top.as_deref().map(Board::read).unwrap_or_default()
    }

    /// Whether `host` is our daemon, as far as the board knows (see [`Standing`]).
    pub fn standing(&self, host: &HostSpec) -> Standing {
        self.board().standing(&lock::host_key(host))
    }

    /// Records what `host` said of its load, for the next jobs of every client here.
    pub fn heard(&self, host: &HostSpec, load: Load) {
        if let Some(top) = &self.top {
            Board::record(top, &lock::host_key(host), Some(load));
        }
    }

    /// Records that `host` is not our daemon (it did not answer the ask): it is asked no
    /// more until it tells its load in a reply's notes.
    pub fn not_ours(&self, host: &HostSpec) {
        if let Some(top) = &self.top {
            Board::record(top, &lock::host_key(host), Some(Load::default()));
        }
    }

    /// Records that `host` failed, so that every client skips it for the backoff period.
    pub fn mark_failed(&self, host: &HostSpec) {
        if let (Some(dir), Some(_)) = (&self.dir, self.backoff) {
            if let Err(e) = backoff::mark(dir, &lock::host_key(host)) {
                log::warn!("failed to record the failure of {}: {e}", host.spec);
            }
        }
    }

    /// Forgets an earlier failure of `host`, which has just served a job.
    pub fn mark_good(&self, host: &HostSpec) {
        if let Some(dir) = &self.dir {
            backoff::clear(dir, &lock::host_key(host));
        }
    }

    /// Whether this process is the first of its build to tell the user `what` about `host`.
    /// A build is the process group that runs us (`make` and its children, which a shell
    /// puts in a group of their own), so that each build hears it once, not each job.
    pub fn first_to_say(&self, host: &HostSpec, what: &str) -> bool {
        self.note_for_build(host, what)
    }

    /// Records that `host`'s compiler is not the one whose identity digest is `ours`, so
    /// that jobs of that compiler skip the host for a while ([`OTHER_COMPILER_FOR`]),
    /// whatever build they belong to: ninja gives every job a process group of its own.
    pub fn note_other_compiler(&self, host: &HostSpec, ours: &str) {
        let Some(dir) = &self.dir else {
            return;
        };
        let notes = dir.join(OTHER_COMPILERS);
        // Written again each time: its time is when it was last found.
        let _ = crate::ensure_dir(&notes)
            .and_then(|()| fs::write(notes.join(format!("{}_{ours}", lock::host_key(host))), ""));
    }

    /// Whether any host was found lately to have another compiler than some job's: one
    /// call, where looking for `host`'s note for each host costs one each.
    pub fn any_other_compiler(&self) -> bool {
        self.dir
            .as_ref()
            .is_some_and(|d| d.join(OTHER_COMPILERS).is_dir())
    }

    /// Whether `host` was found lately to have another compiler than `ours`.
    pub fn has_other_compiler(&self, host: &HostSpec, ours: &str) -> bool {
        let Some(dir) = &self.dir else {
            return false;
        };
        let note = dir
            .join(OTHER_COMPILERS)
            .join(format!("{}_{ours}", lock::host_key(host)));
        fs::metadata(note)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < OTHER_COMPILER_FOR))
    }

    /// Makes `host`'s note hold `what` for this build; whether it did not already
    /// (true without a directory for notes). Under a lock: of the jobs of a build that
    /// find the same thing at once, one is the first.
    fn note_for_build(&self, host: &HostSpec, what: &str) -> bool {
        let Some(dir) = &self.dir else {
            return true;
        };
        let note = format!("{}\n{what}", nix::unistd::getpgrp());
        let file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(format!("said_{}", lock::host_key(host))));
        let Ok(mut file) = file else {
            return true;
        };
        let _ = crate::lock_exclusive(&file);
        let mut said = String::new();
        let _ = file.read_to_string(&mut said);
        if said == note {
            return false;
        }
        let _ = file
            .write_all_at(note.as_bytes(), 0)
            .and_then(|()| file.set_len(note.len() as u64));
        true
    }
}

/// How long a host found to have another compiler than a job's is skipped by the jobs of
/// that compiler (it may be upgraded meanwhile).
const OTHER_COMPILER_FOR: Duration = Duration::from_secs(600);

/// The directory of the notes of hosts with another compiler.
const OTHER_COMPILERS: &str = "other_compilers";

/// The slots of `hosts` in the order a job tries them, as `board` ranks the hosts (see the
/// top of this file): (host's index, slot, lock file name).
fn slot_order(hosts: &[HostSpec], board: &Board) -> Vec<(usize, u32, String)> {
    let mut slots = Vec::new();
    for (i, host) in hosts.iter().enumerate() {
        let key = lock::host_key(host);
        let rank = board.rank(&key);
        for slot in 0..host.limit {
            // A job starts at once on a host known to have a slot free; probably on one
            // not heard from, which take their turns breadth-first as with distcc 3.4;
            // it waits on one known to be full.
            let (group, busy, major, minor) = match rank {
                Some((false, busy)) => (0, busy, i, slot as usize),
                None => (1, 0.0, slot as usize, i),
                Some((true, busy)) => (2, busy, i, slot as usize),
            };
            slots.push((
                (group, busy, major, minor),
                (i, slot, lock::slot_file(&key, slot)),
            ));
        }
    }
    slots.sort_by(|(a, _), (b, _)| {
        a.0.cmp(&b.0)
            .then(a.1.total_cmp(&b.1))
            .then(a.2.cmp(&b.2))
            .then(a.3.cmp(&b.3))
    });
    slots.into_iter().map(|(_, slot)| slot).collect()
}

/// Shuffles the host list for `--randomize`, differently in each process.
pub fn shuffle(hosts: &mut [HostSpec]) {
    let mut x = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        | 1;
    for i in (1..hosts.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        hosts.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_go_first_to_hosts_with_a_free_slot_then_to_unknown_ones_then_to_full_ones() {
        let list = hosts::parse("full/2 new/2 idle/2 busy/2 old/2", "t")
            .unwrap()
            .hosts;
        let top = tempfile::tempdir().unwrap();
        // Two processors, four slots: "busy" runs more jobs than processors, yet a job
        // would start there at once.
        let load = |running, queued| Load {
            cpus: 2,
            slots: 4,
            running,
            queued,
        };
        let key = |i: usize| lock::host_key(&list[i]);
        Board::record(top.path(), &key(0), Some(load(4, 1)));
        Board::record(top.path(), &key(2), Some(load(0, 0)));
        Board::record(top.path(), &key(3), Some(load(2, 0)));
        let order: Vec<_> = slot_order(&list, &Board::read(top.path()))
            .into_iter()
            .map(|(i, slot, _)| (i, slot))
            .collect();
        assert_eq!(
            order,
            [
                // Known to have slots free, least busy first, each host's slots in turn.
                (2, 0),
                (2, 1),
                (3, 0),
                (3, 1),
                // Not heard from: breadth-first, in the list's order, as distcc 3.4.
                (1, 0),
                (4, 0),
                (1, 1),
                (4, 1),
                // Full.
                (0, 0),
                (0, 1),
            ]
        );
        // Without a board, distcc 3.4's order.
        let order: Vec<_> = slot_order(&list[..2], &Board::default())
            .into_iter()
            .map(|(i, slot, _)| (i, slot))
            .collect();
        assert_eq!(order, [(0, 0), (1, 0), (0, 1), (1, 1)]);
    }
}
