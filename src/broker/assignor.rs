//! Partition assignment strategies for consumer groups (Kafka's `partition.assignment.strategy`).

use std::collections::{BTreeMap, BTreeSet};

use super::TopicPartition;

/// How a group's partitions are divided among its members.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AssignmentStrategy {
    /// Per topic, each member gets a contiguous range of partitions (the first members one more
    /// when they do not divide evenly). Kafka's `RangeAssignor`. Every rebalance revokes every
    /// partition first (eager).
    Range,
    /// All subscribed partitions, sorted, dealt to the members in turn. Kafka's
    /// `RoundRobinAssignor`. Eager.
    RoundRobin,
    /// Balanced like round-robin but keeping each member's partitions where possible, and
    /// revoking only the partitions that move: members go on consuming the rest during a
    /// rebalance. Kafka's `CooperativeStickyAssignor`. The default.
    #[default]
    CooperativeSticky,
}

impl AssignmentStrategy {
    /// Whether a rebalance revokes only the partitions that move.
    pub fn is_cooperative(self) -> bool {
        self == AssignmentStrategy::CooperativeSticky
    }
}

/// A member as the assignor sees it.
pub(crate) struct MemberInfo<'a> {
    pub id: u64,
    pub subscription: &'a BTreeSet<String>,
    /// What it owns now (for the sticky strategy).
    pub owned: &'a [TopicPartition],
}

/// Assign `partitions` (topic -> partition count) to `members` (sorted by id). Deterministic.
pub(crate) fn assign(
    strategy: AssignmentStrategy,
    members: &[MemberInfo<'_>],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<u64, Vec<TopicPartition>> {
    let mut out: BTreeMap<u64, Vec<TopicPartition>> =
        members.iter().map(|m| (m.id, Vec::new())).collect();
    match strategy {
        AssignmentStrategy::Range => {
            for (topic, &count) in partitions {
                let subs: Vec<u64> = members
                    .iter()
                    .filter(|m| m.subscription.contains(topic))
                    .map(|m| m.id)
                    .collect();
                if subs.is_empty() {
                    continue;
                }
                let n = subs.len() as u32;
                let (each, extra) = (count / n, count % n);
                let mut next = 0u32;
                for (i, id) in subs.iter().enumerate() {
                    let take = each + u32::from((i as u32) < extra);
                    for p in next..next + take {
                        out.entry(*id)
                            .or_default()
                            .push(TopicPartition::new(topic.clone(), p));
                    }
                    next += take;
                }
            }
        }
        AssignmentStrategy::RoundRobin => {
            let mut cursor = 0usize;
            for (topic, &count) in partitions {
                for p in 0..count {
                    // The next member, in turn, that subscribes to this topic.
                    for step in 0..members.len() {
                        let m = &members[(cursor + step) % members.len()];
                        if m.subscription.contains(topic) {
                            out.entry(m.id)
                                .or_default()
                                .push(TopicPartition::new(topic.clone(), p));
                            cursor = (cursor + step + 1) % members.len();
                            break;
                        }
                    }
                }
            }
        }
        AssignmentStrategy::CooperativeSticky => sticky(members, partitions, &mut out),
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

/// Keep owned partitions that still exist and are still subscribed; give the rest to the least
/// loaded eligible member; then move partitions from the most to the least loaded eligible member
/// until no move narrows the gap.
fn sticky(
    members: &[MemberInfo<'_>],
    partitions: &BTreeMap<String, u32>,
    out: &mut BTreeMap<u64, Vec<TopicPartition>>,
) {
    let exists = |tp: &TopicPartition| partitions.get(&tp.topic).is_some_and(|&c| tp.partition < c);
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    for m in members {
        for tp in m.owned {
            if exists(tp) && m.subscription.contains(&tp.topic) && taken.insert(tp.clone()) {
                out.entry(m.id).or_default().push(tp.clone());
            }
        }
    }
    let eligible = |topic: &str| -> Vec<u64> {
        members
            .iter()
            .filter(|m| m.subscription.contains(topic))
            .map(|m| m.id)
            .collect()
    };
    for (topic, &count) in partitions {
        let ids = eligible(topic);
        for p in 0..count {
            let tp = TopicPartition::new(topic.clone(), p);
            if taken.contains(&tp) || ids.is_empty() {
                continue;
            }
            let id = *ids
                .iter()
                .min_by_key(|id| (out.get(id).map_or(0, Vec::len), **id))
                .unwrap_or(&ids[0]);
            out.entry(id).or_default().push(tp.clone());
            taken.insert(tp);
        }
    }
    // Balance: bounded by the number of partitions (each move narrows a gap of at least two).
    let total: usize = out.values().map(Vec::len).sum();
    for _ in 0..=total {
        let mut moved = false;
        let mut order: Vec<u64> = out.keys().copied().collect();
        order.sort_by_key(|id| std::cmp::Reverse((out[id].len(), std::cmp::Reverse(*id))));
        'from: for from in order {
            let from_len = out[&from].len();
            // The last partition the member holds that some much less loaded member could take.
            let candidates: Vec<TopicPartition> = out[&from].iter().rev().cloned().collect();
            for tp in candidates {
                let to = eligible(&tp.topic)
                    .into_iter()
                    .filter(|id| *id != from && out[id].len() + 1 < from_len)
                    .min_by_key(|id| (out[id].len(), *id));
                if let Some(to) = to {
                    if let Some(v) = out.get_mut(&from) {
                        v.retain(|x| x != &tp);
                    }
                    out.entry(to).or_default().push(tp);
                    moved = true;
                    break 'from;
                }
            }
        }
        if !moved {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subs(topics: &[&str]) -> BTreeSet<String> {
        topics.iter().map(|s| s.to_string()).collect()
    }

    fn counts(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
        pairs.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    fn check_complete_and_disjoint(
        a: &BTreeMap<u64, Vec<TopicPartition>>,
        partitions: &BTreeMap<String, u32>,
    ) {
        let mut all: Vec<_> = a.values().flatten().cloned().collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n, "a partition is assigned twice: {a:?}");
        let expected: usize = partitions.values().map(|&c| c as usize).sum();
        assert_eq!(n, expected, "{a:?}");
    }

    #[test]
    fn range_gives_contiguous_ranges_like_kafka() {
        let s = subs(&["t"]);
        let members: Vec<MemberInfo> = (1..=3)
            .map(|id| MemberInfo {
                id,
                subscription: &s,
                owned: &[],
            })
            .collect();
        let p = counts(&[("t", 7)]);
        let a = assign(AssignmentStrategy::Range, &members, &p);
        let parts = |id| a[&id].iter().map(|tp| tp.partition).collect::<Vec<_>>();
        assert_eq!(parts(1), vec![0, 1, 2]);
        assert_eq!(parts(2), vec![3, 4]);
        assert_eq!(parts(3), vec![5, 6]);
        check_complete_and_disjoint(&a, &p);
    }

    #[test]
    fn round_robin_deals_in_turn_respecting_subscriptions() {
        let ab = subs(&["a", "b"]);
        let b = subs(&["b"]);
        let members = [
            MemberInfo {
                id: 1,
                subscription: &ab,
                owned: &[],
            },
            MemberInfo {
                id: 2,
                subscription: &b,
                owned: &[],
            },
        ];
        let p = counts(&[("a", 2), ("b", 2)]);
        let a = assign(AssignmentStrategy::RoundRobin, &members, &p);
        check_complete_and_disjoint(&a, &p);
        assert!(a[&2].iter().all(|tp| tp.topic == "b"));
    }

    #[test]
    fn sticky_keeps_partitions_and_balances() {
        let s = subs(&["t"]);
        let p = counts(&[("t", 6)]);
        let one = [MemberInfo {
            id: 1,
            subscription: &s,
            owned: &[],
        }];
        let a1 = assign(AssignmentStrategy::CooperativeSticky, &one, &p);
        assert_eq!(a1[&1].len(), 6);
        // A second member joins: three move, three stay.
        let two = [
            MemberInfo {
                id: 1,
                subscription: &s,
                owned: &a1[&1],
            },
            MemberInfo {
                id: 2,
                subscription: &s,
                owned: &[],
            },
        ];
        let a2 = assign(AssignmentStrategy::CooperativeSticky, &two, &p);
        check_complete_and_disjoint(&a2, &p);
        assert_eq!((a2[&1].len(), a2[&2].len()), (3, 3));
        assert!(a2[&1].iter().all(|tp| a1[&1].contains(tp)));
        // A third joins: each of the first two gives up one.
        let three = [
            MemberInfo {
                id: 1,
                subscription: &s,
                owned: &a2[&1],
            },
            MemberInfo {
                id: 2,
                subscription: &s,
                owned: &a2[&2],
            },
            MemberInfo {
                id: 3,
                subscription: &s,
                owned: &[],
            },
        ];
        let a3 = assign(AssignmentStrategy::CooperativeSticky, &three, &p);
        check_complete_and_disjoint(&a3, &p);
        for id in 1..=3 {
            assert_eq!(a3[&id].len(), 2);
        }
        let moved = a3[&1].iter().filter(|tp| !a2[&1].contains(tp)).count()
            + a3[&2].iter().filter(|tp| !a2[&2].contains(tp)).count();
        assert_eq!(moved, 0, "members 1 and 2 only lose partitions");
        // Member 2 leaves: its partitions are shared out, the others keep theirs.
        let left = [
            MemberInfo {
                id: 1,
                subscription: &s,
                owned: &a3[&1],
            },
            MemberInfo {
                id: 3,
                subscription: &s,
                owned: &a3[&3],
            },
        ];
        let a4 = assign(AssignmentStrategy::CooperativeSticky, &left, &p);
        check_complete_and_disjoint(&a4, &p);
        assert!(a3[&1].iter().all(|tp| a4[&1].contains(tp)));
        assert!(a3[&3].iter().all(|tp| a4[&3].contains(tp)));
        assert_eq!((a4[&1].len(), a4[&3].len()), (3, 3));
    }

    #[test]
    fn every_strategy_is_complete_and_disjoint_for_many_shapes() {
        let s = subs(&["a", "b", "c"]);
        for strategy in [
            AssignmentStrategy::Range,
            AssignmentStrategy::RoundRobin,
            AssignmentStrategy::CooperativeSticky,
        ] {
            for n in 1..6u64 {
                for count in [1u32, 3, 8] {
                    let members: Vec<MemberInfo> = (1..=n)
                        .map(|id| MemberInfo {
                            id,
                            subscription: &s,
                            owned: &[],
                        })
                        .collect();
                    let p = counts(&[("a", count), ("b", count + 1), ("c", 2)]);
                    let a = assign(strategy, &members, &p);
                    check_complete_and_disjoint(&a, &p);
                }
            }
        }
    }
}
