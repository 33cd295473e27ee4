//! Receipt handles: self-contained, signed names of one lease, so any gateway on the bucket
//! can ack them and a forged, garbled or other group's handle is refused cleanly.
//!
//! Format: `base64url(JSON payload) "." base64url(HMAC-SHA256(receipt key, payload))`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// What a receipt names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    #[serde(rename = "g")]
    pub group: String,
    #[serde(rename = "c")]
    pub consumer: String,
    #[serde(rename = "t")]
    pub topic: String,
    #[serde(rename = "q")]
    pub queue: u32,
    #[serde(rename = "o")]
    pub offset: u64,
    /// The manifest version that granted the lease.
    #[serde(rename = "v")]
    pub version: u64,
    #[serde(rename = "a")]
    pub attempt: u32,
}

/// Signs and checks receipts. Holds the HMAC already keyed (its inner and outer pads hashed
/// once), cloned per receipt: every message received and every ack signs or checks one.
#[derive(Clone)]
pub struct ReceiptKey(Hmac<Sha256>);

impl std::fmt::Debug for ReceiptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ReceiptKey(..)")
    }
}

/// Derives a purpose-specific key from the cluster secret.
pub fn derive_key(cluster_secret: &[u8], purpose: &str) -> Vec<u8> {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(cluster_secret).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

impl ReceiptKey {
    /// The receipt key of a cluster secret.
    pub fn new(cluster_secret: &[u8]) -> Self {
        let key = derive_key(cluster_secret, "ferrymq receipt v1");
        ReceiptKey(Hmac::<Sha256>::new_from_slice(&key).expect("HMAC takes any key length"))
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(payload);
        mac
    }

    /// The handle of `r`.
    pub fn sign(&self, r: &Receipt) -> String {
        let payload = serde_json::to_vec(r).expect("receipt encodes");
        let tag = self.mac(&payload).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The receipt a handle names, if it is genuine.
    pub fn verify(&self, handle: &str) -> Option<Receipt> {
        let (p, t) = handle.split_once('.')?;
        let payload = URL_SAFE_NO_PAD.decode(p).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(t).ok()?;
        self.mac(&payload).verify_slice(&tag).ok()?;
        serde_json::from_slice(&payload).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genuine_handles_verify_and_forgeries_do_not() {
        let k = ReceiptKey::new(b"secret");
        let r = Receipt {
            group: "g".into(),
            consumer: String::new(),
            topic: "t".into(),
            queue: 1,
            offset: 9,
            version: 4,
            attempt: 1,
        };
        let h = k.sign(&r);
        assert_eq!(k.verify(&h), Some(r.clone()));
        assert_eq!(ReceiptKey::new(b"other").verify(&h), None);
        assert_eq!(k.verify("garbage"), None);
        assert_eq!(k.verify(""), None);
        let mut tampered = h.clone();
        tampered.replace_range(0..1, if h.starts_with('e') { "f" } else { "e" });
        assert_eq!(k.verify(&tampered), None);
    }
}
