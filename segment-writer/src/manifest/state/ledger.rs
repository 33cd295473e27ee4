//! Recording delivery-ledger events as the state changes (the pending events themselves are
//! `manifest::model::ledger`).

use crate::manifest::model::{LedgerEvent, State};

impl State {
    /// Records a ledger event at the current delta time.
    pub(super) fn record(&mut self, event: LedgerEvent) {
        let now = self.time_ms;
        self.ledger.push(event, now);
    }

    /// The pending (not yet flushed) events about `message_id` of `topic` (at `position` when
    /// known), in order.
    pub fn pending_events(
        &self,
        topic: &str,
        message_id: &str,
        position: Option<(u32, u64)>,
    ) -> Vec<LedgerEvent> {
        self.ledger
            .events
            .iter()
            .filter(|e| e.concerns(topic, message_id, position))
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::manifest::command::*;
    use crate::manifest::model::*;
    use crate::manifest::sim::{Sim, group_def, topic};

    #[test]
    fn a_message_life_is_recorded_in_order_and_dropped_once_flushed() {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(1),
            resolved: Default::default(),
        });
        s.one(Command::Append {
            topic: "t".into(),
            queue: 0,
            segment: "s".into(),
            first_ordinal: 0,
            count: 3,
            publish_time_ms: 1_000,
        });
        let at = QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset: 1,
        };
        let lease = |s: &mut Sim| match s.one(Command::Lease {
            group: "g".into(),
            consumer: "c1".into(),
            invisible_ms: 1_000,
            max: 1,
            candidates: vec![at.clone()],
            skipped: vec![],
            message_groups: vec![],
            located: vec![],
            max_in_flight: None,
        }) {
            Outcome::Leased {
                version, grants, ..
            } => (version, grants),
            other => panic!("{other:?}"),
        };
        let (v1, grants) = lease(&mut s);
        assert_eq!(
            grants,
            vec![Grant {
                at: at.clone(),
                attempt: 1
            }]
        );
        s.now += 10;
        s.one(Command::Settle {
            group: "g".into(),
            consumer: "c1".into(),
            at: at.clone(),
            lease_version: v1,
            action: SettleAction::Nack { delay_ms: 0 },
        });
        let (_, grants) = lease(&mut s);
        assert_eq!(grants[0].attempt, 2);
        // The second (last) lease runs out: expired, then dead-lettered.
        s.now += 5_000;
        s.one(Command::ExpireLeases);
        s.now += 10;
        s.one(Command::Redrive {
            group: "g".into(),
            max: 10,
            folded: vec![],
        });
        let (v3, grants) = lease(&mut s);
        assert_eq!(grants[0].attempt, 1, "attempts reset by the re-drive");
        s.one(Command::Settle {
            group: "g".into(),
            consumer: "c1".into(),
            at: at.clone(),
            lease_version: v3,
            action: SettleAction::Ack,
        });
        let events = s.state.pending_events("t", "unknown-id", Some((0, 1)));
        let story: Vec<(EventKind, Option<u32>)> =
            events.iter().map(|e| (e.event, e.attempt)).collect();
        assert_eq!(
            story,
            vec![
                (EventKind::Published, None),
                (EventKind::Delivered, Some(1)),
                (EventKind::Nacked, Some(1)),
                (EventKind::Delivered, Some(2)),
                (EventKind::LeaseExpired, Some(2)),
                (EventKind::DeadLettered, None),
                (EventKind::Redriven, None),
                (EventKind::Delivered, Some(1)),
                (EventKind::Acked, Some(1)),
            ]
        );
        assert!(events.iter().all(|e| e.gateway.as_deref() == Some("w")));
        assert_eq!(events[1].consumer.as_deref(), Some("c1"));
        assert_eq!(
            events[3].time_ms + 1_000,
            events[4].time_ms,
            "expired at its deadline"
        );
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        // Another offset of the same batch is not this message's story beyond the publish.
        assert_eq!(s.state.pending_events("t", "x", Some((0, 2))).len(), 1);
        // The dead letter's own topic has its publish.
        let dlq = s.state.pending_events("DLQ.g", "x", Some((0, 0)));
        assert_eq!(dlq.len(), 1);
        assert_eq!(dlq[0].event, EventKind::Published);
        let through = s.state.ledger.next_seq;
        s.one(Command::LedgerFlushed {
            through_seq: through,
            objects: vec![],
        });
        assert!(s.state.ledger.events.is_empty());
        assert_eq!(s.state.ledger.bytes, 0);
    }
}
