//! The OpenAPI document: a snapshot of it (review changes to the API with
//! `cargo insta review`), and the same document served by a real server at
//! `GET /api/v1/openapi.json`, with the browsable page at `GET /api/docs`.

use std::net::SocketAddr;
use std::sync::Arc;

use orca_api::AppState;
use orca_store::Store;

#[test]
fn openapi_document_snapshot() {
    let doc = serde_json::to_value(orca_api::openapi::document()).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    insta::assert_json_snapshot!("openapi", doc);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document_and_its_page() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("orca.db").display());
    let store = Store::connect(&url).await.unwrap();
    let api = orca_api::serve(
        SocketAddr::from(([127, 0, 0, 1], 0)),
        AppState {
            store,
            nudge: Arc::new(|| {}),
            worker_clients: Default::default(),
            metrics: None,
            registry: None,
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();

    // Public: no token.
    let resp = http
        .get(format!("http://{}/api/v1/openapi.json", api.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("application/json"), "{ctype}");
    let served: serde_json::Value = resp.json().await.unwrap();
    let built = serde_json::to_value(orca_api::openapi::document()).unwrap();
    assert_eq!(served, built);

    let resp = http
        .get(format!("http://{}/api/docs", api.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let ctype = resp.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/html"), "{ctype}");
    let page = resp.text().await.unwrap();
    assert!(page.contains("data-url=\"/api/v1/openapi.json\""), "{page}");

    api.shutdown().await;
}
