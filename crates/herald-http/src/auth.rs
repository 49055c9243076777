//! Bearer API keys: `Authorization: Bearer hk_…`, checked against the live keys view.
//!
//! A handler names the scope it needs in its signature, and the key is checked before the
//! handler runs: 401 for a missing, unknown, expired or revoked key, 403 for a key without
//! the scope.
//!
//! ```text
//! async fn create(Authorized(caller, _): Authorized<scope::EndpointsWrite>, …)
//! ```
//!
//! The [`Caller`] it yields carries what the audit trail records: the key, the source
//! address and the request id.

use crate::app::RequestId;
use crate::error::ApiError;
use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use herald_core::apikey::Scope;
use herald_core::clock::SharedClock;
use herald_kafka::audit::Actor;
use herald_kafka::keys::{KeysView, Principal};
use std::marker::PhantomData;
use std::net::SocketAddr;

/// A scope a route requires, as a type (see [`scope`]).
pub trait RequiredScope: Send + Sync + 'static {
    const SCOPE: Scope;
}

/// One marker type per [`Scope`].
pub mod scope {
    use super::{RequiredScope, Scope};

    macro_rules! scopes {
        ($($name:ident),* $(,)?) => {$(
            #[doc = concat!("The `", stringify!($name), "` scope.")]
            pub struct $name;
            impl RequiredScope for $name {
                const SCOPE: Scope = Scope::$name;
            }
        )*};
    }

    scopes!(
        EventsWrite,
        EndpointsRead,
        EndpointsWrite,
        KeysAdmin,
        ReplayRun,
        DeliveriesRead,
        AuditRead,
    );
}

/// Who is calling: the key's principal, where the request came from and its id. Derefs to
/// the principal.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    /// The peer address (empty when the server runs without connection info, as in tests).
    pub source_ip: String,
    /// The request's `x-request-id`.
    pub request_id: String,
}

impl std::ops::Deref for Caller {
    type Target = Principal;
    fn deref(&self) -> &Principal {
        &self.principal
    }
}

impl Caller {
    /// The audit trail's view of the caller.
    pub fn actor(&self) -> Actor {
        Actor {
            id: self.principal.key_id.to_string(),
            source_ip: self.source_ip.clone(),
            request_id: self.request_id.clone(),
        }
    }
}

/// The authenticated caller, holding scope `S`.
pub struct Authorized<S>(pub Caller, pub PhantomData<S>);

impl<S> Authorized<S> {
    /// The caller.
    pub fn caller(self) -> Caller {
        self.0
    }
}

impl<St, S> FromRequestParts<St> for Authorized<S>
where
    S: RequiredScope,
    KeysView: FromRef<St>,
    SharedClock: FromRef<St>,
    St: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let keys = KeysView::from_ref(state);
        let now = SharedClock::from_ref(state).now_ms();
        let source_ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|info| info.0.ip().to_string())
            .unwrap_or_default();
        let principal = require(&keys, &parts.headers, S::SCOPE, now, &source_ip)?;
        let request_id = parts
            .extensions
            .get::<RequestId>()
            .map(|id| id.0.clone())
            .unwrap_or_default();
        let caller = Caller {
            principal,
            source_ip,
            request_id,
        };
        Ok(Authorized(caller, PhantomData))
    }
}

/// Authenticates the caller at `now` and checks it holds `scope`. A key that authenticates
/// is noted as used from `source_ip` (also when it lacks the scope: an investigation wants
/// those requests too).
pub fn require(
    keys: &KeysView,
    headers: &HeaderMap,
    scope: Scope,
    now: i64,
    source_ip: &str,
) -> Result<Principal, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let principal = keys.authenticate(token, now).map_err(|err| {
        metrics::counter!("herald_auth_failures_total", "reason" => err.reason()).increment(1);
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
    })?;
    keys.note_use(&principal.key_id, source_ip, now);
    if !principal.has(scope) {
        metrics::counter!("herald_auth_failures_total", "reason" => "scope").increment(1);
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this API key lacks the `{scope}` scope"),
        ));
    }
    Ok(principal)
}
