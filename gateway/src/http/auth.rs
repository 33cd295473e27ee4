//! The caller of a `/v1` route as an extractor: a handler that takes a [`Caller`] cannot run
//! without a verified bearer token (401 before the handler), and asks
//! [`Caller::require`] for its action on its resource (403). The route test in `http` checks
//! that every secured operation of the spec answers 401 without a token and 403 with a token
//! that grants nothing.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use crate::auth::{Action, AuthError, Claims};
use crate::http::error::{ApiError, ErrorCode};
use crate::service::AppState;

/// What a permission names (API.md "Auth": `topic/<name>`, `group/<name>`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    /// A producer group's transactions and check-backs.
    Producer(&'a str),
    /// Every topic (the list).
    Topics,
    /// Every group (the list).
    Groups,
    Cluster,
    Archive,
}

impl Resource<'_> {
    /// The resource as a permission string names it.
    pub fn path(&self) -> String {
        match self {
            Resource::Topic(t) => format!("topic/{t}"),
            Resource::Group(g) => format!("group/{g}"),
            Resource::Producer(p) => format!("producer/{p}"),
            Resource::Topics => "topic/*".to_string(),
            Resource::Groups => "group/*".to_string(),
            Resource::Cluster => "cluster".to_string(),
            Resource::Archive => "archive".to_string(),
        }
    }
}

/// A caller whose bearer token verified.
#[derive(Debug, Clone)]
pub struct Caller(Arc<Claims>);

impl Caller {
    /// 403 unless the caller may do `action` on `resource`.
    pub fn require(&self, action: Action, resource: Resource<'_>) -> Result<(), ApiError> {
        self.0
            .require(action, &resource.path())
            .map_err(ApiError::from)
    }

    /// The token's subject.
    pub fn subject(&self) -> &str {
        &self.0.sub
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated(m) => ApiError::new(ErrorCode::Unauthorized, m),
            AuthError::Forbidden(m) => ApiError::new(ErrorCode::Forbidden, m),
        }
    }
}

/// The token of an `Authorization: Bearer …` header.
fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    let unauthorized = |m: &str| ApiError::new(ErrorCode::Unauthorized, m);
    let value = headers
        .get(AUTHORIZATION)
        .ok_or_else(|| unauthorized("missing Authorization header"))?
        .to_str()
        .map_err(|_| unauthorized("malformed Authorization header"))?;
    Ok(value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| unauthorized("expected a Bearer token"))?
        .trim())
}

impl FromRequestParts<Arc<AppState>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(&parts.headers)?;
        Ok(Caller(state.verifier.verify(token)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_bearer_header_carries_a_token() {
        let mut h = HeaderMap::new();
        assert_eq!(bearer(&h).map_err(|e| e.code), Err(ErrorCode::Unauthorized));
        h.insert(AUTHORIZATION, "Basic abc".parse().expect("a header"));
        assert_eq!(bearer(&h).map_err(|e| e.code), Err(ErrorCode::Unauthorized));
        h.insert(AUTHORIZATION, "Bearer  tok ".parse().expect("a header"));
        assert_eq!(bearer(&h).ok(), Some("tok"));
    }

    #[test]
    fn resources_name_what_permissions_match() {
        assert_eq!(Resource::Topic("orders").path(), "topic/orders");
        assert_eq!(Resource::Producer("checkout").path(), "producer/checkout");
        assert_eq!(Resource::Groups.path(), "group/*");
    }
}
