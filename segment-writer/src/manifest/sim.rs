//! For the manifest's unit tests: a state and a delta clock that applies commands as the next
//! version at `now`, as the sequencer would.

use super::command::{Command, Delta, Entry, FORMAT};
use super::model::{
    GroupDef, GroupMode, Outcome, StartFrom, State, Subscription, TopicDef, TopicKind,
};

/// One delta of `commands` as version `version` at `time_ms`.
pub(crate) fn delta(version: u64, time_ms: i64, commands: Vec<Command>) -> Delta {
    Delta {
        format: FORMAT,
        version,
        time_ms,
        writer: "w".into(),
        nonce: version,
        parent: None,
        entries: vec![Entry {
            request: None,
            commands,
        }],
    }
}

/// Creates topic `name` (normal, `queues` queues, 1 hour of retention).
pub(crate) fn topic(name: &str, queues: u32) -> Command {
    Command::CreateTopic {
        topic: name.into(),
        def: TopicDef {
            kind: TopicKind::Normal,
            queues,
            retention_hours: 1,
        },
    }
}

/// A clustering group reading topic `t` from the earliest offset: leases of 1 s, retries after
/// 100 ms.
pub(crate) fn group_def(max_retries: u32) -> GroupDef {
    GroupDef {
        subscriptions: vec![Subscription {
            topic: "t".into(),
            filter: None,
            sql: None,
        }],
        mode: GroupMode::Clustering,
        start_from: StartFrom::Earliest,
        max_retries,
        invisible_ms: 1000,
        retry_backoff_ms: vec![100],
        push: None,
    }
}

/// A state and the time of its next delta.
pub(crate) struct Sim {
    pub(crate) state: State,
    pub(crate) now: i64,
}

impl Sim {
    /// An empty state at time 1,000.
    pub(crate) fn new() -> Self {
        Sim {
            state: State::default(),
            now: 1_000,
        }
    }

    /// Applies `commands` as the next version; their outcomes.
    pub(crate) fn run(&mut self, commands: Vec<Command>) -> Vec<Outcome> {
        let d = delta(self.state.version + 1, self.now, commands);
        self.state.apply(&d).expect("the next version").remove(0)
    }

    /// Applies one command as the next version; its outcome.
    pub(crate) fn one(&mut self, c: Command) -> Outcome {
        self.run(vec![c]).remove(0)
    }
}
