//! A group member's side of the rebalance protocol: revoking (committing first, running the
//! listener), joining and taking an assignment, one coordinator step at a time.

use super::*;

impl Consumer {
    /// Before giving partitions up: auto-commit, then the listener. Neither while the thread is
    /// panicking (a drop during unwinding): the listener's `on_revoked` is where users commit, and
    /// a callback that panicked during unwinding would abort the process.
    pub(super) fn before_revoke(
        &mut self,
        partitions: &[TopicPartition],
        lost: bool,
    ) -> Result<()> {
        if std::thread::panicking() {
            return Ok(());
        }
        let result = if self.config.enable_auto_commit && !lost {
            self.auto_commit()
        } else {
            Ok(())
        };
        if let Some(mut l) = self.listener.take() {
            if lost {
                l.on_lost(self, partitions);
            } else {
                l.on_revoked(self, partitions);
            }
            self.listener = Some(l);
        }
        result
    }

    /// Give up everything (leaving the group, or dropping a manual assignment).
    pub(super) fn revoke_all(&mut self) -> Result<()> {
        if self.owned.is_empty() {
            return Ok(());
        }
        if self.membership.is_some() {
            let all = self.assignment();
            self.before_revoke(&all, false)
        } else if self.config.enable_auto_commit {
            self.auto_commit()
        } else {
            Ok(())
        }
    }

    /// Talk to the group coordinator until this member is settled: take up a new generation,
    /// revoke and rejoin, take up the next (a few steps at most).
    pub(super) fn group_step(&mut self) -> Result<()> {
        for _ in 0..4 {
            if !self.group_step_once()? {
                break;
            }
        }
        Ok(())
    }

    /// One exchange with the coordinator; returns whether to ask again.
    pub(super) fn group_step_once(&mut self) -> Result<bool> {
        let Some(m) = &self.membership else {
            return Ok(false);
        };
        let (group, member, generation) = (m.group.clone(), m.member, m.generation);
        let broker = self.broker.clone();
        let coordinator = broker.coordinator();
        match coordinator.poll(&group, member, generation) {
            Step::Stable | Step::Waiting => Ok(false),
            Step::Revoke(partitions) => {
                let result = self.before_revoke(&partitions, false);
                for tp in &partitions {
                    self.remove_owned(tp);
                }
                coordinator.rejoin(&group, member);
                result.map(|()| true)
            }
            Step::Assigned(generation, partitions) => {
                let mut added = Vec::new();
                let keep: BTreeSet<&TopicPartition> = partitions.iter().collect();
                let gone: Vec<TopicPartition> = self
                    .owned
                    .keys()
                    .filter(|tp| !keep.contains(tp))
                    .cloned()
                    .collect();
                for tp in &gone {
                    self.remove_owned(tp);
                }
                for tp in partitions {
                    if self.owned.contains_key(&tp) {
                        continue;
                    }
                    // A topic deleted meanwhile: skip it; the next rebalance drops it.
                    let Ok(p) = self
                        .store
                        .topic(&tp.topic)
                        .and_then(|t| t.partition(tp.partition))
                    else {
                        continue;
                    };
                    self.add_owned(tp.clone(), p);
                    added.push(tp);
                }
                if let Some(m) = &mut self.membership {
                    m.generation = generation;
                }
                if let Some(mut l) = self.listener.take() {
                    if !added.is_empty() {
                        l.on_assigned(self, &added);
                    }
                    self.listener = Some(l);
                }
                Ok(true)
            }
            Step::Fenced => {
                let lost = self.assignment();
                if !lost.is_empty() {
                    self.before_revoke(&lost, true)?;
                }
                self.clear_owned();
                // Rejoin as a new member.
                let Some(m) = self.membership.take() else {
                    return Ok(false);
                };
                let member = coordinator.join(
                    &m.group,
                    &self.config.client_id,
                    m.subscription.clone(),
                    self.config.assignment_strategy,
                    self.config.max_poll_interval,
                    self.notify.clone(),
                )?;
                self.membership = Some(Membership {
                    member,
                    generation: 0,
                    ..m
                });
                Ok(true)
            }
        }
    }
}
