//! Gateway-to-sequencer forwarding over HTTP: `POST /internal/v1/forward` on the sequencer's
//! advertised address, the body signed with a key derived from the cluster secret (user
//! tokens are not accepted there). Each request carries its idempotency id, so a retry after a
//! lost response or a takeover applies once.

use std::time::Duration;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use segment_writer::node::{ForwardReply, ForwardRequest, Forwarder};
use sha2::Sha256;

/// The header carrying the body's signature.
pub const SIGNATURE_HEADER: &str = "x-ferrymq-signature";
/// The internal route.
pub const FORWARD_PATH: &str = "/internal/v1/forward";

/// Signs and checks internal calls.
#[derive(Clone)]
pub struct ForwardKey(Vec<u8>);

impl std::fmt::Debug for ForwardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ForwardKey(..)")
    }
}

impl ForwardKey {
    /// The forwarding key of a cluster secret.
    pub fn new(cluster_secret: &[u8]) -> Self {
        ForwardKey(crate::receipt::derive_key(
            cluster_secret,
            "ferrymq forward v1",
        ))
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length")
    }

    /// The signature of `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut m = self.mac();
        m.update(body);
        STANDARD.encode(m.finalize().into_bytes())
    }

    /// Whether `signature` is genuine for `body`.
    pub fn verify(&self, body: &[u8], signature: &str) -> bool {
        let Ok(tag) = STANDARD.decode(signature) else {
            return false;
        };
        let mut m = self.mac();
        m.update(body);
        m.verify_slice(&tag).is_ok()
    }
}

/// Forwards over HTTP with a timeout per call.
#[derive(Debug, Clone)]
pub struct HttpForwarder {
    client: reqwest::Client,
    key: ForwardKey,
}

impl HttpForwarder {
    /// A forwarder signing with `key`.
    pub fn new(key: ForwardKey, timeout: Duration) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(Duration::from_secs(1))
            .build()?;
        Ok(HttpForwarder { client, key })
    }
}

#[async_trait]
impl Forwarder for HttpForwarder {
    async fn forward(
        &self,
        address: &str,
        request: ForwardRequest,
    ) -> Result<ForwardReply, String> {
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let signature = self.key.sign(&body);
        let url = format!("http://{address}{FORWARD_PATH}");
        let resp = self
            .client
            .post(&url)
            .header(SIGNATURE_HEADER, signature)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("forward to {address}: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("forward to {address}: HTTP {}", resp.status()));
        }
        resp.json::<ForwardReply>()
            .await
            .map_err(|e| format!("forward to {address}: bad reply: {e}"))
    }
}
