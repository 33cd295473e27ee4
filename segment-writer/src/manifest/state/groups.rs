//! Consumer groups in the state: creating one (with its dead-letter topic), and finding or
//! starting the cursor of a consumer on a queue.

use std::collections::BTreeMap;

use crate::manifest::command::ResolvedOffset;
use crate::manifest::model::{
    Cursor, Group, GroupDef, GroupMode, Outcome, PushDef, PushProgress, QueueLog, Rejection,
    StartFrom, State, Topic, TopicDef, TopicKind, dlq_topic,
};

impl State {
    pub(super) fn create_group(
        &mut self,
        group: &str,
        def: &GroupDef,
        resolved: &BTreeMap<String, Vec<ResolvedOffset>>,
    ) -> Result<Outcome, Rejection> {
        if def.push.is_some() && def.mode != GroupMode::Clustering {
            return Err(Rejection::Invalid(
                "push delivery needs a clustering group".into(),
            ));
        }
        if let Some(g) = self.groups.get_mut(group) {
            if &g.def == def {
                return Ok(Outcome::Defined { created: false });
            }
            if !g.def.differs_only_in_push(def) {
                return Err(Rejection::Conflict(format!(
                    "group {group} exists with another definition"
                )));
            }
            // Switching between pull and push, or changing the endpoint or limits: the
            // cursors stay; an endpoint that only changes keeps its signing secret.
            g.def.push = match (g.def.push.take(), &def.push) {
                (Some(old), Some(new)) => Some(PushDef {
                    secret_nonce: old.secret_nonce,
                    ..new.clone()
                }),
                (_, new) => new.clone(),
            };
            g.push = g
                .def
                .push
                .as_ref()
                .map(|_| g.push.take().unwrap_or_default());
            return Ok(Outcome::Defined { created: false });
        }
        for s in &def.subscriptions {
            if !self.topics.contains_key(&s.topic) {
                return Err(Rejection::TopicNotFound(s.topic.clone()));
            }
        }
        let mut g = Group {
            def: def.clone(),
            cursors: BTreeMap::new(),
            push: def.push.as_ref().map(|_| PushProgress::default()),
        };
        if def.mode == GroupMode::Clustering {
            let mut per_topic = BTreeMap::new();
            for s in &def.subscriptions {
                let resolved = resolved.get(&s.topic).map_or(&[][..], Vec::as_slice);
                per_topic.insert(
                    s.topic.clone(),
                    self.start_cursors_resolved(&s.topic, def.start_from, resolved),
                );
            }
            g.cursors.insert(String::new(), per_topic);
            let dlq = dlq_topic(group);
            self.topics.entry(dlq).or_insert_with(|| Topic {
                def: TopicDef {
                    kind: TopicKind::Normal,
                    queues: 1,
                    retention_hours: 24 * 14,
                },
                queues: vec![QueueLog::default()],
            });
        }
        self.groups.insert(group.to_string(), g);
        Ok(Outcome::Defined { created: true })
    }

    /// Where a new cursor on `topic` starts, per queue (inside a folded index run, a start
    /// time gives the run's start; a group's creation passes the exact offsets it read).
    pub fn start_cursors(&self, topic: &str, from: StartFrom) -> Vec<Cursor> {
        self.start_cursors_resolved(topic, from, &[])
    }

    /// [`Self::start_cursors`] with the exact offsets the gateway read from folded index runs
    /// for a start time (`resolved`, per queue).
    fn start_cursors_resolved(
        &self,
        topic: &str,
        from: StartFrom,
        resolved: &[ResolvedOffset],
    ) -> Vec<Cursor> {
        self.topics.get(topic).map_or_else(Vec::new, |t| {
            t.queues
                .iter()
                .enumerate()
                .map(|(qi, q)| {
                    Cursor::at(match from {
                        StartFrom::Earliest => q.min_offset,
                        StartFrom::Latest => q.next_offset,
                        StartFrom::Timestamp(ts) => {
                            super::offset_at_time_resolved(q, qi, ts, resolved)
                        }
                    })
                })
                .collect()
        })
    }

    /// The cursor of `consumer` on `topic`/`queue`, as it is (borrowed) or as it would start.
    pub fn cursor(
        &self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
    ) -> Option<std::borrow::Cow<'_, Cursor>> {
        let g = self.groups.get(group)?;
        let key = self.cursor_key(g, consumer);
        if let Some(c) = g
            .cursors
            .get(key)
            .and_then(|m| m.get(topic))
            .and_then(|v| v.get(queue as usize))
        {
            return Some(std::borrow::Cow::Borrowed(c));
        }
        self.start_cursors(topic, g.def.start_from)
            .into_iter()
            .nth(queue as usize)
            .map(std::borrow::Cow::Owned)
    }

    fn cursor_key<'a>(&self, g: &Group, consumer: &'a str) -> &'a str {
        GroupDef::cursor_key(g.def.mode, consumer)
    }

    pub(super) fn cursor_mut(
        &mut self,
        group: &str,
        consumer: &str,
        topic: &str,
        queue: u32,
    ) -> Result<&mut Cursor, Rejection> {
        let (from, key) = {
            let g = self
                .groups
                .get(group)
                .ok_or_else(|| Rejection::GroupNotFound(group.to_string()))?;
            if !g.def.subscriptions.iter().any(|s| s.topic == topic) {
                return Err(Rejection::Invalid(format!(
                    "group {group} does not subscribe to {topic}"
                )));
            }
            (g.def.start_from, self.cursor_key(g, consumer).to_string())
        };
        let queues = self
            .topics
            .get(topic)
            .ok_or_else(|| Rejection::TopicNotFound(topic.to_string()))?
            .queues
            .len();
        if queue as usize >= queues {
            return Err(Rejection::Invalid(format!(
                "topic {topic} has no queue {queue}"
            )));
        }
        let short = self.groups[group]
            .cursors
            .get(&key)
            .and_then(|m| m.get(topic))
            .is_none_or(|v| v.len() < queues);
        // Start cursors only for queues the group has no cursor on yet (not on every call:
        // this is the path of every lease and settle).
        let start = if short {
            self.start_cursors(topic, from)
        } else {
            Vec::new()
        };
        let g = self.groups.get_mut(group).expect("checked above");
        let cursors = g
            .cursors
            .entry(key)
            .or_default()
            .entry(topic.to_string())
            .or_default();
        // Queues added to the topic since the cursor was made start where the group would.
        while cursors.len() < queues {
            cursors.push(start[cursors.len()].clone());
        }
        Ok(&mut cursors[queue as usize])
    }

    /// Messages of `group` leased or waiting for a retry, over all its cursors.
    pub fn in_flight(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.cursors
                .values()
                .flat_map(|per_topic| per_topic.values())
                .flatten()
                .map(Cursor::in_flight)
                .sum()
        })
    }

    /// Messages of `group` leased now (pushes outstanding, for a push group).
    pub fn leased(&self, group: &str) -> usize {
        self.groups.get(group).map_or(0, |g| {
            g.cursors
                .values()
                .flat_map(|per_topic| per_topic.values())
                .flatten()
                .map(|c| c.leases.len())
                .sum()
        })
    }
}
