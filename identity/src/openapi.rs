//! OpenAPI 3.1 descriptions of the JSON APIs (issue 13): the pieces every service's description
//! shares — the document's head, the mutual-TLS security scheme, the error body — and the
//! `GET /openapi.json` route that serves a description. Each service builds its router and its
//! description from one source (utoipa-axum's [`OpenApiRouter`]: a route is added together with
//! its `#[utoipa::path]` description), so a served route cannot go undescribed.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::SecurityScheme;
use utoipa::openapi::{Components, InfoBuilder, OpenApi, OpenApiBuilder, Paths};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::http::Caller;

/// The name of the security scheme every operation requires: mutual TLS with a network
/// credential.
pub const MUTUAL_TLS: &str = "network_credential";

/// The path a description is served at.
pub const PATH: &str = "/openapi.json";

/// What the mutual-TLS scheme means, for every description.
const MUTUAL_TLS_TEXT: &str = "Mutual TLS 1.3 with a credential issued by the network CA (`jpki net issue`). \
The server admits only client certificates that chain to the network CA and are not on its CRL; the caller is \
the party named in the certificate (`urn:jpki:<kind>:<id>`), never a header or body field. Each operation says \
which parties the authorization table admits; any other party is refused with 403. A request that reaches a \
handler without a party (not served by the mutual-TLS server) is refused with 401.";

/// The JSON body of every error answer of the identity nodes and the validator's verification
/// API: `{"error": code, "message": text}`, and for a refusal the refusal's `reason` code.
/// 5xx answers never carry detail (`message` is `internal error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable code: `invalid` (400), `unauthenticated` (401), `forbidden` or `refused` (403),
    /// `not_found` (404), `conflict` or `integrity` (409), `refused` (429, rate limit),
    /// `internal` (500), `unavailable` (502 on the identity nodes, 503 on the validator),
    /// `overloaded` (503, the server's load shedding).
    pub error: String,
    /// What is wrong, for a person (no personal data, no internal detail on a 5xx).
    pub message: String,
    /// The refusal's reason code (`field_not_permitted`, `rate_limited`, `not_in_table`, …),
    /// on 403 and 429 refusals, and on a window's 401 the clerk refusal (`clerk_missing`,
    /// `clerk_not_trusted`, `clerk_stale`, `clerk_other_municipality`, `clerk_bad_signature`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The head of a description: title, version and description, the mutual-TLS security scheme,
/// and the paths and components of `parts`.
pub fn document(title: &str, description: &str, parts: impl IntoIterator<Item = OpenApi>) -> OpenApi {
    let mut components = Components::new();
    components.add_security_scheme(
        MUTUAL_TLS,
        SecurityScheme::MutualTls { description: Some(MUTUAL_TLS_TEXT.into()), deprecated: None, extensions: None },
    );
    let mut doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(title)
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(description))
                .license(Some(utoipa::openapi::License::new(env!("CARGO_PKG_LICENSE"))))
                .build(),
        )
        .paths(Paths::new())
        .components(Some(components))
        .build();
    for p in parts {
        doc.merge(p);
    }
    doc
}

/// The description as served: JSON bytes.
#[derive(Debug)]
pub struct Served(Bytes);

/// `GET /openapi.json`: this service's OpenAPI description.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "description",
    security(("network_credential" = [])),
    responses(
        (status = 200, description = "This service's OpenAPI 3.1 description (any authenticated party)",
         content_type = "application/json", body = Object),
        (status = 401, description = "No client party", body = ErrorBody),
    )
)]
pub async fn openapi_json(State(doc): State<Arc<Served>>, Caller(_): Caller) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], doc.0.clone())
}

/// The route of [`openapi_json`], undescribed state.
fn description_route() -> OpenApiRouter<Arc<Served>> {
    OpenApiRouter::new().routes(routes!(openapi_json))
}

/// The description of the `GET /openapi.json` route itself (part of every service's
/// description).
pub fn description_part() -> OpenApi {
    description_route().into_openapi()
}

/// Splits `api` into its router and its paths, completes the description with
/// [`document`] (`title`, `description`, plus `GET /openapi.json`), and returns the router
/// with `GET /openapi.json` serving that description, and the description.
pub fn serve(api: OpenApiRouter, title: &str, description: &str) -> (Router, OpenApi) {
    let (router, paths) = api.split_for_parts();
    let doc = document(title, description, [paths, description_part()]);
    // Serializing a description cannot fail (string keys, no non-finite numbers); if it ever
    // did, the route serves an empty object rather than the process refusing to start.
    let json = doc.to_json().unwrap_or_else(|_| "{}".to_owned());
    let (spec_router, _) = description_route().split_for_parts();
    (router.merge(spec_router.with_state(Arc::new(Served(Bytes::from(json))))), doc)
}
