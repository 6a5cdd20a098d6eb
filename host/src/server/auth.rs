//! Bearer-token authentication and role checks.
//!
//! The config stores only SHA-256 of each token. A presented token is
//! hashed, then compared against **every** principal's hash in constant
//! time (no early exit), so response time says nothing about which bytes
//! of which hash matched.

use super::config::{PrincipalConfig, Role};
use super::errors::ApiError;
use crate::tenant::TenantBinding;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Name recorded in the audit chain.
    pub name: String,
    /// Roles granted.
    pub roles: Vec<Role>,
    /// Groups (for approval rules naming `group:<name>`).
    pub groups: Vec<String>,
    /// Tenants it may submit requests for (and read the answers of).
    pub tenants: TenantBinding,
}

/// The configured principals, by token hash.
#[derive(Debug, Clone, Default)]
pub struct Principals {
    entries: Vec<([u8; 32], Principal)>,
}

impl Principals {
    /// From the config (hashes already validated as 64 hex digits).
    pub fn new(config: &[PrincipalConfig]) -> Principals {
        let entries = config
            .iter()
            .filter_map(|p| {
                let bytes = hex::decode(&p.token_sha256).ok()?;
                let hash: [u8; 32] = bytes.try_into().ok()?;
                // Validated with the config; an invalid list binds nothing.
                let tenants = p.tenant_binding().unwrap_or_default();
                Some((
                    hash,
                    Principal {
                        name: p.name.clone(),
                        roles: p.roles.clone(),
                        groups: p.groups.clone(),
                        tenants,
                    },
                ))
            })
            .collect();
        Principals { entries }
    }

    /// The principal holding `token`, compared in constant time.
    pub fn lookup(&self, token: &str) -> Option<&Principal> {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (hash, principal) in &self.entries {
            if bool::from(hash[..].ct_eq(&presented[..])) {
                found = Some(principal);
            }
        }
        found
    }

    /// Authenticates the `Authorization: Bearer <token>` header and checks
    /// that the principal holds one of `roles`.
    pub fn authorize(&self, headers: &HeaderMap, roles: &[Role]) -> Result<Principal, ApiError> {
        let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
            return Err(ApiError::unauthenticated(
                "missing_token",
                "no Authorization header; send `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty() && !t.contains(' '));
        let Some(token) = token else {
            return Err(ApiError::unauthenticated(
                "malformed_token",
                "the Authorization header must be `Bearer <token>`",
            ));
        };
        let Some(principal) = self.lookup(token) else {
            return Err(ApiError::unauthenticated(
                "unknown_token",
                "the bearer token does not belong to any principal",
            ));
        };
        if !principal.roles.iter().any(|r| roles.contains(r)) {
            let wanted: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
            return Err(ApiError::forbidden(format!(
                "principal `{}` lacks the role this endpoint needs (one of: {})",
                principal.name,
                wanted.join(", ")
            )));
        }
        Ok(principal.clone())
    }
}

/// Hex SHA-256 of a token, as written in `token_sha256`.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principals() -> Principals {
        Principals::new(&[
            PrincipalConfig {
                name: "alice".into(),
                token_sha256: token_hash("tok-alice"),
                roles: vec![Role::Submit],
                groups: vec![],
                tenants: vec![],
            },
            PrincipalConfig {
                name: "ops".into(),
                token_sha256: token_hash("tok-ops"),
                roles: vec![Role::Admin, Role::Audit],
                groups: vec![],
                tenants: vec![],
            },
        ])
    }

    fn header(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::AUTHORIZATION,
            v.parse().expect("header value"),
        );
        h
    }

    #[test]
    fn tokens_are_matched_by_hash() {
        let p = principals();
        assert_eq!(
            p.lookup("tok-alice").map(|p| p.name.as_str()),
            Some("alice")
        );
        assert_eq!(p.lookup("tok-ops").map(|p| p.name.as_str()), Some("ops"));
        assert!(p.lookup("tok-alic").is_none());
        assert!(p.lookup("").is_none());
    }

    #[test]
    fn missing_malformed_unknown_and_forbidden_are_distinguished() {
        let p = principals();
        let code = |h: &HeaderMap, roles: &[Role]| p.authorize(h, roles).map_err(|e| e.code);
        assert_eq!(
            code(&HeaderMap::new(), &[Role::Submit]).expect_err("refused"),
            "missing_token"
        );
        assert_eq!(
            code(&header("Basic abc"), &[Role::Submit]).expect_err("refused"),
            "malformed_token"
        );
        assert_eq!(
            code(&header("Bearer "), &[Role::Submit]).expect_err("refused"),
            "malformed_token"
        );
        assert_eq!(
            code(&header("Bearer nope"), &[Role::Submit]).expect_err("refused"),
            "unknown_token"
        );
        assert_eq!(
            code(&header("Bearer tok-alice"), &[Role::Admin]).expect_err("refused"),
            "forbidden"
        );
        assert!(code(&header("Bearer tok-ops"), &[Role::Admin]).is_ok());
    }
}
