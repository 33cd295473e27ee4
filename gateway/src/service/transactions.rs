//! Transactions (API.md "Transactions"): a producer's decision on a half message, its state,
//! the check-back settings of a producer group, instance registration for webhook checks, and
//! the long-poll for checks.
//!
//! Invariant: a decision names only a transaction id; the producer group it belongs to (and
//! so the permission it needs) is found from the manifest before anything changes.

use std::time::Duration;

use segment_writer::manifest::{CheckDue, Command, Outcome};

use super::{
    AppState, Error, Result, check_name, long_poll_slot, one, refresh_unless, submit,
    submit_and_apply, unexpected, wait_longer,
};
use crate::wire::{
    Check, ChecksRequest, Decision, InstanceRequest, ProducerGroupInfo, ProducerGroupRequest,
    TransactionInfo, TransactionState,
};

/// The producer group of a pending or decided transaction (catching up with the log first if
/// this gateway does not know it).
pub async fn producer_group_of(st: &AppState, transaction_id: &str) -> Result<String> {
    let known = |s: &segment_writer::manifest::State| {
        s.halves
            .get(transaction_id)
            .map(|h| h.producer_group.clone())
            .or_else(|| {
                s.decisions
                    .get(transaction_id)
                    .map(|d| d.producer_group.clone())
            })
    };
    refresh_unless(st, |s| known(s).is_some()).await;
    known(&st.node.state()).ok_or_else(|| Error::transaction_not_found(transaction_id))
}

/// Commits or rolls back `transaction_id`: its state now.
pub async fn decide(
    st: &AppState,
    transaction_id: &str,
    action: Decision,
) -> Result<TransactionState> {
    let cmd = Command::Decide {
        transaction_id: transaction_id.to_string(),
        commit: action == Decision::Commit,
    };
    match one(submit_and_apply(st, vec![cmd]).await?)? {
        Outcome::Decided { committed: true } => Ok(TransactionState::Committed),
        Outcome::Decided { committed: false } => Ok(TransactionState::RolledBack),
        o => Err(unexpected(&o)),
    }
}

/// The state of `transaction_id`.
pub async fn transaction(st: &AppState, transaction_id: &str) -> Result<TransactionInfo> {
    let view = |s: &segment_writer::manifest::State| {
        if let Some(h) = s.halves.get(transaction_id) {
            Some(TransactionInfo {
                transaction_id: transaction_id.to_string(),
                state: TransactionState::Pending,
                producer_group: h.producer_group.clone(),
                message_id: Some(h.message.message_id.clone()),
                topic: Some(h.message.topic.clone()),
                check_times: Some(h.checks),
            })
        } else {
            s.decisions.get(transaction_id).map(|d| TransactionInfo {
                transaction_id: transaction_id.to_string(),
                state: if d.committed {
                    TransactionState::Committed
                } else {
                    TransactionState::RolledBack
                },
                producer_group: d.producer_group.clone(),
                message_id: None,
                topic: None,
                check_times: None,
            })
        }
    };
    refresh_unless(st, |s| view(s).is_some()).await;
    view(&st.node.state()).ok_or_else(|| Error::transaction_not_found(transaction_id))
}

/// Sets `group`'s check-back timing (omitted fields keep theirs): the settings now.
pub async fn configure(
    st: &AppState,
    group: &str,
    b: ProducerGroupRequest,
) -> Result<ProducerGroupInfo> {
    check_name("producer group", group, 120)?;
    let day = 86_400_000;
    for (name, v) in [
        ("check_immunity_ms", b.check_immunity_ms),
        ("check_interval_ms", b.check_interval_ms),
    ] {
        if v.is_some_and(|v| !(1..=day).contains(&v)) {
            return Err(Error::bad(format!("{name} must be 1..={day}")));
        }
    }
    if b.max_checks.is_some_and(|m| m > 1000) {
        return Err(Error::bad("max_checks must be at most 1000"));
    }
    let cmd = Command::ConfigureProducerGroup {
        producer_group: group.to_string(),
        check_immunity_ms: b.check_immunity_ms,
        check_interval_ms: b.check_interval_ms,
        max_checks: b.max_checks,
    };
    one(submit_and_apply(st, vec![cmd]).await?)?;
    let p = st.node.state().producer_settings(group);
    Ok(ProducerGroupInfo {
        producer_group: group.to_string(),
        check_immunity_ms: p.check_immunity_ms,
        check_interval_ms: p.check_interval_ms,
        max_checks: p.max_checks,
    })
}

/// Registers (or renews) `instance` of `group` with its check-back URL.
pub async fn register(
    st: &AppState,
    group: &str,
    instance: &str,
    b: InstanceRequest,
) -> Result<i64> {
    check_name("producer group", group, 120)?;
    check_name("instance", instance, 120)?;
    let url =
        url::Url::parse(&b.check_url).map_err(|e| Error::bad(format!("bad check_url: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::bad("check_url must be http or https"));
    }
    if !(1_000..=3_600_000).contains(&b.ttl_ms) {
        return Err(Error::bad("ttl_ms must be 1000..=3600000"));
    }
    let cmd = Command::RegisterProducer {
        producer_group: group.to_string(),
        instance: instance.to_string(),
        check_url: b.check_url,
        ttl_ms: b.ttl_ms,
    };
    one(submit(st, vec![cmd]).await?.1)?;
    Ok(b.ttl_ms)
}

/// Claims up to `b.max` due checks of `group`, long-polling up to `b.wait_ms`.
pub async fn poll_checks(st: &AppState, group: &str, b: ChecksRequest) -> Result<Vec<Check>> {
    check_name("producer group", group, 120)?;
    if b.max == 0 || b.max > 1000 {
        return Err(Error::bad("max must be 1..=1000"));
    }
    if b.wait_ms > st.limits.max_wait_ms {
        return Err(Error::bad(format!(
            "wait_ms must be at most {}",
            st.limits.max_wait_ms
        )));
    }
    let _waiter = long_poll_slot(st, b.wait_ms)?;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(b.wait_ms);
    loop {
        if st.node.state().checks_waiting(group) {
            let claim = Command::ClaimChecks {
                producer_group: group.to_string(),
                max: b.max,
            };
            let checks: Vec<CheckDue> = match one(submit_and_apply(st, vec![claim]).await?)? {
                Outcome::Checks { checks } => checks,
                o => return Err(unexpected(&o)),
            };
            let mut out = Vec::new();
            for due in &checks {
                if let Some(c) = crate::scheduler::check(&st.node, &st.reader, due).await {
                    out.push(c);
                }
            }
            if !out.is_empty() {
                return Ok(out);
            }
        }
        if !wait_longer(st, deadline).await {
            return Ok(Vec::new());
        }
    }
}
