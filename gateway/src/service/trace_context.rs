//! W3C Trace Context carried as message properties (API.md "Trace context").
//!
//! A message may carry `traceparent` and `tracestate` properties. They are checked at publish
//! (a malformed one refuses the whole request, so nothing is published) and otherwise kept as
//! plain properties: every read returns them byte for byte as given.
//!
//! - `traceparent`: `00-<32 lowercase hex trace id>-<16 lowercase hex span id>-<2 lowercase hex
//!   flags>`, neither id all zeros (W3C Trace Context level 1, version `00`).
//! - `tracestate`: a W3C list of at most 32 `key=value` members, at most 512 characters.

use std::collections::BTreeMap;

/// The property holding a W3C `traceparent`.
pub const TRACEPARENT: &str = "traceparent";
/// The property holding a W3C `tracestate`.
pub const TRACESTATE: &str = "tracestate";
/// The longest `tracestate` accepted (the W3C recommendation for what a vendor propagates).
pub const MAX_TRACESTATE_CHARS: usize = 512;
/// List members of a `tracestate` at most (W3C).
pub const MAX_TRACESTATE_MEMBERS: usize = 32;

/// Checks the trace-context properties of one message; the error says what is wrong.
pub fn validate(properties: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(tp) = properties.get(TRACEPARENT) {
        traceparent(tp).map_err(|why| format!("property traceparent {tp:?} is invalid: {why}"))?;
    }
    if let Some(ts) = properties.get(TRACESTATE) {
        tracestate(ts).map_err(|why| format!("property tracestate is invalid: {why}"))?;
    }
    Ok(())
}

fn lower_hex(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a `traceparent` value.
pub fn traceparent(value: &str) -> Result<(), &'static str> {
    const SHAPE: &str = "expected 00-<32 lowercase hex>-<16 lowercase hex>-<2 lowercase hex>";
    let parts: Vec<&str> = value.split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return Err(SHAPE);
    };
    if *version != "00" {
        return Err("only version 00 is supported");
    }
    if trace_id.len() != 32 || span_id.len() != 16 || flags.len() != 2 {
        return Err(SHAPE);
    }
    if !(lower_hex(trace_id) && lower_hex(span_id) && lower_hex(flags)) {
        return Err(SHAPE);
    }
    if trace_id.bytes().all(|b| b == b'0') {
        return Err("the trace id must not be all zeros");
    }
    if span_id.bytes().all(|b| b == b'0') {
        return Err("the parent (span) id must not be all zeros");
    }
    Ok(())
}

/// Checks a `tracestate` value: `list-member *( OWS "," OWS list-member )`, empty members
/// allowed, keys unique.
pub fn tracestate(value: &str) -> Result<(), String> {
    if value.chars().count() > MAX_TRACESTATE_CHARS {
        return Err(format!("longer than {MAX_TRACESTATE_CHARS} characters"));
    }
    let mut keys = std::collections::BTreeSet::new();
    for member in value.split(',') {
        let member = member.trim_matches([' ', '\t']);
        if member.is_empty() {
            continue;
        }
        let Some((key, val)) = member.split_once('=') else {
            return Err(format!("member {member:?} is not key=value"));
        };
        if !tracestate_key(key) {
            return Err(format!("key {key:?} is not a W3C tracestate key"));
        }
        if !tracestate_value(val) {
            return Err(format!(
                "the value of {key:?} is not a W3C tracestate value"
            ));
        }
        if !keys.insert(key) {
            return Err(format!("key {key:?} appears twice"));
        }
    }
    if keys.len() > MAX_TRACESTATE_MEMBERS {
        return Err(format!("more than {MAX_TRACESTATE_MEMBERS} members"));
    }
    Ok(())
}

fn key_char(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'*' | b'/')
}

/// `simple-key` or `tenant-id@system-id`.
fn tracestate_key(key: &str) -> bool {
    let starts_ok = |s: &str, digit_ok: bool| {
        s.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || (digit_ok && b.is_ascii_digit()))
    };
    match key.split_once('@') {
        None => key.len() <= 256 && starts_ok(key, false) && key.bytes().all(key_char),
        Some((tenant, system)) => {
            (1..=241).contains(&tenant.len())
                && starts_ok(tenant, true)
                && tenant.bytes().all(key_char)
                && (1..=14).contains(&system.len())
                && starts_ok(system, false)
                && system.bytes().all(key_char)
        }
    }
}

/// 1 to 256 printable ASCII characters other than `,` and `=`, not ending in a space.
fn tracestate_value(value: &str) -> bool {
    (1..=256).contains(&value.len())
        && value
            .bytes()
            .all(|b| b == b' ' || (0x21..=0x7e).contains(&b) && b != b',' && b != b'=')
        && !value.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_well_formed_traceparent_passes() {
        assert!(traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_ok());
        assert!(traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00").is_ok());
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bz-01",
        ] {
            assert!(traceparent(bad).is_err(), "{bad:?} passed");
        }
    }

    #[test]
    fn tracestate_follows_the_w3c_list_syntax() {
        for good in [
            "",
            "congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE",
            "rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE,,",
            "tenant1@vendor=x y",
            "a_-*/9=v",
        ] {
            assert!(tracestate(good).is_ok(), "{good:?} refused");
        }
        for bad in [
            "Rojo=1",
            "rojo",
            "rojo=",
            "rojo=a,b",
            "rojo=a=b",
            "rojo=1,rojo=2",
            "1abc=v",
            "t@=v",
            "t@Vendor=v",
            "rojo=tab\tinside",
        ] {
            assert!(tracestate(bad).is_err(), "{bad:?} passed");
        }
        assert!(tracestate(&format!("k={}", "v".repeat(256))).is_ok());
        assert!(tracestate(&format!("k={}", "v".repeat(257))).is_err());
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert!(tracestate(&many.join(",")).is_err());
        let members: Vec<String> = (0..6).map(|i| format!("k{i}={}", "v".repeat(90))).collect();
        assert!(tracestate(&members.join(",")).unwrap_err().contains("512"));
    }
}
