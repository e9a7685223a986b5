//! The in-process group coordinator: membership, generations and assignments of consumer groups.
//!
//! # Rebalance protocol
//! A member joining or leaving, a member missing `max_poll_interval` (time between polls, by the
//! store's clock; a member waiting inside `poll` is polling), or a subscribed topic
//! gaining partitions starts a *rebalance*: the coordinator computes the target assignment and
//! asks every member that must give something up to *revoke* it (on its next `poll`, which runs
//! the listener's `on_revoked` so the member can commit first). Under an eager strategy a member
//! gives up everything; under the cooperative one only the partitions that move, and it keeps
//! consuming the rest meanwhile. When every member has revoked (or been removed for missing
//! `max_poll_interval`), the generation advances and each member picks up its new assignment on
//! its next `poll` (`on_assigned`). A partition therefore never has two owners: its new owner gets
//! it only after its old owner let go.
//!
//! Commits are accepted only from a current member for partitions it owns (in the current
//! generation, and not revoked for a rebalance in progress); a member that lost a partition gets
//! [`Error::CommitFailed`]. A member whose own partitions did not move may commit them even before
//! it polled the new generation.
//!
//! # Commits in flight
//! A commit checks ownership under the group lock, registers itself as *in flight* and lets the
//! lock go; it appends and waits for its fsync without it, so the group's other members poll,
//! rebalance and commit meanwhile (and concurrent commits share the offsets partition's fsync).
//! What keeps ownership exclusive is that the generation does not change under a commit:
//!
//! - a rebalance whose members have all revoked completes only when no in-flight commit touches a
//!   partition its committer does not keep in the next generation (a commit of a member removed
//!   meanwhile, or of a consumer with a manual assignment, touches everything); the last such
//!   commit to finish completes it;
//! - a member that has revoked partitions for the rebalance in progress may not start a commit of
//!   them, so no new commit can hold the rebalance back once everyone has revoked.
//!
//! So a commit that passed its check takes effect (is durable and published) while its committer
//! is the partition's only owner, even if the committer is removed from the group meanwhile (its
//! partitions go to nobody until the commit is done), and the next owner starts from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::partition::Notify;

use super::assignor::{assign, AssignmentStrategy, MemberInfo};
use super::TopicPartition;

/// Looks up the partition counts of topics (missing topics are left out).
pub(crate) type PartitionCounts = dyn Fn(&BTreeSet<String>) -> BTreeMap<String, u32> + Send + Sync;

/// Every group of a store.
///
/// # Lock order
/// `Coordinator::groups` → `Group::state` → a member's [`Notify`] (signalled under the group
/// lock). Nothing else is taken under `Group::state`, and it is never held while calling into the
/// offset store or a partition: no file I/O happens under a group lock (the offset store's table
/// lock is taken by commits after their append, with no coordinator lock held).
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next_member: AtomicU64,
    counts: Box<PartitionCounts>,
    /// Times members' polls (monotonic readings).
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("groups", &self.groups.lock().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// A member waiting inside a poll ([`Coordinator::waiting_guard`]); dropping it ends the wait.
pub(crate) struct Waiting<'a> {
    coordinator: &'a Coordinator,
    group: &'a Group,
    member: u64,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.coordinator.set_waiting(self.group, self.member, false);
    }
}

/// One group.
#[derive(Debug)]
pub(crate) struct Group {
    pub name: String,
    state: Mutex<GroupState>,
}

#[derive(Debug, Default)]
struct GroupState {
    generation: u32,
    members: BTreeMap<u64, Member>,
    strategy: AssignmentStrategy,
    rebalancing: bool,
    /// The current generation's assignment.
    assignment: BTreeMap<u64, Vec<TopicPartition>>,
    /// During a rebalance: the assignment the next generation gets.
    target: BTreeMap<u64, Vec<TopicPartition>>,
    /// Partition counts the target was computed from.
    counts: BTreeMap<String, u32>,
    /// Commits that passed their ownership check and whose append has not returned yet, by
    /// ticket. See "Commits in flight" in the module docs.
    in_flight: BTreeMap<u64, InFlight>,
    next_ticket: u64,
}

/// A commit between its ownership check and the end of its append.
#[derive(Debug)]
struct InFlight {
    /// The committing member; `None` for a consumer with a manual assignment or a group deletion,
    /// which may touch any partition of the group.
    member: Option<u64>,
    partitions: Vec<TopicPartition>,
}

impl InFlight {
    /// Whether the generation may not change before this commit is done: it touches a partition
    /// its committer does not keep in the target assignment.
    fn holds_back(&self, st: &GroupState) -> bool {
        let Some(id) = self.member else {
            return true;
        };
        let keep = st.target.get(&id).map_or(&[][..], Vec::as_slice);
        self.partitions.iter().any(|tp| !keep.contains(tp))
    }
}

/// Ends an in-flight commit when dropped (also if the commit panics), completing a rebalance the
/// commit held back.
struct CommitTicket<'a> {
    group: &'a Group,
    ticket: u64,
}

impl Drop for CommitTicket<'_> {
    fn drop(&mut self) {
        let mut st = self.group.state.lock();
        st.in_flight.remove(&self.ticket);
        Coordinator::try_complete(&self.group.name, &mut st);
    }
}

#[derive(Debug)]
struct Member {
    client_id: String,
    subscription: BTreeSet<String>,
    /// When it last polled, or stopped waiting inside a poll (the clock's monotonic time).
    last_poll: Duration,
    /// It is waiting inside a poll: alive, however long it waits.
    waiting: bool,
    max_poll_interval: Duration,
    /// During a rebalance: it has revoked what it must.
    rejoined: bool,
    notify: Arc<Notify>,
}

/// What a member must do, from [`Group::poll`].
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// Nothing: consume as assigned.
    Stable,
    /// Give up these partitions (run `on_revoked`, commit), then call [`Group::rejoin`].
    Revoke(Vec<TopicPartition>),
    /// Revoked; waiting for the other members. Consume what is still assigned.
    Waiting,
    /// A new generation: this is the assignment.
    Assigned(u32, Vec<TopicPartition>),
    /// No longer a member (removed for missing `max_poll_interval`): the partitions are lost.
    Fenced,
}

/// A member's view of its group, for `groups()`/lag reporting.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id (`<client_id>-<n>`).
    pub member_id: String,
    /// Its subscription.
    pub topics: Vec<String>,
    /// What it owns in the current generation.
    pub assignment: Vec<TopicPartition>,
}

impl Coordinator {
    pub fn new(counts: Box<PartitionCounts>, clock: Arc<dyn Clock>) -> Coordinator {
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
            counts,
            clock,
        }
    }

    pub fn group(&self, name: &str) -> Arc<Group> {
        self.groups
            .lock()
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Group {
                    name: name.to_owned(),
                    state: Mutex::new(GroupState::default()),
                })
            })
            .clone()
    }

    /// Groups with at least one member.
    pub fn active_groups(&self) -> Vec<String> {
        self.groups
            .lock()
            .values()
            .filter(|g| !g.state.lock().members.is_empty())
            .map(|g| g.name.clone())
            .collect()
    }

    /// Add a member; returns its id. Starts a rebalance.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] if the group's members use another assignment strategy.
    pub fn join(
        &self,
        group: &Group,
        client_id: &str,
        subscription: BTreeSet<String>,
        strategy: AssignmentStrategy,
        max_poll_interval: Duration,
        notify: Arc<Notify>,
    ) -> Result<u64> {
        let mut st = group.state.lock();
        if !st.members.is_empty() && st.strategy != strategy {
            return Err(Error::config(
                "assignment_strategy",
                format!(
                    "group {:?} uses {:?}; every member must use the same strategy",
                    group.name, st.strategy
                ),
            ));
        }
        st.strategy = strategy;
        let id = self.next_member.fetch_add(1, Ordering::Relaxed);
        st.members.insert(
            id,
            Member {
                client_id: client_id.to_owned(),
                subscription,
                last_poll: self.clock.monotonic(),
                waiting: false,
                max_poll_interval,
                rejoined: true,
                notify,
            },
        );
        self.start_rebalance(&group.name, &mut st);
        Ok(id)
    }

    /// Remove a member (it has revoked everything). Starts a rebalance for the rest.
    pub fn leave(&self, group: &Group, member: u64) {
        let mut st = group.state.lock();
        if st.members.remove(&member).is_some() {
            st.assignment.remove(&member);
            self.start_rebalance(&group.name, &mut st);
        }
    }

    /// A member's poll: note that it is alive, expire members that are not, notice new
    /// partitions, and say what it must do.
    pub fn poll(&self, group: &Group, member: u64, generation: u32) -> Step {
        let mut st = group.state.lock();
        let now = self.clock.monotonic();
        let expired: Vec<u64> = st
            .members
            .iter()
            .filter(|(id, m)| {
                **id != member
                    && !m.waiting
                    && now.saturating_sub(m.last_poll) > m.max_poll_interval
            })
            .map(|(id, _)| *id)
            .collect();
        let mut restart = false;
        for id in expired {
            st.members.remove(&id);
            st.assignment.remove(&id);
            restart = true;
        }
        let Some(me) = st.members.get_mut(&member) else {
            if restart {
                self.start_rebalance(&group.name, &mut st);
            }
            return Step::Fenced;
        };
        me.last_poll = now;
        if !restart {
            let topics = subscribed(&st);
            restart = (self.counts)(&topics) != st.counts;
        }
        if restart {
            self.start_rebalance(&group.name, &mut st);
        }
        if st.rebalancing {
            let me = &st.members[&member];
            if me.rejoined {
                return Step::Waiting;
            }
            if generation != st.generation {
                // It has not taken up the current generation yet: do that first, so what it
                // revokes (and commits in `on_revoked`) is what it owns now.
                return Step::Assigned(
                    st.generation,
                    st.assignment.get(&member).cloned().unwrap_or_default(),
                );
            }
            return Step::Revoke(revocations(&st, member));
        }
        if generation != st.generation {
            return Step::Assigned(
                st.generation,
                st.assignment.get(&member).cloned().unwrap_or_default(),
            );
        }
        Step::Stable
    }

    /// Run `wait` (a member's wait inside its poll, for records or a group change) with the
    /// member counted as polling all along: however long it waits, it is not removed for missing
    /// `max_poll_interval`, which counts again from when `wait` returns.
    pub fn waiting<R>(&self, group: &Group, member: u64, wait: impl FnOnce() -> R) -> R {
        let _waiting = self.waiting_guard(group, member);
        wait()
    }

    /// [`waiting`](Self::waiting) for a wait that is not a closure (an async one): the member
    /// counts as polling until the guard is dropped.
    pub fn waiting_guard<'a>(&'a self, group: &'a Group, member: u64) -> Waiting<'a> {
        self.set_waiting(group, member, true);
        Waiting {
            coordinator: self,
            group,
            member,
        }
    }

    fn set_waiting(&self, group: &Group, member: u64, waiting: bool) {
        let mut st = group.state.lock();
        let now = self.clock.monotonic();
        if let Some(m) = st.members.get_mut(&member) {
            m.waiting = waiting;
            m.last_poll = now;
        }
    }

    /// The latest time (the clock's monotonic time) at which `member`, about to wait, must poll
    /// again to notice a member that stopped polling: just after the first of the members not
    /// waiting now would miss its `max_poll_interval`, and at most the shortest
    /// `max_poll_interval` of the group from now (a member that stops waiting later misses its
    /// interval no earlier). So a group whose members all wait inside a poll wakes nobody until
    /// something happens.
    pub fn next_check(&self, group: &Group, member: u64) -> Duration {
        let st = group.state.lock();
        let now = self.clock.monotonic();
        let shortest = st
            .members
            .values()
            .map(|m| m.max_poll_interval)
            .min()
            .unwrap_or(Duration::MAX);
        let first_miss = st
            .members
            .iter()
            .filter(|(id, m)| **id != member && !m.waiting)
            .map(|(_, m)| {
                m.last_poll
                    .saturating_add(m.max_poll_interval)
                    .saturating_add(Duration::from_millis(1))
            })
            .min()
            .unwrap_or(Duration::MAX);
        first_miss.min(now.saturating_add(shortest))
    }

    /// The member revoked what [`Step::Revoke`] asked for.
    pub fn rejoin(&self, group: &Group, member: u64) {
        let mut st = group.state.lock();
        if let Some(m) = st.members.get_mut(&member) {
            m.rejoined = true;
        }
        Self::try_complete(&group.name, &mut st);
    }

    /// Run `commit` if `member` (at `generation`) may commit `partitions` now. The check is made
    /// under the group lock; `commit` runs without it, as an in-flight commit that holds back any
    /// generation change taking one of `partitions` from `member` until it returns (see "Commits
    /// in flight" in the module docs). `member == None` is a consumer with a manual assignment
    /// (or a group deletion): allowed only while the group has no members, and it holds back
    /// every generation change.
    ///
    /// # Errors
    /// [`Error::CommitFailed`] if not allowed; whatever `commit` returns.
    pub fn commit_checked<R>(
        &self,
        group: &Group,
        member: Option<(u64, u32)>,
        partitions: &[TopicPartition],
        commit: impl FnOnce() -> Result<R>,
    ) -> Result<R> {
        let _ticket = Self::begin_commit(group, member, partitions)?;
        commit()
    }

    /// The ownership check of [`commit_checked`](Self::commit_checked); registers the commit as
    /// in flight until the returned ticket is dropped.
    fn begin_commit<'g>(
        group: &'g Group,
        member: Option<(u64, u32)>,
        partitions: &[TopicPartition],
    ) -> Result<CommitTicket<'g>> {
        let mut st = group.state.lock();
        let refuse = |reason: String| {
            crate::trace::event!(warn, group = %group.name, reason = %reason, "commit refused");
            Err(Error::CommitFailed {
                group: group.name.clone(),
                reason,
            })
        };
        match member {
            None => {
                if !st.members.is_empty() {
                    return refuse(
                        "the group has active members; a consumer with a manual assignment may \
                         commit only to a group nobody is subscribed in"
                            .into(),
                    );
                }
            }
            Some((id, generation)) => {
                if !st.members.contains_key(&id) {
                    return refuse(
                        "this consumer is no longer a member (it missed max_poll_interval); \
                         poll to rejoin"
                            .into(),
                    );
                }
                // Ownership is what fences: a member that has not polled since the generation
                // moved on may still commit the partitions it kept (a partition changes owner
                // only after its old owner revoked it, or was removed from the group). What it
                // revoked for the rebalance in progress it no longer owns, although the current
                // generation still lists it.
                let owned = st.assignment.get(&id).map_or(&[][..], Vec::as_slice);
                let revoked = if st.rebalancing && st.members[&id].rejoined {
                    revocations(&st, id)
                } else {
                    Vec::new()
                };
                if let Some(tp) = partitions.iter().find(|tp| !owned.contains(tp)) {
                    return refuse(if generation != st.generation {
                        format!(
                            "the group rebalanced (generation {generation} -> {}) and {tp} is \
                             no longer assigned to this member; poll to get the new assignment",
                            st.generation
                        )
                    } else {
                        format!("{tp} is not assigned to this member")
                    });
                }
                if let Some(tp) = partitions.iter().find(|tp| revoked.contains(tp)) {
                    return refuse(format!(
                        "{tp} was revoked from this member for a rebalance in progress; poll to \
                         get the new assignment"
                    ));
                }
            }
        }
        st.next_ticket += 1;
        let ticket = st.next_ticket;
        st.in_flight.insert(
            ticket,
            InFlight {
                member: member.map(|(id, _)| id),
                partitions: partitions.to_vec(),
            },
        );
        Ok(CommitTicket { group, ticket })
    }

    /// Members and their assignments.
    pub fn describe(&self, group: &str) -> Vec<MemberDescription> {
        let Some(g) = self.groups.lock().get(group).cloned() else {
            return Vec::new();
        };
        let st = g.state.lock();
        st.members
            .iter()
            .map(|(id, m)| MemberDescription {
                member_id: format!("{}-{id}", m.client_id),
                topics: m.subscription.iter().cloned().collect(),
                assignment: st.assignment.get(id).cloned().unwrap_or_default(),
            })
            .collect()
    }

    fn start_rebalance(&self, name: &str, st: &mut GroupState) {
        if st.members.is_empty() {
            st.rebalancing = false;
            st.assignment.clear();
            st.target.clear();
            st.generation += 1;
            return;
        }
        let topics = subscribed(st);
        st.counts = (self.counts)(&topics);
        let infos: Vec<MemberInfo<'_>> = st
            .members
            .iter()
            .map(|(id, m)| MemberInfo {
                id: *id,
                subscription: &m.subscription,
                owned: st.assignment.get(id).map_or(&[][..], Vec::as_slice),
            })
            .collect();
        let target = assign(st.strategy, &infos, &st.counts);
        st.target = target;
        st.rebalancing = true;
        let ids: Vec<u64> = st.members.keys().copied().collect();
        for id in ids {
            let nothing_to_revoke = revocations(st, id).is_empty();
            if let Some(m) = st.members.get_mut(&id) {
                m.rejoined = nothing_to_revoke;
                m.notify.notify();
            }
        }
        Self::try_complete(name, st);
    }

    /// Start the next generation if every member has revoked what it must and no in-flight
    /// commit holds it back (the last such commit to finish calls this again).
    #[cfg_attr(not(feature = "tracing"), allow(unused_variables))]
    fn try_complete(name: &str, st: &mut GroupState) {
        if !st.rebalancing || st.members.values().any(|m| !m.rejoined) {
            return;
        }
        if st.in_flight.values().any(|c| c.holds_back(st)) {
            return;
        }
        st.generation += 1;
        st.assignment = std::mem::take(&mut st.target);
        st.rebalancing = false;
        crate::trace::event!(
            info,
            group = %name,
            generation = st.generation,
            members = st.members.len(),
            "group rebalanced"
        );
        for m in st.members.values() {
            m.notify.notify();
        }
    }
}

/// Every topic some member subscribes to.
fn subscribed(st: &GroupState) -> BTreeSet<String> {
    st.members
        .values()
        .flat_map(|m| m.subscription.iter().cloned())
        .collect()
}

/// What `member` must give up for the target: everything it owns (eager) or what moves away
/// (cooperative).
fn revocations(st: &GroupState, member: u64) -> Vec<TopicPartition> {
    let owned = st.assignment.get(&member).map_or(&[][..], Vec::as_slice);
    if !st.strategy.is_cooperative() {
        return owned.to_vec();
    }
    let keep = st.target.get(&member).map_or(&[][..], Vec::as_slice);
    owned
        .iter()
        .filter(|tp| !keep.contains(tp))
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> Coordinator {
        let counts = |topics: &BTreeSet<String>| {
            topics
                .iter()
                .filter(|t| *t == "t")
                .map(|t| (t.clone(), 4))
                .collect()
        };
        Coordinator::new(Box::new(counts), Arc::new(crate::clock::SystemClock))
    }

    fn join(c: &Coordinator, g: &Group, strategy: AssignmentStrategy) -> u64 {
        let topics = BTreeSet::from(["t".to_owned()]);
        c.join(
            g,
            "m",
            topics,
            strategy,
            Duration::from_secs(60),
            Notify::new(),
        )
        .unwrap()
    }

    fn all() -> Vec<TopicPartition> {
        (0..4).map(|p| TopicPartition::new("t", p)).collect()
    }

    fn generation(g: &Group) -> u32 {
        g.state.lock().generation
    }

    #[test]
    fn the_next_generation_waits_for_an_in_flight_commit_of_a_removed_member() {
        let c = coordinator();
        let g = c.group("g");
        let a = join(&c, &g, AssignmentStrategy::CooperativeSticky);
        assert_eq!(c.poll(&g, a, 0), Step::Assigned(1, all()));
        let ticket = Coordinator::begin_commit(&g, Some((a, 1)), &all()).unwrap();
        let b = join(&c, &g, AssignmentStrategy::CooperativeSticky);
        // Removed while its commit is in flight (as by missing max_poll_interval).
        c.leave(&g, a);
        assert_eq!(c.poll(&g, b, 0), Step::Waiting);
        assert_eq!(generation(&g), 1);
        drop(ticket);
        assert_eq!(c.poll(&g, b, 0), Step::Assigned(2, all()));
    }

    #[test]
    fn an_in_flight_commit_of_partitions_that_stay_does_not_hold_back_a_rebalance() {
        let c = coordinator();
        let g = c.group("g");
        let a = join(&c, &g, AssignmentStrategy::CooperativeSticky);
        assert_eq!(c.poll(&g, a, 0), Step::Assigned(1, all()));
        let b = join(&c, &g, AssignmentStrategy::CooperativeSticky);
        let Step::Revoke(moving) = c.poll(&g, a, 1) else {
            panic!("a must give partitions to b");
        };
        let kept: Vec<TopicPartition> = all()
            .into_iter()
            .filter(|tp| !moving.contains(tp))
            .collect();
        let ticket = Coordinator::begin_commit(&g, Some((a, 1)), &kept).unwrap();
        c.rejoin(&g, a);
        assert_eq!(c.poll(&g, b, 0), Step::Assigned(2, moving));
        assert_eq!(c.poll(&g, a, 1), Step::Assigned(2, kept));
        drop(ticket);
        assert_eq!(generation(&g), 2);
    }

    #[test]
    fn an_in_flight_commit_of_a_manual_assignment_holds_back_a_join() {
        let c = coordinator();
        let g = c.group("g");
        let ticket = Coordinator::begin_commit(&g, None, &all()[..1]).unwrap();
        let a = join(&c, &g, AssignmentStrategy::CooperativeSticky);
        assert_eq!(c.poll(&g, a, 0), Step::Waiting);
        drop(ticket);
        let generation = generation(&g);
        assert_eq!(c.poll(&g, a, 0), Step::Assigned(generation, all()));
    }

    #[test]
    fn a_member_may_not_commit_what_it_revoked_for_a_rebalance_in_progress() {
        let c = coordinator();
        let g = c.group("g");
        let range = AssignmentStrategy::Range;
        let a = join(&c, &g, range);
        assert_eq!(c.poll(&g, a, 0), Step::Assigned(1, all()));
        let x = join(&c, &g, range);
        assert_eq!(c.poll(&g, a, 1), Step::Revoke(all()));
        c.rejoin(&g, a);
        let Step::Assigned(2, mine) = c.poll(&g, a, 1) else {
            panic!("a takes up generation 2");
        };
        let Step::Assigned(2, theirs) = c.poll(&g, x, 0) else {
            panic!("x takes up generation 2");
        };
        // A third member: under an eager strategy both must revoke everything.
        join(&c, &g, range);
        assert_eq!(c.poll(&g, a, 2), Step::Revoke(mine.clone()));
        c.rejoin(&g, a);
        let refused = Coordinator::begin_commit(&g, Some((a, 2)), &mine[..1]);
        assert!(
            matches!(refused, Err(Error::CommitFailed { .. })),
            "a commit of a revoked partition: {:?}",
            refused.map(|_| ())
        );
        // x has not revoked yet: it still owns its partitions.
        drop(Coordinator::begin_commit(&g, Some((x, 2)), &theirs).unwrap());
    }
}
