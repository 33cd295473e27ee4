//! Topics in the state: creating one, and the bookkeeping of packable inline segments (which
//! queues' ranges name them, rewritten when they are packed).

use crate::manifest::command::PackedPart;
use crate::manifest::model::{Outcome, QueueLog, Rejection, State, Topic, TopicDef};

impl State {
    pub(super) fn create_topic(
        &mut self,
        topic: &str,
        def: &TopicDef,
    ) -> Result<Outcome, Rejection> {
        if def.queues == 0 || def.queues > 1024 {
            return Err(Rejection::Invalid("queues must be 1..=1024".into()));
        }
        if let Some(t) = self.topics.get(topic) {
            return if &t.def == def {
                Ok(Outcome::Defined { created: false })
            } else {
                Err(Rejection::Conflict(format!(
                    "topic {topic} exists with another definition"
                )))
            };
        }
        let queues = (0..def.queues).map(|_| QueueLog::default()).collect();
        self.topics.insert(
            topic.to_string(),
            Topic {
                def: def.clone(),
                queues,
            },
        );
        Ok(Outcome::Defined { created: true })
    }

    /// Records that a range of `topic`'s queue `queue` names `segment`, if it is packable.
    pub(crate) fn note_packable_ref(&mut self, segment: &str, topic: &str, queue: u32) {
        if let Some(queues) = self.packable.get_mut(segment) {
            if !queues.contains(&(topic.to_string(), queue)) {
                queues.insert((topic.to_string(), queue));
            }
        }
    }

    /// A pointer other than a range (a timer, a half message) names `segment`: it is written
    /// out as an object of its own, never packed.
    pub(crate) fn unpackable(&mut self, segment: &str) {
        self.packable.remove(segment);
    }

    /// [`Command::Packed`] for one part: the ranges naming it name the pack instead.
    pub(super) fn pack_part(&mut self, pack: &str, part: &PackedPart) {
        let Some(queues) = self.packable.remove(&part.segment) else {
            return;
        };
        self.inline_segments.remove(&part.segment);
        for (topic, queue) in queues {
            let Some(q) = self
                .topics
                .get_mut(&topic)
                .and_then(|t| t.queues.get_mut(queue as usize))
            else {
                continue;
            };
            for r in q.ranges.iter_mut().filter(|r| r.segment == part.segment) {
                r.segment = pack.to_string();
                r.first_ordinal += part.first_ordinal;
            }
        }
    }
}
