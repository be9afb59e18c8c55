//! The API's own documentation: `GET /api/v1/openapi.json` (in the route
//! table, public) and the browsable page `GET /api/docs` (mounted next to
//! `/health`), which loads the Scalar API reference in the browser from a
//! CDN (nothing is downloaded at build time) and points it at the document.

use axum::Json;
use axum::response::Html;

/// `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "meta",
    operation_id = "openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API", body = Object)),
)]
pub async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(crate::openapi::document_json())
}

/// The page of `GET /api/docs`.
pub const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Orca API</title>
</head>
<body>
  <noscript>This page needs JavaScript; the document itself is at <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript>
  <script id="api-reference" data-url="/api/v1/openapi.json"></script>
  <script src="https://cdn.jsdelivr.net/npm/@scalar/api-reference"></script>
</body>
</html>
"#;

/// `GET /api/docs`: a browsable view of [`openapi_json`].
pub async fn docs_page() -> Html<&'static str> {
    Html(DOCS_HTML)
}
