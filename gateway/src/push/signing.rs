//! Push signatures as Standard Webhooks 1.0 specifies: `webhook-id`, `webhook-timestamp` and
//! `webhook-signature: v1,<base64 HMAC-SHA256 of "id.timestamp.body">` under the group's
//! secret, shown to the user once as `whsec_<base64>`.
//!
//! The secret is never stored: the manifest keeps a random nonce per push group, and every
//! gateway derives the same 32-byte secret from it and the cluster secret (which all gateways
//! of a bucket share, as they do for receipts). Reading the bucket is not enough to forge a
//! push.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Derives push groups' signing secrets.
#[derive(Clone)]
pub struct PushKey(Vec<u8>);

impl std::fmt::Debug for PushKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushKey(..)")
    }
}

/// A push group's signing secret.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length")
}

impl PushKey {
    /// The key of a cluster secret.
    pub fn new(cluster_secret: &[u8]) -> Self {
        PushKey(crate::receipt::derive_key(
            cluster_secret,
            "ferrymq push signing v1",
        ))
    }

    /// The signing secret of `group` with `nonce` (`PushDef::secret_nonce`).
    pub fn secret(&self, group: &str, nonce: &str) -> Secret {
        let mut mac = hmac(&self.0);
        mac.update(group.as_bytes());
        mac.update(b"\0");
        mac.update(nonce.as_bytes());
        Secret(mac.finalize().into_bytes().into())
    }
}

/// A fresh nonce for a push group's secret.
pub fn new_nonce() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Secret {
    /// As Standard Webhooks shows it: `whsec_<base64>`.
    pub fn whsec(&self) -> String {
        format!("whsec_{}", B64.encode(self.0))
    }

    /// The `webhook-signature` value of a push.
    pub fn sign(&self, id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac = hmac(&self.0);
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", B64.encode(mac.finalize().into_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_secret_depends_on_cluster_secret_group_and_nonce() {
        let k = PushKey::new(b"cluster");
        let s = k.secret("g", "n");
        assert_eq!(s, PushKey::new(b"cluster").secret("g", "n"));
        assert_ne!(s, PushKey::new(b"other").secret("g", "n"));
        assert_ne!(s, k.secret("g2", "n"));
        assert_ne!(s, k.secret("g", "n2"));
        assert!(s.whsec().starts_with("whsec_"));
        assert_ne!(new_nonce(), new_nonce());
    }

    #[test]
    fn signatures_follow_standard_webhooks() {
        // The example of the Standard Webhooks specification (its libraries' test vector).
        let key = B64
            .decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
            .expect("base64");
        let s = Secret(
            key.iter()
                .chain(std::iter::repeat(&0))
                .take(32)
                .copied()
                .collect::<Vec<_>>()
                .try_into()
                .expect("32 bytes"),
        );
        // A key shorter than HMAC's block is padded with zeros: the 24-byte key of the
        // example signs as the same key padded to 32 bytes.
        let sig = s.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert_eq!(
            sig,
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
        );
        assert_ne!(
            sig,
            s.sign("msg_other", 1614265330, br#"{"test": 2432232314}"#)
        );
        assert_ne!(
            sig,
            s.sign(
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265331,
                br#"{"test": 2432232314}"#
            )
        );
        assert_ne!(
            sig,
            s.sign("msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b"{}")
        );
    }
}
