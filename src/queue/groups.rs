//! Consumer groups: the members of a group that read one topic share its partitions, as in
//! Kafka. Plain logic on plain millisecond times, no actix, no I/O.
//!
//! A [`GroupBook`] holds, per (group, topic), the registered members and when each last polled.
//! A member is *live* while it has polled within the session timeout (joining counts as a
//! poll). Partitions are assigned over the live members by [`assign`]; the assignment changes
//! (a *rebalance*, with a new generation) whenever the live set changes: a member joins, leaves,
//! expires, or comes back by polling again.
//!
//! Guarantees:
//! - every partition is assigned to exactly one live member registered for it while there is
//!   one (a member registers for the whole topic or for one partition), and the assignment
//!   depends only on the live members and their registrations (see [`assign`]), so every read
//!   manager computes the same one;
//! - a partition is never *read* by two members at once: a member reads a partition only under
//!   a lease ([`GroupBook::acquire`]); a partition that moves to a new member is handed over only
//!   once the previous holder's reads of it have ended ([`GroupBook::release`], or drop of the
//!   [`Leases`] guard);
//! - a member that leaves or stops polling for the session timeout hands its partitions over at
//!   the next poll of another member (or the next [`GroupBook::expire`]);
//! - a member commits the group's offset of a partition only while it owns it
//!   ([`GroupBook::lease_for_commit`]): one whose session expired cannot rewind the new owner.
//!
//! Not guaranteed: that a partition's new owner resumes exactly where the old one stopped if the
//! old one fetched without committing (at-least-once: it resumes at the group's committed
//! offset); fairness when members are registered to different topics; persistence of liveness
//! (after a restart every registered member counts as live until its session times out again).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A live member and what it registered for: one partition, or the whole topic (`None`).
pub type LiveMember = (i64, Option<usize>);

/// Each partition goes to one of the live members registered for it (for the whole topic or
/// for that partition): the partitions with the fewest such members first, each to the one of
/// them with the fewest partitions so far, the lowest id on a tie. When every member registered
/// for the whole topic, partition `p` goes to the `p mod m`-th of the `m` members in id order.
pub fn assign(partitions: usize, live_members: &[LiveMember]) -> Vec<Option<i64>> {
    let mut members = live_members.to_vec();
    members.sort_unstable();
    members.dedup_by_key(|m| m.0);
    let eligible = |p: usize| {
        members
            .iter()
            .filter(move |(_, registered)| registered.is_none_or(|q| q == p))
            .map(|(id, _)| *id)
    };
    let mut order: Vec<usize> = (0..partitions).collect();
    order.sort_by_key(|&p| (eligible(p).count(), p));
    let mut load: HashMap<i64, usize> = HashMap::new();
    let mut assignment = vec![None; partitions];
    for p in order {
        let Some(owner) = eligible(p).min_by_key(|id| (load.get(id).copied().unwrap_or(0), *id))
        else {
            continue;
        };
        *load.entry(owner).or_default() += 1;
        assignment[p] = Some(owner);
    }
    assignment
}

/// A change of assignment, for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rebalance {
    pub group: Arc<str>,
    pub topic_id: i32,
    pub generation: u64,
    pub live: Vec<i64>,
    pub assignment: Vec<Option<i64>>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Lease {
    holder: Option<i64>,
    reads: u32,
}

/// A registered member: its last poll (ms) and its one partition, if it registered for one.
#[derive(Debug, Clone, Copy)]
struct Member {
    seen: u64,
    partition: Option<usize>,
}

#[derive(Debug)]
struct GroupTopic {
    partitions: usize,
    /// Registered members.
    members: BTreeMap<i64, Member>,
    live: Vec<i64>,
    generation: u64,
    assignment: Vec<Option<i64>>,
    leases: Vec<Lease>,
}

impl GroupTopic {
    fn new(partitions: usize) -> Self {
        Self {
            partitions,
            members: BTreeMap::new(),
            live: Vec::new(),
            generation: 0,
            assignment: vec![None; partitions],
            leases: vec![Lease::default(); partitions],
        }
    }

    /// Recomputes the live set at `now`; a new assignment if it changed.
    fn refresh(
        &mut self,
        group: &Arc<str>,
        topic_id: i32,
        now: u64,
        timeout: u64,
    ) -> Option<Rebalance> {
        let live: Vec<LiveMember> = self
            .members
            .iter()
            .filter(|(_, m)| now.saturating_sub(m.seen) <= timeout)
            .map(|(&id, m)| (id, m.partition))
            .collect();
        let ids: Vec<i64> = live.iter().map(|(id, _)| *id).collect();
        if ids == self.live && self.generation > 0 {
            return None;
        }
        self.generation += 1;
        self.assignment = assign(self.partitions, &live);
        self.live = ids;
        Some(Rebalance {
            group: group.clone(),
            topic_id,
            generation: self.generation,
            live: self.live.clone(),
            assignment: self.assignment.clone(),
        })
    }
}

/// Member `member` is not registered in the group for that topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotAMember;

/// Why a member may not commit a group offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    NotAMember,
    /// The partition is not (or not yet) the member's in the group's current generation.
    NotOwner {
        generation: u64,
    },
}

/// What a member may read now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Partitions assigned to the member whose lease it now holds, in order.
    pub partitions: Vec<usize>,
    /// Partitions assigned to it still being read by their previous holder.
    pub handing_over: Vec<usize>,
    pub generation: u64,
}

#[derive(Debug)]
pub struct GroupBook {
    session_timeout_ms: u64,
    topics: HashMap<(Arc<str>, i32), GroupTopic>,
}

impl GroupBook {
    pub fn new(session_timeout_ms: u64) -> Self {
        Self {
            session_timeout_ms,
            topics: HashMap::new(),
        }
    }

    /// Registers `member` in `group` for a topic of `partitions` partitions (all of them, or
    /// only `partition`), live as of `now`.
    pub fn join(
        &mut self,
        group: &Arc<str>,
        topic_id: i32,
        partitions: usize,
        member: i64,
        partition: Option<usize>,
        now: u64,
    ) -> Option<Rebalance> {
        let timeout = self.session_timeout_ms;
        let entry = self
            .topics
            .entry((group.clone(), topic_id))
            .or_insert_with(|| GroupTopic::new(partitions));
        entry.members.insert(
            member,
            Member {
                seen: now,
                partition,
            },
        );
        entry.refresh(group, topic_id, now, timeout)
    }

    /// Removes `member` from every topic of `group`.
    pub fn leave(&mut self, group: &Arc<str>, member: i64, now: u64) -> Vec<Rebalance> {
        let timeout = self.session_timeout_ms;
        self.topics
            .iter_mut()
            .filter(|((g, _), _)| g == group)
            .filter_map(|((g, topic_id), t)| {
                t.members.remove(&member)?;
                t.refresh(g, *topic_id, now, timeout)
            })
            .collect()
    }

    /// A poll by `member` at `now`: it is live again, and takes the leases of the partitions
    /// assigned to it that nobody else is still reading. Release them with [`GroupBook::release`].
    pub fn acquire(
        &mut self,
        group: &Arc<str>,
        topic_id: i32,
        member: i64,
        now: u64,
    ) -> Result<(Grant, Option<Rebalance>), NotAMember> {
        let timeout = self.session_timeout_ms;
        let t = self
            .topics
            .get_mut(&(group.clone(), topic_id))
            .ok_or(NotAMember)?;
        t.members.get_mut(&member).ok_or(NotAMember)?.seen = now;
        let rebalance = t.refresh(group, topic_id, now, timeout);
        let mut grant = Grant {
            partitions: Vec::new(),
            handing_over: Vec::new(),
            generation: t.generation,
        };
        for p in 0..t.partitions {
            if t.assignment[p] != Some(member) {
                continue;
            }
            let lease = &mut t.leases[p];
            if lease.reads == 0 || lease.holder == Some(member) {
                lease.holder = Some(member);
                lease.reads += 1;
                grant.partitions.push(p);
            } else {
                grant.handing_over.push(p);
            }
        }
        Ok((grant, rebalance))
    }

    /// Ends one read of each of `partitions` by `member` (taken with [`GroupBook::acquire`]).
    pub fn release(&mut self, group: &Arc<str>, topic_id: i32, member: i64, partitions: &[usize]) {
        let Some(t) = self.topics.get_mut(&(group.clone(), topic_id)) else {
            return;
        };
        for &p in partitions {
            if let Some(lease) = t.leases.get_mut(p)
                && lease.holder == Some(member)
            {
                lease.reads = lease.reads.saturating_sub(1);
            }
        }
    }

    /// A commit of the group's offset in `partition` by `member` at `now`: allowed only while
    /// the member owns the partition (it is live, the partition is assigned to it and no
    /// previous holder still reads it). Takes a lease, so that the partition is not handed over
    /// while the commit runs (release it like a read's). Does not count as a poll: a member
    /// whose session expired is fenced until it polls again.
    pub fn lease_for_commit(
        &mut self,
        group: &Arc<str>,
        topic_id: i32,
        member: i64,
        partition: usize,
        now: u64,
    ) -> Result<(u64, Option<Rebalance>), Fenced> {
        let timeout = self.session_timeout_ms;
        let t = self
            .topics
            .get_mut(&(group.clone(), topic_id))
            .ok_or(Fenced::NotAMember)?;
        if !t.members.contains_key(&member) {
            return Err(Fenced::NotAMember);
        }
        let rebalance = t.refresh(group, topic_id, now, timeout);
        let generation = t.generation;
        let owns = t.assignment.get(partition).copied().flatten() == Some(member);
        let Some(lease) = t.leases.get_mut(partition).filter(|_| owns) else {
            return Err(Fenced::NotOwner { generation });
        };
        if lease.reads > 0 && lease.holder != Some(member) {
            return Err(Fenced::NotOwner { generation });
        }
        lease.holder = Some(member);
        lease.reads += 1;
        Ok((generation, rebalance))
    }

    /// Expires members silent past the session timeout; the rebalances that follow.
    pub fn expire(&mut self, now: u64) -> Vec<Rebalance> {
        let timeout = self.session_timeout_ms;
        self.topics
            .iter_mut()
            .filter_map(|((g, topic_id), t)| t.refresh(g, *topic_id, now, timeout))
            .collect()
    }

    /// The current assignment of a group's topic (partition → member).
    pub fn assignment(&self, group: &Arc<str>, topic_id: i32) -> Option<Vec<Option<i64>>> {
        self.topics
            .get(&(group.clone(), topic_id))
            .map(|t| t.assignment.clone())
    }
}

/// Leases taken by one poll, released when dropped (however the poll ends).
pub struct Leases {
    book: Arc<Mutex<GroupBook>>,
    group: Arc<str>,
    topic_id: i32,
    member: i64,
    partitions: Vec<usize>,
}

impl Leases {
    pub fn new(
        book: Arc<Mutex<GroupBook>>,
        group: Arc<str>,
        topic_id: i32,
        member: i64,
        partitions: Vec<usize>,
    ) -> Self {
        Self {
            book,
            group,
            topic_id,
            member,
            partitions,
        }
    }

    pub fn partitions(&self) -> &[usize] {
        &self.partitions
    }
}

impl Drop for Leases {
    fn drop(&mut self) {
        let mut book = self.book.lock().unwrap_or_else(|p| p.into_inner());
        book.release(&self.group, self.topic_id, self.member, &self.partitions);
    }
}

impl std::fmt::Debug for Leases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases")
            .field("group", &self.group)
            .field("partitions", &self.partitions)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: u64 = 1_000;

    fn g() -> Arc<str> {
        "billing".into()
    }

    #[test]
    fn assignment_covers_every_partition_once() {
        let all = |ids: &[i64]| ids.iter().map(|&id| (id, None)).collect::<Vec<_>>();
        assert_eq!(
            assign(4, &all(&[7, 3])),
            [Some(3), Some(7), Some(3), Some(7)]
        );
        assert_eq!(assign(2, &all(&[1, 2, 3])), [Some(1), Some(2)]);
        assert_eq!(assign(2, &[]), [None, None]);
        // Order of the input does not matter: every manager computes the same.
        assert_eq!(assign(5, &all(&[9, 1, 5])), assign(5, &all(&[5, 9, 1])));
    }

    #[test]
    fn each_partition_goes_to_a_member_registered_for_it() {
        // A registered for partition 1 only, B for the whole topic.
        assert_eq!(
            assign(3, &[(10, Some(1)), (20, None)]),
            [Some(20), Some(10), Some(20)]
        );
        // Nobody registered for partition 0: nobody gets it; B still gets only what it may read.
        assert_eq!(
            assign(3, &[(10, Some(1)), (20, Some(2))]),
            [None, Some(10), Some(20)]
        );
        assert_eq!(
            assign(3, &[(10, Some(1)), (20, None), (30, None)]),
            [Some(20), Some(10), Some(30)]
        );
    }

    #[test]
    fn only_the_owner_commits_and_an_expired_member_is_fenced() {
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 2, 10, None, 0);
        book.join(&g(), 1, 2, 20, None, 0);
        assert!(book.lease_for_commit(&g(), 1, 10, 0, 1).is_ok());
        book.release(&g(), 1, 10, &[0]);
        assert_eq!(
            book.lease_for_commit(&g(), 1, 10, 1, 1),
            Err(Fenced::NotOwner { generation: 2 })
        );
        assert_eq!(
            book.lease_for_commit(&g(), 1, 99, 0, 1),
            Err(Fenced::NotAMember)
        );
        // 20 keeps polling, 10 falls silent: it owns nothing any more, commits included.
        book.acquire(&g(), 1, 20, TIMEOUT).unwrap();
        assert!(matches!(
            book.lease_for_commit(&g(), 1, 10, 0, TIMEOUT + 1),
            Err(Fenced::NotOwner { .. })
        ));
        // A commit in flight holds the partition: its new owner waits for it.
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 1, 10, None, 0);
        book.join(&g(), 1, 1, 20, None, 0);
        assert!(book.lease_for_commit(&g(), 1, 10, 0, 1).is_ok());
        book.leave(&g(), 10, 2);
        let (grant, _) = book.acquire(&g(), 1, 20, 3).unwrap();
        assert_eq!(grant.handing_over, [0]);
    }

    #[test]
    fn members_split_the_partitions() {
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 4, 10, None, 0);
        book.join(&g(), 1, 4, 20, None, 0);
        let (a, _) = book.acquire(&g(), 1, 10, 1).unwrap();
        let (b, _) = book.acquire(&g(), 1, 20, 1).unwrap();
        assert_eq!(a.partitions, [0, 2]);
        assert_eq!(b.partitions, [1, 3]);
    }

    #[test]
    fn a_member_that_leaves_hands_over_once_its_reads_end() {
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 2, 10, None, 0);
        book.join(&g(), 1, 2, 20, None, 0);
        let (a, _) = book.acquire(&g(), 1, 10, 1).unwrap();
        assert_eq!(a.partitions, [0]);
        let rebalances = book.leave(&g(), 10, 2);
        assert_eq!(rebalances.len(), 1);
        assert_eq!(rebalances[0].live, [20]);
        // 10 is still reading partition 0: 20 must wait for it.
        let (b, _) = book.acquire(&g(), 1, 20, 3).unwrap();
        assert_eq!(b.partitions, [1]);
        assert_eq!(b.handing_over, [0]);
        book.release(&g(), 1, 10, &a.partitions);
        let (b, _) = book.acquire(&g(), 1, 20, 4).unwrap();
        assert_eq!(b.partitions, [0, 1]);
    }

    #[test]
    fn a_silent_member_expires_and_comes_back_by_polling() {
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 2, 10, None, 0);
        book.join(&g(), 1, 2, 20, None, 0);
        assert!(book.expire(TIMEOUT).is_empty(), "not yet silent too long");
        // 20 keeps polling; 10 does not.
        let (_, _) = book.acquire(&g(), 1, 20, 900).unwrap();
        let rebalances = book.expire(TIMEOUT + 1);
        assert_eq!(rebalances[0].live, [20]);
        assert_eq!(book.assignment(&g(), 1).unwrap(), [Some(20), Some(20)]);
        let (back, rebalance) = book.acquire(&g(), 1, 10, TIMEOUT + 2).unwrap();
        assert!(rebalance.is_some());
        assert_eq!(back.partitions, [0]);
    }

    #[test]
    fn two_members_never_hold_one_partition() {
        // Exhaustive over a small schedule: joins, leaves, polls and releases interleaved.
        let mut book = GroupBook::new(TIMEOUT);
        let mut held: Vec<(i64, Vec<usize>)> = Vec::new();
        let members = [1, 2, 3];
        for m in members {
            book.join(&g(), 7, 3, m, None, 0);
        }
        for step in 0..300u64 {
            let m = members[(step % 3) as usize];
            match step % 7 {
                0 => {
                    book.leave(&g(), m, step);
                }
                1 => {
                    book.join(&g(), 7, 3, m, None, step);
                }
                2 | 5 => {
                    if let Some(i) = held.iter().position(|(h, _)| *h == m) {
                        let (_, parts) = held.remove(i);
                        book.release(&g(), 7, m, &parts);
                    }
                }
                _ => {
                    if let Ok((grant, _)) = book.acquire(&g(), 7, m, step) {
                        held.push((m, grant.partitions));
                    }
                }
            }
            for p in 0..3 {
                let readers: std::collections::BTreeSet<i64> = held
                    .iter()
                    .filter(|(_, parts)| parts.contains(&p))
                    .map(|(h, _)| *h)
                    .collect();
                assert!(
                    readers.len() <= 1,
                    "step {step}: partition {p} read by {readers:?}"
                );
            }
        }
    }

    #[test]
    fn strangers_are_refused() {
        let mut book = GroupBook::new(TIMEOUT);
        book.join(&g(), 1, 1, 10, None, 0);
        assert_eq!(book.acquire(&g(), 1, 99, 0).unwrap_err(), NotAMember);
        assert_eq!(book.acquire(&g(), 2, 10, 0).unwrap_err(), NotAMember);
    }

    #[test]
    fn the_guard_releases_on_drop() {
        let book = Arc::new(Mutex::new(GroupBook::new(TIMEOUT)));
        book.lock().unwrap().join(&g(), 1, 1, 10, None, 0);
        book.lock().unwrap().join(&g(), 1, 1, 20, None, 0);
        let (grant, _) = book.lock().unwrap().acquire(&g(), 1, 10, 0).unwrap();
        let guard = Leases::new(book.clone(), g(), 1, 10, grant.partitions);
        book.lock().unwrap().leave(&g(), 10, 1);
        assert_eq!(
            book.lock()
                .unwrap()
                .acquire(&g(), 1, 20, 1)
                .unwrap()
                .0
                .handing_over,
            [0]
        );
        drop(guard);
        assert_eq!(
            book.lock()
                .unwrap()
                .acquire(&g(), 1, 20, 2)
                .unwrap()
                .0
                .partitions,
            [0]
        );
    }
}
