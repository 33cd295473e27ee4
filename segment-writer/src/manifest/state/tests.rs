//! Tests of apply: offsets, leases and settles, push groups, packs, the sequencer, requests'
//! idempotency and orphans.

use super::*;
use crate::manifest::command::*;
use crate::manifest::model::*;
use crate::manifest::sim::{Sim, delta, group_def, topic};

fn append(t: &str, queue: u32, count: u32) -> Command {
    Command::Append {
        topic: t.into(),
        queue,
        segment: "s".into(),
        first_ordinal: 0,
        count,
        publish_time_ms: 0,
    }
}

impl Sim {
    fn lease_all(&mut self, consumer: &str) -> Vec<Grant> {
        let push = self
            .state
            .groups
            .get("g")
            .is_some_and(|g| g.def.push.is_some());
        let consumer = if push { PUSH_CONSUMER } else { consumer };
        let candidates = self.state.candidates("g", consumer, self.now, 100);
        match self.one(Command::Lease {
            group: "g".into(),
            consumer: consumer.into(),
            invisible_ms: 1000,
            max: 100,
            candidates,
            skipped: vec![],
            message_groups: vec![],
            located: vec![],
            max_in_flight: None,
        }) {
            Outcome::Leased { grants, .. } => grants,
            o => panic!("{o:?}"),
        }
    }
}

#[test]
fn offsets_are_dense_per_queue_in_apply_order() {
    let mut s = Sim::new();
    s.one(topic("t", 2));
    assert_eq!(
        s.one(append("t", 0, 3)),
        Outcome::Appended { base_offset: 0 }
    );
    assert_eq!(
        s.one(append("t", 1, 1)),
        Outcome::Appended { base_offset: 0 }
    );
    assert_eq!(
        s.one(append("t", 0, 2)),
        Outcome::Appended { base_offset: 3 }
    );
    let q = &s.state.topics["t"].queues[0];
    assert_eq!(q.next_offset, 5);
    assert_eq!(q.locate(4).map(|(r, o)| (r.base, o)), Some((3, 1)));
    assert_eq!(q.locate(5), None);
}

#[test]
fn refused_commands_change_nothing() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    let before = s.state.clone();
    assert!(matches!(
        s.one(append("nope", 0, 1)),
        Outcome::Rejected { .. }
    ));
    assert!(matches!(s.one(append("t", 9, 1)), Outcome::Rejected { .. }));
    assert!(matches!(
        s.one(topic("t", 2)),
        Outcome::Rejected {
            rejection: Rejection::Conflict(_)
        }
    ));
    assert_eq!(s.state.topics, before.topics);
    assert_eq!(s.one(topic("t", 1)), Outcome::Defined { created: false });
}

fn push_def(max_in_flight: u32, rate_per_s: u32, nonce: &str) -> GroupDef {
    GroupDef {
        push: Some(PushDef {
            url: "http://127.0.0.1:9/hook".into(),
            max_in_flight,
            rate_per_s,
            timeout_ms: 1000,
            format: PushFormat::Binary,
            secret_nonce: nonce.into(),
        }),
        ..group_def(3)
    }
}

fn acked(s: &mut Sim, grants: &[Grant], version: u64) {
    for g in grants {
        s.one(Command::Settle {
            group: "g".into(),
            consumer: String::new(),
            at: g.at.clone(),
            lease_version: version,
            action: SettleAction::Ack,
        });
    }
}

#[test]
fn a_push_group_has_at_most_max_in_flight_leases_whoever_asks() {
    let mut s = Sim::new();
    s.one(topic("t", 2));
    s.one(append("t", 0, 10));
    s.one(append("t", 1, 10));
    let def = push_def(3, 0, "n1");
    s.one(Command::CreateGroup {
        group: "g".into(),
        def,
        resolved: Default::default(),
    });
    // Two gateways ask for everything: the first gets 3, the second nothing.
    let first = s.lease_all("");
    let v = s.state.version;
    assert_eq!(first.len(), 3);
    assert!(s.lease_all("").is_empty());
    assert_eq!(s.state.leased("g"), 3);
    // Two acks make room for two more.
    acked(&mut s, &first[..2], v);
    assert_eq!(s.lease_all("").len(), 2);
    assert_eq!(s.state.leased("g"), 3);
}

#[test]
fn a_push_groups_rate_cap_holds_over_time() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    s.one(append("t", 0, 100));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: push_def(1000, 5, "n1"),
        resolved: Default::default(),
    });
    // A second's worth at once, then one per 200 ms.
    assert_eq!(s.lease_all("").len(), 5);
    assert!(s.lease_all("").is_empty());
    s.now += 200;
    assert_eq!(s.lease_all("").len(), 1);
    s.now += 10_000;
    assert_eq!(s.lease_all("").len(), 5, "the burst is one second's worth");
}

#[test]
fn a_group_switches_between_pull_and_push_keeping_its_cursors_and_secret() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    s.one(append("t", 0, 4));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(3),
        resolved: Default::default(),
    });
    let grants = s.lease_all("");
    let v = s.state.version;
    acked(&mut s, &grants[..2], v);
    let cursors = s.state.groups["g"].cursors.clone();
    // Pull to push: same cursors, a nonce, counters from zero.
    assert_eq!(
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: push_def(8, 0, "n1"),
            resolved: Default::default(),
        }),
        Outcome::Defined { created: false }
    );
    let g = &s.state.groups["g"];
    assert_eq!(g.cursors, cursors);
    assert_eq!(
        g.def.push.as_ref().map(|p| p.secret_nonce.as_str()),
        Some("n1")
    );
    assert_eq!(g.push, Some(PushProgress::default()));
    // Another endpoint keeps the secret; the same settings with a new nonce change nothing.
    let mut other = push_def(16, 0, "n2");
    if let Some(p) = other.push.as_mut() {
        p.url = "http://127.0.0.1:9/other".into();
    }
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: other,
        resolved: Default::default(),
    });
    let p = s.state.groups["g"].def.push.clone().expect("push");
    assert_eq!((p.max_in_flight, p.secret_nonce.as_str()), (16, "n1"));
    // Counters add up; a long error is cut at a char boundary.
    s.one(Command::PushReport {
        group: "g".into(),
        gateway: "gw1".into(),
        delivered: 3,
        failed: 1,
        last_error: Some("é".repeat(400)),
        paused_until_ms: Some(s.now + 5_000),
    });
    let progress = s.state.groups["g"].push.clone().expect("progress");
    assert_eq!((progress.delivered_total, progress.failed_total), (3, 1));
    assert_eq!(progress.live_pushers(s.now).collect::<Vec<_>>(), ["gw1"]);
    assert_eq!(
        progress
            .live_pushers(s.now + PushProgress::PUSHER_TTL_MS)
            .count(),
        0
    );
    assert_eq!(progress.last_error.map(|e| e.len()), Some(512));
    assert_eq!(progress.last_error_time_ms, Some(s.now));
    // The latest pause end reported is kept; an earlier one does not shorten it.
    assert_eq!(progress.paused_until_ms, Some(s.now + 5_000));
    s.one(Command::PushReport {
        group: "g".into(),
        gateway: "gw2".into(),
        delivered: 0,
        failed: 1,
        last_error: None,
        paused_until_ms: Some(s.now + 1_000),
    });
    let progress = s.state.groups["g"].push.clone().expect("progress");
    assert_eq!(progress.paused_until_ms, Some(s.now + 5_000));
    // Back to pull: the cursors are still those of before; a late report is dropped.
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(3),
        resolved: Default::default(),
    });
    assert_eq!(s.state.groups["g"].cursors, cursors);
    assert_eq!(s.state.groups["g"].push, None);
    s.one(Command::PushReport {
        group: "g".into(),
        gateway: "gw1".into(),
        delivered: 1,
        failed: 0,
        last_error: None,
        paused_until_ms: None,
    });
    assert_eq!(s.state.groups["g"].push, None);
    // Anything but push still conflicts, and a broadcast group cannot push.
    let before = s.state.clone();
    let mut changed = group_def(4);
    changed.push = push_def(8, 0, "n3").push;
    assert_eq!(
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: changed,
            resolved: Default::default(),
        }),
        Outcome::rejected(Rejection::Conflict(
            "group g exists with another definition".into()
        ))
    );
    let broadcast = GroupDef {
        mode: GroupMode::Broadcast,
        ..push_def(8, 0, "n4")
    };
    assert!(matches!(
        s.one(Command::CreateGroup {
            group: "b".into(),
            def: broadcast,
            resolved: Default::default(),
        }),
        Outcome::Rejected {
            rejection: Rejection::Invalid(_)
        }
    ));
    assert_eq!(s.state.groups, before.groups);
}

#[test]
fn a_version_gap_is_refused() {
    let mut st = State::default();
    assert_eq!(
        st.apply(&delta(2, 0, vec![])),
        Err(VersionGap { have: 0, got: 2 })
    );
}

#[test]
fn settle_many_is_the_same_as_one_settle_per_offset() {
    // Two replicas lease the same six messages; one settles per offset, the other with
    // one command per action. Offset 5's receipt is stale on both.
    let setup = || {
        let mut s = Sim::new();
        s.one(topic("t", 1));
        s.one(append("t", 0, 6));
        s.one(Command::CreateGroup {
            group: "g".into(),
            def: group_def(1),
            resolved: Default::default(),
        });
        assert_eq!(s.lease_all("").len(), 6);
        s
    };
    let (mut one, mut many) = (setup(), setup());
    let v = one.state.version;
    let at = |offset| QueueOffset {
        topic: "t".into(),
        queue: 0,
        offset,
    };
    let settle = |offset, version, action| Command::Settle {
        group: "g".into(),
        consumer: String::new(),
        at: at(offset),
        lease_version: version,
        action,
    };
    let settle_full = |topic: &str, version, offsets: Vec<u64>, action| Command::SettleMany {
        group: "g".into(),
        consumer: String::new(),
        topic: topic.into(),
        queue: 0,
        lease_version: version,
        action,
        offsets,
    };
    let settle_many = |offsets, action| settle_full("t", v, offsets, action);
    let nack = SettleAction::Nack { delay_ms: 50 };
    for o in [0, 2, 3] {
        assert_eq!(
            one.one(settle(o, v, SettleAction::Ack)),
            Outcome::Settled { lease_version: v }
        );
    }
    one.one(settle(1, v, nack));
    one.one(settle(4, v, nack));
    assert_eq!(
        one.one(settle(5, v - 1, SettleAction::Ack)),
        Outcome::rejected(Rejection::ReceiptExpired)
    );
    assert_eq!(
        many.one(settle_many(vec![0, 2, 3, 0], SettleAction::Ack)),
        Outcome::SettledMany {
            lease_version: v,
            expired: vec![]
        },
        "a repeated ack is idempotent"
    );
    many.one(settle_many(vec![1, 4], nack));
    let stale = settle_full("t", v - 1, vec![5], SettleAction::Ack);
    assert_eq!(
        many.one(stale),
        Outcome::SettledMany {
            lease_version: v - 1,
            expired: vec![5]
        }
    );
    let cursor = |s: &Sim| s.state.cursor("g", "", "t", 0).map(|c| c.into_owned());
    assert_eq!(cursor(&one), cursor(&many));
    // A second nack of 1 finds no lease: expired, and nothing changes.
    let before = many.state.clone();
    assert_eq!(
        many.one(settle_many(vec![1], nack)),
        Outcome::SettledMany {
            lease_version: v,
            expired: vec![1]
        }
    );
    assert_eq!(
        cursor(&many),
        before.cursor("g", "", "t", 0).map(|c| c.into_owned())
    );
    // Refused whole, changing nothing: a topic the group does not read, a bad extend.
    let before = many.state.clone();
    let other = settle_full("u", v, vec![1], SettleAction::Ack);
    assert!(matches!(many.one(other), Outcome::Rejected { .. }));
    let bad = settle_many(vec![5, 1], SettleAction::Extend { invisible_ms: 0 });
    assert!(matches!(
        many.one(bad),
        Outcome::Rejected {
            rejection: Rejection::Invalid(_)
        }
    ));
    assert_eq!(many.state.groups, before.groups);
}

#[test]
fn lease_ack_and_redelivery_after_expiry_then_dead_letter() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    s.one(append("t", 0, 2));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(1),
        resolved: Default::default(),
    });
    let g = s.lease_all("");
    assert_eq!(g.len(), 2);
    let v = s.state.version;
    // Ack offset 0.
    let ack = |offset, v| Command::Settle {
        group: "g".into(),
        consumer: String::new(),
        at: QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset,
        },
        lease_version: v,
        action: SettleAction::Ack,
    };
    assert_eq!(s.one(ack(0, v)), Outcome::Settled { lease_version: v });
    assert_eq!(
        s.one(ack(0, v)),
        Outcome::Settled { lease_version: v },
        "ack is idempotent"
    );
    // Nothing free until offset 1's lease expires plus backoff.
    assert!(s.lease_all("").is_empty());
    s.now += 1000;
    assert!(s.lease_all("").is_empty(), "backoff not yet over");
    s.now += 100;
    let g = s.lease_all("");
    assert_eq!(
        g,
        vec![Grant {
            at: QueueOffset {
                topic: "t".into(),
                queue: 0,
                offset: 1
            },
            attempt: 2
        }]
    );
    // The stale receipt is refused.
    assert_eq!(
        s.one(ack(1, v)),
        Outcome::rejected(Rejection::ReceiptExpired)
    );
    // Second expiry: max_retries 1 means two deliveries, then the DLQ.
    s.now += 1000;
    s.one(Command::ExpireLeases);
    assert_eq!(s.state.topics["DLQ.g"].queues[0].next_offset, 1);
    assert_eq!(
        s.state.topics["DLQ.g"].queues[0].ranges[0]
            .origin_topic
            .as_deref(),
        Some("t")
    );
    assert_eq!(s.state.groups["g"].cursors[""]["t"][0].committed, 2);
    s.now += 10_000;
    assert!(s.lease_all("").is_empty());
}

#[test]
fn a_pack_rewrites_every_range_naming_its_parts_dead_letters_included() {
    let inline = |name: &str| Command::InlineSegment {
        segment: name.into(),
        data: bytes::Bytes::from_static(b"not read here"),
        packable: true,
    };
    let at = |segment: &str, queue, first_ordinal, count| Command::Append {
        topic: "t".into(),
        queue,
        segment: segment.into(),
        first_ordinal,
        count,
        publish_time_ms: 0,
    };
    let mut s = Sim::new();
    s.one(topic("t", 2));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(0),
        resolved: Default::default(),
    });
    s.one(inline("a"));
    s.one(at("a", 0, 0, 2));
    s.one(at("a", 1, 2, 1));
    // No retries: offset 0 of queue 0 dead-letters at once, its range naming `a`.
    let grants = s.lease_all("");
    assert_eq!(grants.len(), 3);
    s.now += 1000;
    s.one(Command::ExpireLeases);
    assert_eq!(s.state.topics["DLQ.g"].queues[0].ranges[0].segment, "a");
    // A delayed message in `b` keeps `b` out of packs.
    s.one(inline("b"));
    s.one(Command::PublishOne {
        topic: "t".into(),
        queue: 0,
        segment: "b".into(),
        ordinal: 0,
        publish_time_ms: 0,
        message_id: "m".into(),
        dedup_id: None,
        mode: PublishMode::Timer {
            deliver_at_ms: s.now + 60_000,
        },
    });
    assert_eq!(s.state.packable.keys().collect::<Vec<_>>(), ["a"]);
    let packed = s.one(Command::Packed {
        pack: "p".into(),
        parts: vec![
            PackedPart {
                segment: "b".into(),
                first_ordinal: 0,
            },
            PackedPart {
                segment: "a".into(),
                first_ordinal: 5,
            },
        ],
    });
    assert_eq!(packed, Outcome::Done);
    let ranges = |t: &str, q: usize| -> Vec<(String, u32)> {
        s.state.topics[t].queues[q]
            .ranges
            .iter()
            .map(|r| (r.segment.clone(), r.first_ordinal))
            .collect()
    };
    assert_eq!(ranges("t", 0), [("p".to_string(), 5)]);
    assert_eq!(ranges("t", 1), [("p".to_string(), 7)]);
    assert_eq!(
        ranges("DLQ.g", 0),
        [
            ("p".to_string(), 5),
            ("p".to_string(), 6),
            ("p".to_string(), 7)
        ]
    );
    assert!(s.state.packable.is_empty());
    assert_eq!(
        s.state.inline_segments.keys().collect::<Vec<_>>(),
        ["b"],
        "b is not packable: it waits for its own object"
    );
    assert_eq!(s.state.timers.values().next().unwrap().segment, "b");
}

#[test]
fn sequencer_claims_need_a_higher_epoch() {
    let mut s = Sim::new();
    let claim = |e| Command::Sequencer {
        gateway: format!("g{e}"),
        address: "a".into(),
        epoch: e,
    };
    assert_eq!(s.one(claim(1)), Outcome::Done);
    assert!(matches!(
        s.one(claim(1)),
        Outcome::Rejected {
            rejection: Rejection::StaleEpoch { .. }
        }
    ));
    assert_eq!(s.state.sequencer.as_ref().unwrap().gateway, "g1");
}

#[test]
fn fifo_leases_one_per_message_group_in_order() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    s.one(append("t", 0, 3));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(5),
        resolved: Default::default(),
    });
    let at = |o: u64| QueueOffset {
        topic: "t".into(),
        queue: 0,
        offset: o,
    };
    let a = || Some("A".to_string());
    let b = || Some("B".to_string());
    let lease =
        |s: &mut Sim, offsets: &[u64], groups: Vec<Option<String>>| match s.one(Command::Lease {
            group: "g".into(),
            consumer: String::new(),
            invisible_ms: 1000,
            max: 10,
            candidates: offsets.iter().map(|&o| at(o)).collect(),
            skipped: vec![],
            message_groups: groups,
            located: vec![],
            max_in_flight: None,
        }) {
            Outcome::Leased {
                version, grants, ..
            } => (
                version,
                grants.iter().map(|g| g.at.offset).collect::<Vec<_>>(),
            ),
            o => panic!("{o:?}"),
        };
    // 0 and 1 are of A, 2 of B: A's second waits for its first.
    let (v, got) = lease(&mut s, &[0, 1, 2], vec![a(), a(), b()]);
    assert_eq!(got, vec![0, 2]);
    assert_eq!(lease(&mut s, &[1], vec![a()]).1, Vec::<u64>::new());
    // A nack keeps the group blocked until the same message is delivered again and acked.
    s.one(Command::Settle {
        group: "g".into(),
        consumer: String::new(),
        at: at(0),
        lease_version: v,
        action: SettleAction::Nack { delay_ms: 0 },
    });
    assert_eq!(lease(&mut s, &[1], vec![a()]).1, Vec::<u64>::new());
    let (v2, got) = lease(&mut s, &[0], vec![a()]);
    assert_eq!(got, vec![0]);
    s.one(Command::Settle {
        group: "g".into(),
        consumer: String::new(),
        at: at(0),
        lease_version: v2,
        action: SettleAction::Ack,
    });
    assert_eq!(lease(&mut s, &[1], vec![a()]).1, vec![1]);
}

#[test]
fn a_repeated_request_applies_once_and_answers_the_same() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    let entry = Entry {
        request: Some(RequestId {
            origin: "o".into(),
            seq: 1,
        }),
        commands: vec![append("t", 0, 1)],
    };
    let mk = |v| Delta {
        format: FORMAT,
        version: v,
        time_ms: 5,
        writer: "w".into(),
        nonce: 0,
        parent: None,
        entries: vec![entry.clone(), entry.clone()],
    };
    let out = s.state.apply(&mk(2)).unwrap();
    assert_eq!(out[0], out[1]);
    let again = s.state.apply(&mk(3)).unwrap();
    assert_eq!(again[0], out[0]);
    assert_eq!(s.state.topics["t"].queues[0].next_offset, 1);
}

#[test]
fn a_delta_that_names_another_parent_is_an_orphan_and_changes_nothing() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    let head = s.state.head.clone().expect("a head after a delta");
    let request = Some(RequestId {
        origin: "o".into(),
        seq: 7,
    });
    let mk = |v, nonce, parent| Delta {
        format: FORMAT,
        version: v,
        time_ms: 9_999,
        writer: "w2".into(),
        nonce,
        parent,
        entries: vec![Entry {
            request: request.clone(),
            commands: vec![append("t", 0, 1)],
        }],
    };
    // Written to follow a delta that never became version 2.
    let lost = DeltaId {
        writer: "w2".into(),
        nonce: 41,
    };
    let orphan = mk(2, 42, Some(lost));
    assert!(s.state.is_orphan(&orphan));
    let before = s.state.clone();
    assert_eq!(s.state.apply(&orphan).unwrap(), vec![Vec::<Outcome>::new()]);
    let mut expected = before;
    expected.version = 2;
    assert_eq!(
        s.state, expected,
        "only the version moved: no time, head, offset or request id"
    );
    // Its child is an orphan too; a delta naming the real head applies (and its request
    // id, not recorded by the orphan, is applied for the first time).
    assert!(s.state.is_orphan(&mk(3, 43, Some(orphan.id()))));
    let real = mk(3, 44, Some(head));
    let out = s.state.apply(&real).unwrap();
    assert_eq!(out[0], vec![Outcome::Appended { base_offset: 0 }]);
    assert_eq!(s.state.head, Some(real.id()));
    assert_eq!(s.state.time_ms, 9_999);
    // A delta of an older writer (no parent) always applies.
    assert!(!s.state.is_orphan(&mk(4, 45, None)));
}

#[test]
fn a_stuck_message_and_a_million_acked_after_it_cost_a_handful_of_entries() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    for _ in 0..1_000 {
        s.one(append("t", 0, 1_001));
    }
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(1_000),
        resolved: Default::default(),
    });
    // Offset 0 is leased and never settled; every later one is consumed (as filtered-out
    // skips, 10,000 per receive: the same path to `done` as an ack).
    let lease = |candidates: Vec<u64>, skipped: Vec<u64>| {
        let q = |o| QueueOffset {
            topic: "t".into(),
            queue: 0,
            offset: o,
        };
        Command::Lease {
            group: "g".into(),
            consumer: String::new(),
            invisible_ms: 1000,
            max: 1,
            candidates: candidates.into_iter().map(q).collect(),
            skipped: skipped.into_iter().map(q).collect(),
            message_groups: vec![],
            located: vec![],
            max_in_flight: None,
        }
    };
    s.one(lease(vec![0], vec![]));
    for chunk in (1..1_001_000u64).collect::<Vec<_>>().chunks(10_000) {
        s.one(lease(vec![], chunk.to_vec()));
    }
    let c = &s.state.groups["g"].cursors[""]["t"][0];
    assert_eq!(c.committed, 0);
    assert_eq!((c.done.intervals(), c.done.len()), (1, 1_000_999));
    let bytes = serde_json::to_vec(&s.state.groups["g"]).expect("encodes");
    assert!(
        bytes.len() < 1024,
        "the group encodes in {} bytes",
        bytes.len()
    );
    let checkpoint = super::super::log::encode_checkpoint(&s.state).expect("encodes");
    assert!(
        checkpoint.len() < 1 << 20,
        "checkpoint {} bytes",
        checkpoint.len()
    );
}

#[test]
fn receives_past_the_in_flight_cap_grant_nothing() {
    let mut s = Sim::new();
    s.one(topic("t", 2));
    s.one(append("t", 0, 10));
    s.one(append("t", 1, 10));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(5),
        resolved: Default::default(),
    });
    let lease = |s: &mut Sim, cap| {
        let candidates = s.state.candidates("g", "", s.now, 100);
        s.one(Command::Lease {
            group: "g".into(),
            consumer: String::new(),
            invisible_ms: 1000,
            max: 100,
            candidates,
            skipped: vec![],
            message_groups: vec![],
            located: vec![],
            max_in_flight: Some(cap),
        })
    };
    let Outcome::Leased { grants, capped, .. } = lease(&mut s, 15) else {
        panic!()
    };
    assert_eq!((grants.len(), capped), (15, true));
    assert_eq!(s.state.in_flight("g"), 15);
    let before = s.state.groups.clone();
    let Outcome::Leased { grants, capped, .. } = lease(&mut s, 15) else {
        panic!()
    };
    assert!(grants.is_empty() && capped);
    assert_eq!(s.state.groups, before, "a capped receive changes nothing");
    // An expired lease may be leased again at the cap: it is already in flight.
    s.now += 2_000;
    let Outcome::Leased { grants, .. } = lease(&mut s, 15) else {
        panic!()
    };
    assert_eq!(grants.len(), 15);
}

#[test]
fn candidates_step_over_leased_acked_and_skipped_offsets() {
    let mut s = Sim::new();
    s.one(topic("t", 1));
    s.one(append("t", 0, 300));
    s.one(Command::CreateGroup {
        group: "g".into(),
        def: group_def(1),
        resolved: Default::default(),
    });
    let at = |offset: u64| QueueOffset {
        topic: "t".into(),
        queue: 0,
        offset,
    };
    // Every third offset below 150 leased; then the even ones of those acked.
    let leased: Vec<u64> = (0..150).step_by(3).collect();
    let version = match s.one(Command::Lease {
        group: "g".into(),
        consumer: String::new(),
        invisible_ms: 60_000,
        max: leased.len() as u32,
        candidates: leased.iter().map(|&o| at(o)).collect(),
        skipped: vec![],
        message_groups: vec![],
        located: vec![],
        max_in_flight: None,
    }) {
        Outcome::Leased { grants, .. } => {
            assert_eq!(grants.len(), leased.len());
            s.state.version
        }
        o => panic!("{o:?}"),
    };
    let acked: Vec<u64> = leased.iter().copied().filter(|o| o % 2 == 0).collect();
    assert!(matches!(
        s.one(Command::SettleMany {
            group: "g".into(),
            consumer: String::new(),
            topic: "t".into(),
            queue: 0,
            lease_version: version,
            action: SettleAction::Ack,
            offsets: acked.clone(),
        }),
        Outcome::SettledMany { .. }
    ));
    let skipped: BTreeSet<u64> = [1, 2, 4, 5, 7, 100, 101, 102, 103, 104, 299]
        .into_iter()
        .collect();
    for limit in [1, 10, 60, 120, 300] {
        let got: Vec<u64> = s
            .state
            .candidates_looking_ahead(
                "g",
                "",
                s.now,
                limit,
                |_| None,
                |_, _| true,
                |_, _| Some(&skipped),
            )
            .into_iter()
            .map(|c| c.offset)
            .collect();
        // The same question asked offset by offset.
        let want: Vec<u64> = (0..300)
            .filter(|o| !leased.contains(o) && !skipped.contains(o))
            .take(limit)
            .collect();
        assert_eq!(got, want, "limit {limit}");
    }
}
