//! The in-process group coordinator: membership, generations and assignments of consumer groups.
//!
//! # Rebalance protocol
//! A member joining or leaving, a member missing `max_poll_interval`, or a subscribed topic
//! gaining partitions starts a *rebalance*: the coordinator computes the target assignment and
//! asks every member that must give something up to *revoke* it (on its next `poll`, which runs
//! the listener's `on_revoked` so the member can commit first). Under an eager strategy a member
//! gives up everything; under the cooperative one only the partitions that move, and it keeps
//! consuming the rest meanwhile. When every member has revoked (or been removed for missing
//! `max_poll_interval`), the generation advances and each member picks up its new assignment on
//! its next `poll` (`on_assigned`). A partition therefore never has two owners: its new owner gets
//! it only after its old owner let go.
//!
//! Commits are accepted only from a current member for partitions it owns in the current
//! generation (checked under the group lock, which the commit holds until it is durable); a member
//! that lost a partition gets [`Error::CommitFailed`]. A member whose own partitions did not move
//! may commit them even before it polled the new generation.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::error::{Error, Result};
use crate::partition::Notify;

use super::assignor::{assign, AssignmentStrategy, MemberInfo};
use super::TopicPartition;

/// Looks up the partition counts of topics (missing topics are left out).
pub(crate) type PartitionCounts = dyn Fn(&BTreeSet<String>) -> BTreeMap<String, u32> + Send + Sync;

/// Every group of a store.
pub(crate) struct Coordinator {
    groups: Mutex<HashMap<String, Arc<Group>>>,
    next_member: AtomicU64,
    counts: Box<PartitionCounts>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("groups", &self.groups.lock().keys().collect::<Vec<_>>())
            .finish()
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
}

#[derive(Debug)]
struct Member {
    client_id: String,
    subscription: BTreeSet<String>,
    last_poll: Instant,
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
    pub fn new(counts: Box<PartitionCounts>) -> Coordinator {
        Coordinator {
            groups: Mutex::new(HashMap::new()),
            next_member: AtomicU64::new(1),
            counts,
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
                last_poll: Instant::now(),
                max_poll_interval,
                rejoined: true,
                notify,
            },
        );
        self.start_rebalance(&mut st);
        Ok(id)
    }

    /// Remove a member (it has revoked everything). Starts a rebalance for the rest.
    pub fn leave(&self, group: &Group, member: u64) {
        let mut st = group.state.lock();
        if st.members.remove(&member).is_some() {
            st.assignment.remove(&member);
            self.start_rebalance(&mut st);
        }
    }

    /// A member's poll: note that it is alive, expire members that are not, notice new
    /// partitions, and say what it must do.
    pub fn poll(&self, group: &Group, member: u64, generation: u32) -> Step {
        let mut st = group.state.lock();
        let now = Instant::now();
        let expired: Vec<u64> = st
            .members
            .iter()
            .filter(|(id, m)| {
                **id != member && now.duration_since(m.last_poll) > m.max_poll_interval
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
                self.start_rebalance(&mut st);
            }
            return Step::Fenced;
        };
        me.last_poll = now;
        if !restart {
            let topics = subscribed(&st);
            restart = (self.counts)(&topics) != st.counts;
        }
        if restart {
            self.start_rebalance(&mut st);
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

    /// The member revoked what [`Step::Revoke`] asked for.
    pub fn rejoin(&self, group: &Group, member: u64) {
        let mut st = group.state.lock();
        if let Some(m) = st.members.get_mut(&member) {
            m.rejoined = true;
        }
        Self::try_complete(&mut st);
    }

    /// Run `commit` if `member` (at `generation`) may commit `partitions` now, holding the group
    /// lock until it returns (so no rebalance completes in between). `member == None` is a
    /// consumer with a manual assignment: allowed only while the group has no members.
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
        let st = group.state.lock();
        let refuse = |reason: String| {
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
                // only after its old owner revoked it, or was removed from the group).
                let owned = st.assignment.get(&id).map_or(&[][..], Vec::as_slice);
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
            }
        }
        commit()
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

    fn start_rebalance(&self, st: &mut GroupState) {
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
        Self::try_complete(st);
    }

    fn try_complete(st: &mut GroupState) {
        if !st.rebalancing || st.members.values().any(|m| !m.rejoined) {
            return;
        }
        st.generation += 1;
        st.assignment = std::mem::take(&mut st.target);
        st.rebalancing = false;
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
