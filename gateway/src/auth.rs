//! JWT verification and permission checks.
//!
//! Every `/v1` call carries `Authorization: Bearer <JWT>`, verified with an HS256 secret, an
//! RS256/ES256 public key, or the keys of a JWKS file. Required claims: `sub`, `exp`.
//! Permissions are `action:resource` strings in the claim `perms`, where `*` matches any run
//! of characters (`/` included).
//!
//! A token's verdict depends only on its text, the keys (fixed for the life of the process) and
//! the time, so tokens verified recently are kept by their exact text: a client's next request
//! costs a map lookup and an expiry check instead of a signature check (an HMAC, or an RSA or
//! ECDSA verification, per request).
//!
//! Transport-free: `http::auth` reads the bearer token from the request and turns
//! [`AuthError`] into 401 or 403.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, jwk::JwkSet};
use serde::{Deserialize, Serialize};

/// Why a caller was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No, a malformed, an invalid or an expired token (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token that does not grant the action (403).
    #[error("{0}")]
    Forbidden(String),
}

/// The claims FerryMQ reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
    #[serde(default)]
    pub perms: Vec<String>,
}

/// The actions of API.md's permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pub,
    Sub,
    Admin,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Action::Pub => "pub",
            Action::Sub => "sub",
            Action::Admin => "admin",
        }
    }
}

/// Seconds a token stays valid past its `exp` (clock skew between issuer and gateway).
const LEEWAY_SECS: u64 = 5;
/// Verified tokens kept at most; the set is emptied when full (clients reuse a few tokens).
const VERIFIED_MAX: usize = 4096;

/// Verifies tokens.
pub struct Verifier {
    keys: Vec<(DecodingKey, Validation)>,
    /// Tokens that verified, by their text, with their claims.
    verified: Mutex<HashMap<String, Arc<Claims>>>,
    /// Requests answered from `verified`.
    hits: AtomicU64,
    /// Unix seconds now (a test can stop the clock).
    now: fn() -> u64,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Verifier({} keys)", self.keys.len())
    }
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_required_spec_claims(&["exp", "sub"]);
    v.leeway = LEEWAY_SECS;
    v
}

impl Verifier {
    fn with_keys(keys: Vec<(DecodingKey, Validation)>) -> Self {
        Verifier {
            keys,
            verified: Mutex::new(HashMap::new()),
            hits: AtomicU64::new(0),
            now: jsonwebtoken::get_current_timestamp,
        }
    }

    /// HS256 with a shared secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self::with_keys(vec![(
            DecodingKey::from_secret(secret),
            validation(Algorithm::HS256),
        )])
    }

    /// RS256 or ES256 with a PEM public key.
    pub fn public_key_pem(pem: &[u8]) -> anyhow::Result<Self> {
        if let Ok(k) = DecodingKey::from_rsa_pem(pem) {
            return Ok(Self::with_keys(vec![(k, validation(Algorithm::RS256))]));
        }
        let k = DecodingKey::from_ec_pem(pem)
            .map_err(|e| anyhow::anyhow!("not an RSA or EC public key PEM: {e}"))?;
        Ok(Self::with_keys(vec![(k, validation(Algorithm::ES256))]))
    }

    /// Every RS256/ES256 key of a JWKS document.
    pub fn jwks(json: &[u8]) -> anyhow::Result<Self> {
        let set: JwkSet =
            serde_json::from_slice(json).map_err(|e| anyhow::anyhow!("bad JWKS: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let key = DecodingKey::from_jwk(jwk).map_err(|e| anyhow::anyhow!("bad JWK: {e}"))?;
            let alg = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Algorithm::ES256,
                _ => Algorithm::RS256,
            };
            keys.push((key, validation(alg)));
        }
        anyhow::ensure!(!keys.is_empty(), "JWKS has no keys");
        Ok(Self::with_keys(keys))
    }

    /// How many verifications were answered from the tokens verified before.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// The claims of a bearer token, or [`AuthError::Unauthenticated`].
    pub fn verify(&self, token: &str) -> Result<Arc<Claims>, AuthError> {
        {
            let mut verified = self.verified.lock().expect("verified tokens poisoned");
            if let Some(claims) = verified.get(token) {
                // The same test as the full check's: expired once `exp + leeway` has passed.
                if claims.exp.saturating_add(LEEWAY_SECS) >= (self.now)() {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(claims.clone());
                }
                verified.remove(token);
            }
        }
        let mut last = None;
        for (key, validation) in &self.keys {
            match jsonwebtoken::decode::<Claims>(token, key, validation) {
                Ok(data) => {
                    let claims = Arc::new(data.claims);
                    let mut verified = self.verified.lock().expect("verified tokens poisoned");
                    if verified.len() >= VERIFIED_MAX {
                        verified.clear();
                    }
                    verified.insert(token.to_string(), claims.clone());
                    return Ok(claims);
                }
                Err(e) => last = Some(e),
            }
        }
        let reason = match last.as_ref().map(|e| e.kind()) {
            Some(jsonwebtoken::errors::ErrorKind::ExpiredSignature) => "token expired".to_string(),
            Some(k) => format!("invalid token: {k:?}"),
            None => "no verification key".to_string(),
        };
        Err(AuthError::Unauthenticated(reason))
    }
}

/// Whether `pattern` (with `*` wildcards) matches `text` as a whole.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && p[pi] != b'*' && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

impl Claims {
    /// 403 unless the claims allow `action` on `resource` (e.g. `topic/orders`). `admin` on a
    /// resource implies `pub` and `sub` on it, so `admin:*` allows everything.
    pub fn require(&self, action: Action, resource: &str) -> Result<(), AuthError> {
        let wanted = format!("{}:{resource}", action.as_str());
        let as_admin = format!("admin:{resource}");
        if self
            .perms
            .iter()
            .any(|p| wildcard_match(p, &wanted) || wildcard_match(p, &as_admin))
        {
            Ok(())
        } else {
            Err(AuthError::Forbidden(format!(
                "{} may not {} {resource}",
                self.sub,
                action.as_str()
            )))
        }
    }
}

/// Mints an HS256 token.
#[allow(clippy::disallowed_methods)] // a token's expiry is wall time by definition
pub fn mint(secret: &[u8], sub: &str, perms: &[String], ttl: Duration) -> anyhow::Result<String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let claims = Claims {
        sub: sub.to_string(),
        exp: now + ttl.as_secs(),
        perms: perms.to_vec(),
    };
    Ok(jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(secret),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_runs_including_slashes() {
        assert!(wildcard_match("pub:topic/orders*", "pub:topic/orders-eu"));
        assert!(wildcard_match("admin:*", "admin:topic/x/y"));
        assert!(!wildcard_match("pub:topic/orders", "pub:topic/orders2"));
        assert!(wildcard_match("*", ""));
        assert!(!wildcard_match("sub:group/a*b", "sub:group/ac"));
    }

    #[test]
    fn permissions_follow_the_table() {
        let c = Claims {
            sub: "s".into(),
            exp: 0,
            perms: vec!["pub:topic/orders*".into(), "sub:group/billing".into()],
        };
        assert!(c.require(Action::Pub, "topic/orders").is_ok());
        assert!(c.require(Action::Sub, "topic/orders").is_err());
        assert!(c.require(Action::Sub, "group/billing").is_ok());
        assert!(c.require(Action::Admin, "topic/orders").is_err());
        let admin = Claims {
            sub: "a".into(),
            exp: 0,
            perms: vec!["admin:*".into()],
        };
        assert!(admin.require(Action::Pub, "topic/x").is_ok());
    }

    #[test]
    fn minted_tokens_verify_and_tampered_ones_do_not() {
        let t = mint(b"k", "me", &["admin:*".into()], Duration::from_secs(60)).unwrap();
        assert_eq!(Verifier::hs256(b"k").verify(&t).unwrap().sub, "me");
        assert!(Verifier::hs256(b"other").verify(&t).is_err());
    }

    static FAKE_NOW: AtomicU64 = AtomicU64::new(0);

    fn fake_now() -> u64 {
        FAKE_NOW.load(Ordering::SeqCst)
    }

    /// A verified token is answered from memory until `exp` + leeway, never after; a token
    /// that failed (wrong key, tampered) is never remembered.
    #[test]
    fn verified_tokens_are_remembered_until_they_expire() {
        let mut v = Verifier::hs256(b"k");
        v.now = fake_now;
        let t = mint(b"k", "me", &["admin:*".into()], Duration::from_secs(3600)).unwrap();
        let exp = v.verify(&t).unwrap().exp;
        FAKE_NOW.store(exp - 10, Ordering::SeqCst);
        assert_eq!(v.hits(), 0);
        assert_eq!(v.verify(&t).unwrap().sub, "me");
        assert_eq!(v.hits(), 1, "the second verification is a hit");
        FAKE_NOW.store(exp + LEEWAY_SECS, Ordering::SeqCst);
        assert!(v.verify(&t).is_ok());
        assert_eq!(v.hits(), 2, "still valid at exp + leeway");
        FAKE_NOW.store(exp + LEEWAY_SECS + 1, Ordering::SeqCst);
        // Past its expiry by the stopped clock: not a hit; the full check (real clock, an
        // hour before exp) accepts it again.
        assert!(v.verify(&t).is_ok());
        assert_eq!(v.hits(), 2, "an expired entry is never served");
        // The signature's first character changed (6 bits of it).
        let sig = t.rfind('.').unwrap() + 1;
        let flipped = if t.as_bytes()[sig] == b'A' { 'B' } else { 'A' };
        let tampered = format!("{}{flipped}{}", &t[..sig], &t[sig + 1..]);
        for _ in 0..2 {
            assert!(v.verify(&tampered).is_err());
        }
        let other = Verifier::hs256(b"other");
        for _ in 0..2 {
            assert!(other.verify(&t).is_err());
        }
        assert_eq!(other.hits(), 0);
    }
}
