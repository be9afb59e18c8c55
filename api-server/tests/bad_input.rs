//! Bad input on every write endpoint, generated from the OpenAPI document
//! (so a new endpoint is covered without touching this file): malformed
//! JSON, a body of the wrong shape, wrong field types, an empty body, an
//! oversized body, and non-numeric ids. Each answer is a 4xx
//! problem+json with a stable code; nothing answers 5xx, and the server
//! is still fine afterwards.

mod support;

use serde_json::{Value, json};
use support::{TestApi, TestDb};

/// A concrete path for a templated one.
fn fill(path: &str) -> String {
    let mut out = String::new();
    let mut rest = path;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let close = rest[open..].find('}').expect("a closed parameter") + open;
        out.push_str(match &rest[open + 1..close] {
            "id" | "version" | "to" => "1",
            "project" => "P",
            _ => "x",
        });
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Every field name of the API with a value of the wrong type.
fn wrong_types() -> Value {
    let mut o = serde_json::Map::new();
    for f in [
        "name",
        "spec",
        "source",
        "op",
        "ids",
        "cron",
        "timezone",
        "role",
        "format",
        "content",
        "project",
        "username",
        "password",
        "current_password",
        "new_password",
        "admin",
        "disabled",
        "params",
        "description",
        "os_user",
        "packages",
        "channels",
        "worker_groups",
        "expires_in_days",
        "tasks",
        "scope",
        "start",
        "end",
        "owner",
    ] {
        // Numbers where strings/lists/objects go; strings where numbers or
        // booleans go.
        let v = if matches!(f, "admin" | "disabled" | "expires_in_days") {
            json!("yes")
        } else {
            json!(12345)
        };
        o.insert(f.to_string(), v);
    }
    Value::Object(o)
}

async fn send(
    t: &TestApi,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Option<(u16, String, Value)> {
    let url = format!("http://{}/api/v1{path}", t.api.addr);
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    // A connection of its own each time: after refusing an oversized body
    // the server closes the connection, which a pooled client would reuse.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let mut req = http
        .request(method, url)
        .bearer_auth(&t.admin)
        .header("content-type", "application/json");
    if let Some(b) = body {
        req = req.body(b);
    }
    // The server may answer 413 and close before the whole oversized body
    // is written: the upload breaks, which is a refusal too.
    let resp = req.send().await.ok()?;
    let status = resp.status().as_u16();
    let ctype = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.unwrap_or_default();
    Some((
        status,
        ctype,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

fn check_problem(
    what: &str,
    status: u16,
    ctype: &str,
    body: &Value,
    must_refuse: bool,
) -> Option<String> {
    if status >= 500 {
        return Some(format!("{what}: {status} {body}"));
    }
    if must_refuse && !(400..500).contains(&status) {
        return Some(format!("{what}: accepted with {status}: {body}"));
    }
    if (400..500).contains(&status) {
        let ok = ctype.starts_with("application/problem+json")
            && body["code"]
                .as_str()
                .is_some_and(|c| c.starts_with("ORCA-"))
            && body["status"].as_u64() == Some(u64::from(status))
            && body["detail"].as_str().is_some_and(|d| !d.is_empty());
        if !ok {
            return Some(format!(
                "{what}: {status} is not problem+json: {ctype} {body}"
            ));
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_write_endpoint_refuses_bad_input_as_problem_json() {
    let t = TestApi::start(TestDb::sqlite()).await;
    let (s, doc) = t.call("GET", "/openapi.json", &t.admin, None).await;
    assert_eq!(s, 200);
    let mut failures = Vec::new();
    let mut writes = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let path = path.strip_prefix("/api/v1").unwrap_or(path);
        for (method, op) in item.as_object().unwrap() {
            if !["post", "put", "patch", "delete", "get"].contains(&method.as_str()) {
                continue;
            }
            let m = method.to_uppercase();
            let concrete = fill(path);
            // A non-numeric id in any route taking one.
            if path.contains("{id}") {
                let bad = path.replace("{id}", "not-a-number");
                let bad = fill(&bad);
                if let Some((s, c, b)) = send(&t, &m, &bad, Some(b"{}".to_vec())).await {
                    failures.extend(check_problem(&format!("{m} {bad}"), s, &c, &b, true));
                }
            }
            let takes_json = op["requestBody"]["content"]["application/json"].is_object();
            if !takes_json {
                continue;
            }
            writes += 1;
            let cases: Vec<(&str, Vec<u8>, bool)> = vec![
                ("malformed JSON", b"{not json".to_vec(), true),
                ("a JSON array for an object", b"[1, 2, 3]".to_vec(), true),
                ("an empty body", Vec::new(), true),
                (
                    "wrong field types",
                    wrong_types().to_string().into_bytes(),
                    false,
                ),
                ("an oversized body", vec![b' '; 3 * 1024 * 1024], true),
            ];
            for (what, body, must_refuse) in cases {
                let label = format!("{m} {concrete} with {what}");
                match send(&t, &m, &concrete, Some(body)).await {
                    Some((s, c, b)) => {
                        failures.extend(check_problem(&label, s, &c, &b, must_refuse))
                    }
                    None if what == "an oversized body" => {}
                    None => failures.push(format!("{label}: no answer")),
                }
            }
        }
    }
    assert!(
        writes >= 15,
        "the document lists the write endpoints ({writes} found)"
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Still fine.
    let (s, b) = t.call("GET", "/auth/me", &t.admin, None).await;
    assert_eq!(s, 200, "{b}");
    t.api.shutdown().await;
}
