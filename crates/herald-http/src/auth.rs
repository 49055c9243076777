//! Bearer API keys: `Authorization: Bearer hk_…`, checked against the live keys view.
//!
//! A handler names the scope it needs in its signature, and the key is checked before the
//! handler runs: 401 for a missing, unknown, expired or revoked key, 403 for a key without
//! the scope.
//!
//! ```ignore
//! async fn create(Authorized(caller, ..): Authorized<scope::EndpointsWrite>, …)
//! ```

use crate::error::ApiError;
use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use herald_core::apikey::Scope;
use herald_core::clock::SharedClock;
use herald_kafka::keys::{KeysView, Principal};
use std::marker::PhantomData;

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
    );
}

/// The authenticated caller, holding scope `S`.
pub struct Authorized<S>(pub Principal, pub PhantomData<S>);

impl<S> Authorized<S> {
    /// The caller.
    pub fn principal(self) -> Principal {
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
        require(&keys, &parts.headers, S::SCOPE, now).map(|p| Authorized(p, PhantomData))
    }
}

/// Authenticates the caller at `now` and checks it holds `scope`.
pub fn require(
    keys: &KeysView,
    headers: &HeaderMap,
    scope: Scope,
    now: i64,
) -> Result<Principal, ApiError> {
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.strip_prefix("Bearer ").unwrap_or(v).trim());
    let principal = keys.authenticate(token, now).map_err(|err| {
        metrics::counter!("herald_auth_failures_total", "reason" => err.reason()).increment(1);
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", err.to_string())
    })?;
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
