//! What verifying a bearer token costs per request, with and without the gateway's memory of
//! tokens it verified (docs/benchmarks.md, "Token verification"): 20,000 verifications of one
//! token by `jsonwebtoken::decode`, then by `Verifier::verify`.
//!
//! ```text
//! openssl ecparam -genkey -name prime256v1 -noout -out ec.key
//! openssl pkcs8 -topk8 -nocrypt -in ec.key -out ec8.pem && openssl ec -in ec.key -pubout -out ec.pub
//! openssl genrsa -out rsa.key 2048 && openssl rsa -in rsa.key -pubout -out rsa.pub
//! cargo run --release -p gateway --example token_bench -- ec8.pem ec.pub rsa.key rsa.pub
//! ```
//!
//! Without arguments only HS256 is measured.

#![allow(clippy::unwrap_used, clippy::disallowed_methods)] // a benchmark driver: a panic is the report; it reads the clock on purpose

use std::time::{Duration, Instant};

use gateway::auth::{Claims, Verifier, mint};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};

const N: u32 = 20_000;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let read = |i: usize| std::fs::read(&args[i]).unwrap();
    let claims = Claims {
        sub: "bench".into(),
        exp: jsonwebtoken::get_current_timestamp() + 3600,
        perms: vec!["admin:*".into()],
    };
    let hs = mint(b"k", "bench", &claims.perms, Duration::from_secs(3600)).unwrap();
    measure(
        "HS256",
        &hs,
        &DecodingKey::from_secret(b"k"),
        Algorithm::HS256,
        &Verifier::hs256(b"k"),
    );
    if args.len() == 4 {
        for (alg, private, public) in [(Algorithm::ES256, 0, 1), (Algorithm::RS256, 2, 3)] {
            let encoding = match alg {
                Algorithm::ES256 => EncodingKey::from_ec_pem(&read(private)).unwrap(),
                _ => EncodingKey::from_rsa_pem(&read(private)).unwrap(),
            };
            let decoding = match alg {
                Algorithm::ES256 => DecodingKey::from_ec_pem(&read(public)).unwrap(),
                _ => DecodingKey::from_rsa_pem(&read(public)).unwrap(),
            };
            let token = jsonwebtoken::encode(&Header::new(alg), &claims, &encoding).unwrap();
            let verifier = Verifier::public_key_pem(&read(public)).unwrap();
            measure(&format!("{alg:?}"), &token, &decoding, alg, &verifier);
        }
    }
}

fn measure(name: &str, token: &str, key: &DecodingKey, alg: Algorithm, verifier: &Verifier) {
    let mut validation = Validation::new(alg);
    validation.set_required_spec_claims(&["exp", "sub"]);
    let started = Instant::now();
    for _ in 0..N {
        jsonwebtoken::decode::<Claims>(token, key, &validation).unwrap();
    }
    let full = started.elapsed() / N;
    let started = Instant::now();
    for _ in 0..N {
        verifier.verify(token).unwrap();
    }
    let remembered = started.elapsed() / N;
    println!("{name}: full verification {full:?}, remembered {remembered:?}");
}
