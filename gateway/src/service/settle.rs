//! Settling receipt handles (ack, nack): which manifest commands a list of handles becomes, and
//! each handle's answer from the outcomes of those commands. Used by `ack` and `nack`, and by a
//! receive that acks the previous batch in the same commit (`ack_receipt_handles`).
//!
//! The receipts of one receive on one queue settle as one command (`SettleMany`): one command
//! per queue and lease version instead of one per message. A handle repeated within a list
//! settles on its own, so that each answer stays its own.

use segment_writer::manifest::{Command, GroupDef, Outcome, QueueOffset, Rejection, SettleAction};

use crate::receipt::{Receipt, ReceiptKey};
use crate::wire::SettleResult;

/// The most handles one request may settle.
pub const MAX_HANDLES: usize = 1000;

/// Receipts of one cursor, queue, lease version and action.
#[derive(Debug)]
struct Batch {
    consumer: String,
    topic: String,
    queue: u32,
    version: u64,
    action: SettleAction,
    offsets: Vec<u64>,
    /// Where each offset's handle sits in the request.
    handles: Vec<usize>,
}

/// The commands that settle a list of handles, and how to answer each handle.
#[derive(Debug)]
pub struct SettlePlan {
    group: String,
    handles: usize,
    batches: Vec<Batch>,
}

impl SettlePlan {
    /// Plans settling `handles` of `group` (whose definition is `def`); `action` says what
    /// each genuine receipt gets. Forged, garbled and other groups' handles get no command and
    /// answer `InvalidReceipt`.
    pub fn new(
        keys: &ReceiptKey,
        group: &str,
        def: &GroupDef,
        handles: &[String],
        action: impl Fn(&Receipt, &GroupDef) -> SettleAction,
    ) -> Self {
        let mut batches: Vec<Batch> = Vec::new();
        for (i, h) in handles.iter().enumerate() {
            let Some(r) = keys.verify(h) else {
                continue;
            };
            if r.group != group {
                continue;
            }
            let action = action(&r, def);
            let same = |b: &Batch| {
                b.consumer == r.consumer
                    && b.topic == r.topic
                    && b.queue == r.queue
                    && b.version == r.version
                    && b.action == action
                    && !b.offsets.contains(&r.offset)
            };
            match batches.iter_mut().find(|b| same(b)) {
                Some(b) => {
                    b.offsets.push(r.offset);
                    b.handles.push(i);
                }
                None => batches.push(Batch {
                    consumer: r.consumer,
                    topic: r.topic,
                    queue: r.queue,
                    version: r.version,
                    action,
                    offsets: vec![r.offset],
                    handles: vec![i],
                }),
            }
        }
        SettlePlan {
            group: group.to_string(),
            handles: handles.len(),
            batches,
        }
    }

    /// The commands to commit, in order; [`SettlePlan::answer`] takes their outcomes in the
    /// same order.
    pub fn commands(&self) -> Vec<Command> {
        self.batches
            .iter()
            .map(|b| match b.offsets.as_slice() {
                [offset] => Command::Settle {
                    group: self.group.clone(),
                    consumer: b.consumer.clone(),
                    at: QueueOffset {
                        topic: b.topic.clone(),
                        queue: b.queue,
                        offset: *offset,
                    },
                    lease_version: b.version,
                    action: b.action,
                },
                offsets => Command::SettleMany {
                    group: self.group.clone(),
                    consumer: b.consumer.clone(),
                    topic: b.topic.clone(),
                    queue: b.queue,
                    lease_version: b.version,
                    action: b.action,
                    offsets: offsets.to_vec(),
                },
            })
            .collect()
    }

    /// No genuine handle: nothing to commit.
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// The (topic, queue, offset)s acked by receipts of the cursor `cursor_key` (as
    /// [`GroupDef::cursor_key`] names it) under `mode`: a receive committing these acks first
    /// may lease the next message of their FIFO message groups in the same commit.
    pub fn acked_by<'a>(
        &'a self,
        def: &'a GroupDef,
        cursor_key: &'a str,
    ) -> impl Iterator<Item = (&'a str, u32, u64)> + 'a {
        self.batches
            .iter()
            .filter(move |b| {
                b.action == SettleAction::Ack
                    && GroupDef::cursor_key(def.mode, &b.consumer) == cursor_key
            })
            .flat_map(|b| b.offsets.iter().map(|&o| (b.topic.as_str(), b.queue, o)))
    }

    /// One answer per handle, in the request's order, from the outcomes of
    /// [`SettlePlan::commands`].
    pub fn answer(&self, outcomes: &[Outcome]) -> Vec<SettleResult> {
        let mut results = vec![SettleResult::error("InvalidReceipt"); self.handles];
        for (b, o) in self.batches.iter().zip(outcomes) {
            for (&i, offset) in b.handles.iter().zip(&b.offsets) {
                results[i] = match o {
                    Outcome::Settled { .. } => SettleResult::ok(),
                    Outcome::SettledMany { expired, .. } if expired.contains(offset) => {
                        SettleResult::error("ReceiptExpired")
                    }
                    Outcome::SettledMany { .. } => SettleResult::ok(),
                    Outcome::Rejected {
                        rejection: Rejection::ReceiptExpired,
                    } => SettleResult::error("ReceiptExpired"),
                    _ => SettleResult::error("InvalidReceipt"),
                };
            }
        }
        results
    }

    /// Answers for a list none of whose handles is genuine.
    pub fn all_invalid(&self) -> Vec<SettleResult> {
        self.answer(&[])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use segment_writer::manifest::{GroupMode, StartFrom, Subscription};

    fn def(mode: GroupMode) -> GroupDef {
        GroupDef {
            subscriptions: vec![Subscription {
                topic: "t".into(),
                filter: None,
                sql: None,
            }],
            mode,
            start_from: StartFrom::Latest,
            max_retries: 16,
            invisible_ms: 30_000,
            retry_backoff_ms: vec![1000],
            push: None,
        }
    }

    fn handle(k: &ReceiptKey, group: &str, queue: u32, offset: u64, version: u64) -> String {
        k.sign(&Receipt {
            group: group.into(),
            consumer: "c".into(),
            topic: "t".into(),
            queue,
            offset,
            version,
            attempt: 1,
        })
    }

    #[test]
    fn handles_of_one_queue_and_lease_settle_as_one_command() {
        let k = ReceiptKey::new(b"s");
        let d = def(GroupMode::Clustering);
        let handles = vec![
            handle(&k, "g", 0, 1, 7),
            handle(&k, "g", 0, 2, 7),
            handle(&k, "other", 0, 3, 7),
            "garbage".to_string(),
            handle(&k, "g", 1, 1, 7),
            handle(&k, "g", 0, 1, 7),
        ];
        let plan = SettlePlan::new(&k, "g", &d, &handles, |_, _| SettleAction::Ack);
        let commands = plan.commands();
        assert_eq!(commands.len(), 3, "{commands:?}");
        assert!(matches!(&commands[0], Command::SettleMany { offsets, .. } if offsets == &[1, 2]));
        assert!(matches!(&commands[1], Command::Settle { at, .. } if at.queue == 1));
        assert!(matches!(&commands[2], Command::Settle { at, .. } if at.offset == 1));
        let acked: Vec<_> = plan.acked_by(&d, "").collect();
        assert_eq!(
            acked,
            vec![("t", 0, 1), ("t", 0, 2), ("t", 1, 1), ("t", 0, 1)]
        );
        let answers = plan.answer(&[
            Outcome::SettledMany {
                lease_version: 7,
                expired: vec![2],
            },
            Outcome::Settled { lease_version: 7 },
            Outcome::Rejected {
                rejection: Rejection::ReceiptExpired,
            },
        ]);
        let errors: Vec<Option<&str>> = answers.iter().map(|r| r.error.as_deref()).collect();
        assert_eq!(
            errors,
            vec![
                None,
                Some("ReceiptExpired"),
                Some("InvalidReceipt"),
                Some("InvalidReceipt"),
                None,
                Some("ReceiptExpired"),
            ]
        );
    }

    #[test]
    fn nacks_and_other_cursors_unblock_nothing() {
        let k = ReceiptKey::new(b"s");
        let d = def(GroupMode::Broadcast);
        let handles = vec![handle(&k, "g", 0, 1, 7)];
        let acks = SettlePlan::new(&k, "g", &d, &handles, |_, _| SettleAction::Ack);
        assert_eq!(acks.acked_by(&d, "c").count(), 1);
        assert_eq!(acks.acked_by(&d, "other").count(), 0);
        let nacks = SettlePlan::new(&k, "g", &d, &handles, |_, _| SettleAction::Nack {
            delay_ms: 0,
        });
        assert_eq!(nacks.acked_by(&d, "c").count(), 0);
    }
}
