//! The API in process (axum's `oneshot`, no socket), over a fresh SQLite database: who may
//! call what, and the device round trip. The end-to-end suite remains the judge of behaviour
//! with real processes.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt as _;

use crate::testing::TestServer;

/// Sends one request; returns the status and the body as JSON (`Null` when empty).
async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(token) = token {
        req = req.header("authorization", format!("Bearer {token}"));
    }
    let req = match body {
        Some(b) => req
            .header("content-type", "application/json")
            .body(Body::from(b.to_string())),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = server.router().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
    };
    (status, value)
}

#[tokio::test]
async fn operator_endpoints_need_a_live_operator_token() {
    let s = TestServer::start().await;
    let (status, body) = call(&s, Method::GET, "/api/v1/hosts", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["code"], "unauthorized", "{body}");
    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&s.enrol), None).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "the enrolment token is no operator's"
    );
    let (status, body) = call(&s, Method::GET, "/api/v1/hosts", Some(&s.operator), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([]));

    // A second operator token works until it is revoked, then is refused at once.
    let (status, created) = call(
        &s,
        Method::POST,
        "/api/v1/tokens",
        Some(&s.operator),
        Some(json!({"name": "ci", "kind": "operator"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{created}");
    let token = created["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("fop_"), "{token}");
    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    let id = created["id"].as_str().unwrap();
    let revoke = format!("/api/v1/tokens/{id}");
    let (status, body) = call(&s, Method::DELETE, &revoke, Some(&s.operator), None).await;
    assert!(status.is_success(), "{status} {body}");
    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&token), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A kind the API does not make is refused by name.
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/tokens",
        Some(&s.operator),
        Some(json!({"name": "x", "kind": "device"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("use operator or enrol"),
        "{body}"
    );
}

#[tokio::test]
async fn a_device_enrols_checks_in_and_shows_in_the_fleet() {
    let s = TestServer::start().await;
    let facts = TestServer::facts("pump-7", &[("web", Some("1.0.0"))]);
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/enrol",
        None,
        Some(json!({"enrol_token": "fen_wrong", "facts": facts})),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, enrolled) = call(
        &s,
        Method::POST,
        "/api/v1/enrol",
        None,
        Some(json!({"enrol_token": s.enrol, "facts": facts})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolled}");
    let device = enrolled["device_token"].as_str().unwrap().to_string();
    assert!(device.starts_with("fdv_"));

    // A device credential is no operator's, and an operator token is no device's.
    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&device), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let checkin = json!({"facts": facts, "wait_secs": 0});
    let (status, _) = call(
        &s,
        Method::POST,
        "/api/v1/device/checkin",
        Some(&s.operator),
        Some(checkin.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, answer) = call(
        &s,
        Method::POST,
        "/api/v1/device/checkin",
        Some(&device),
        Some(checkin),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["host_id"], enrolled["host_id"]);
    assert_eq!(answer["jobs"], json!([]), "nothing was asked of the device");

    let (_, hosts) = call(&s, Method::GET, "/api/v1/hosts", Some(&s.operator), None).await;
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 1, "{hosts:?}");
    assert_eq!(hosts[0]["hostname"], "pump-7");
}

#[tokio::test]
async fn a_check_in_body_that_is_not_an_object_is_refused_with_its_reason() {
    let s = TestServer::start().await;
    let (status, enrolled) = call(
        &s,
        Method::POST,
        "/api/v1/enrol",
        None,
        Some(json!({"enrol_token": s.enrol, "facts": TestServer::facts("a", &[])})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let device = enrolled["device_token"].as_str().unwrap();
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/device/checkin",
        Some(device),
        Some(json!([1, 2])),
    )
    .await;
    assert!(status.is_client_error(), "{status}");
    assert!(!body["message"].as_str().unwrap_or("").is_empty(), "{body}");
}

#[tokio::test]
async fn whole_numbers_written_as_floats_are_read_and_a_long_poll_is_bounded() {
    let s = TestServer::start().await;
    let facts = TestServer::facts("a", &[]);
    let body = json!({"enrol_token": s.enrol, "facts": facts});
    let (_, enrolled) = call(&s, Method::POST, "/api/v1/enrol", None, Some(body)).await;
    let device = enrolled["device_token"].as_str().unwrap();
    let checkin = |wait: Value| json!({"facts": facts, "wait_secs": wait});
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/device/checkin",
        Some(device),
        Some(checkin(json!(0.0))),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    for (wait, why) in [
        (json!(0.5), "wait_secs"),
        (json!(301), "at most 300 seconds"),
        (json!(9223372036854775808u64), "at most 300 seconds"),
    ] {
        let (status, body) = call(
            &s,
            Method::POST,
            "/api/v1/device/checkin",
            Some(device),
            Some(checkin(wait.clone())),
        )
        .await;
        assert!(status.is_client_error(), "{wait}: {status} {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(message.contains(why), "{wait}: {why:?} not in {body}");
    }
}

#[tokio::test]
async fn facts_a_device_cannot_report_are_refused_with_a_reason_not_a_500() {
    let s = TestServer::start().await;
    // Enrols with `facts`: must be a 400 whose message says `why`.
    let refused = |facts: Value, why: &'static str| {
        let s = &s;
        async move {
            let body = json!({"enrol_token": s.enrol, "facts": facts});
            let (status, body) = call(s, Method::POST, "/api/v1/enrol", None, Some(body)).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains(why), "{why:?} not in {body}");
        }
    };
    let twice = TestServer::facts("pump-1", &[("web", Some("1.0.0")), ("web", None)]);
    refused(twice, "listed twice").await;

    let mut facts = TestServer::facts("pump\u{0}\u{1b}[2J", &[]);
    refused(facts.clone(), "control characters").await;

    facts["hostname"] = json!("pump-1");
    facts["os"] = json!("x".repeat(1_000_000));
    refused(facts, "os must be at most").await;

    let long = format!("0.0.1-{}", "a".repeat(4096));
    let facts = TestServer::facts("pump-1", &[("web", Some(long.as_str()))]);
    refused(facts, "at most 128").await;

    let (_, hosts) = call(&s, Method::GET, "/api/v1/hosts", Some(&s.operator), None).await;
    assert_eq!(hosts, json!([]), "no refused device was enrolled");
}

#[tokio::test]
async fn a_mistyped_address_is_a_page_for_a_browser_and_json_for_the_api() {
    let s = TestServer::start().await;
    let get = |path: &'static str| {
        let s = &s;
        async move {
            let req = Request::builder()
                .uri(path)
                .header("accept", "text/html,application/xhtml+xml")
                .body(Body::empty())
                .unwrap();
            let resp = s.app().oneshot(req).await.unwrap();
            let status = resp.status();
            let kind = resp.headers()["content-type"].to_str().unwrap().to_string();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 16)
                .await
                .unwrap();
            (status, kind, String::from_utf8_lossy(&body).into_owned())
        }
    };
    let (status, kind, body) = get("/hostz").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("text/html"), "{kind}");
    assert!(body.contains("Back to the dashboard"), "{body}");
    let (status, kind, body) = get("/api/v1/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(kind.starts_with("application/json"), "{kind}");
    assert!(body.contains("no such endpoint"), "{body}");
}

#[tokio::test]
async fn sign_in_attempts_are_limited() {
    let s = TestServer::start().await;
    let mut statuses = Vec::new();
    for _ in 0..25 {
        let req = Request::builder()
            .method(Method::POST)
            .uri("/login")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Body::from("token=fop_wrong&next=%2F"))
            .unwrap();
        statuses.push(s.app().oneshot(req).await.unwrap().status());
    }
    // A burst of 20 is answered (refused sign-ins go back to the form); then 429.
    assert!(
        statuses[..20].iter().all(|s| *s == StatusCode::SEE_OTHER),
        "{statuses:?}"
    );
    assert_eq!(statuses[24], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

/// Every operator route of the OpenAPI document has an entry in the role table: a route
/// added without one fails here (and is refused to everyone until it has one).
#[test]
fn every_operator_route_has_a_role() {
    let (_, doc) = super::routes();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (path, item) in &doc.paths.paths {
        if path.starts_with("/api/v1/device/") || path == "/api/v1/enrol" {
            continue;
        }
        for (method, op) in [
            ("GET", &item.get),
            ("POST", &item.post),
            ("PUT", &item.put),
            ("PATCH", &item.patch),
            ("DELETE", &item.delete),
        ] {
            if op.is_some() {
                checked += 1;
                if crate::policy::roles::need(method, path).is_none() {
                    missing.push(format!("{method} {path}"));
                }
            }
        }
    }
    assert!(checked > 30, "only {checked} operations read");
    // The audit log is read only: no operation changes or removes an entry.
    let audit = &doc.paths.paths["/api/v1/audit"];
    assert!(audit.get.is_some());
    assert!(
        audit.post.is_none()
            && audit.put.is_none()
            && audit.patch.is_none()
            && audit.delete.is_none()
    );
    assert!(missing.is_empty(), "routes without a role: {missing:?}");
}

/// A role does what the table says, over the API: a viewer reads and is refused a trigger
/// in words that name the role it needs; a publisher publishes but does not trigger or
/// manage tokens; an admin makes users and their tokens; a removed user's token is refused
/// at once.
#[tokio::test]
async fn each_role_is_held_to_its_table() {
    let s = TestServer::start().await;
    let admin = Some(s.operator.as_str());
    let token_for = |user: &'static str, role: &'static str| {
        let s = &s;
        async move {
            let (status, body) = call(
                s,
                Method::POST,
                "/api/v1/users",
                admin,
                Some(json!({"name": user, "role": role})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{body}");
            assert_eq!(body["role"], role, "{body}");
            let (status, created) = call(
                s,
                Method::POST,
                "/api/v1/tokens",
                admin,
                Some(json!({"name": format!("{user}-cli"), "user": user})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{created}");
            created["token"].as_str().unwrap().to_string()
        }
    };
    let viewer = token_for("vera", "viewer").await;
    let publisher = token_for("ci", "publisher").await;

    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::OK);
    let trigger = json!({"host": "nobody", "item": "web"});
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/updates",
        Some(&viewer),
        Some(trigger.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("needs the operator role (or admin)"),
        "{message}"
    );
    assert!(message.contains("vera is a viewer"), "{message}");
    let (status, body) = call(&s, Method::GET, "/api/v1/tokens", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("the admin role"),
        "{body}"
    );

    // The publisher: past the role check for a publish (refused only for its content),
    // refused a trigger and the users.
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/releases",
        Some(&publisher),
        Some(json!({})),
    )
    .await;
    assert_ne!(status, StatusCode::FORBIDDEN, "{body}");
    assert_ne!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, _) = call(
        &s,
        Method::POST,
        "/api/v1/updates",
        Some(&publisher),
        Some(trigger),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = call(&s, Method::GET, "/api/v1/users", Some(&publisher), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    // The history names the user, not the token.
    let (status, users) = call(&s, Method::GET, "/api/v1/users", admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "ci", "vera"], "{users}");
    assert_eq!(users[0]["role"], "admin");

    // Removed: its token is refused on the next request.
    let (status, _) = call(&s, Method::DELETE, "/api/v1/users/vera", admin, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(&s, Method::GET, "/api/v1/hosts", Some(&viewer), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The last admin stays.
    let (status, body) = call(&s, Method::DELETE, "/api/v1/users/admin", admin, None).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = call(
        &s,
        Method::PATCH,
        "/api/v1/users/admin",
        admin,
        Some(json!({"role": "viewer"})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

/// The role × route × tenant matrix, from the served OpenAPI document: every operator route,
/// called by a user of each role, answers as the role table says (refused in words naming
/// the role it needs, or past the check); called by an admin of another tenant with the id
/// of this tenant's host, it finds nothing, and its lists hold nothing of this tenant. A new
/// route without a role fails `every_operator_route_has_a_role`; one that leaks another
/// tenant's host fails here.
#[tokio::test]
async fn every_route_answers_each_role_and_another_tenant_as_the_tables_say() {
    use crate::policy::roles::{need, Role};
    let s = TestServer::start().await;
    let admin = Some(s.operator.as_str());
    // A host of the default tenant.
    let facts = TestServer::facts("home-1", &[("web", Some("1.0.0"))]);
    let (status, enrolled) = call(
        &s,
        Method::POST,
        "/api/v1/enrol",
        None,
        Some(json!({"enrol_token": s.enrol, "facts": facts})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolled}");
    let host_id = enrolled["host_id"].as_str().unwrap().to_string();
    let token_for = |user: String, role: &'static str, tenant: Option<&'static str>| {
        let s = &s;
        async move {
            let mut req = json!({"name": user, "role": role});
            if let Some(t) = tenant {
                req["tenant"] = json!(t);
            }
            let (status, body) = call(s, Method::POST, "/api/v1/users", admin, Some(req)).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let (status, created) = call(
                s,
                Method::POST,
                "/api/v1/tokens",
                admin,
                Some(json!({"name": format!("{user}-cli"), "user": user})),
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{created}");
            created["token"].as_str().unwrap().to_string()
        }
    };
    let roles = [
        Role::Viewer,
        Role::Operator,
        Role::Publisher,
        Role::Approver,
        Role::Admin,
    ];
    let mut tokens = Vec::new();
    for role in roles {
        tokens.push((
            role,
            token_for(format!("u-{role}"), role.as_str(), None).await,
        ));
    }
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/tenants",
        admin,
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let otto = token_for("otto".into(), "admin", Some("other")).await;

    let (_, doc) = super::routes();
    let mut checked = 0;
    let mut wrong = Vec::new();
    for (path, item) in &doc.paths.paths {
        if path.starts_with("/api/v1/device/") || path == "/api/v1/enrol" {
            continue;
        }
        for (method, op) in [
            (Method::GET, &item.get),
            (Method::POST, &item.post),
            (Method::PUT, &item.put),
            (Method::PATCH, &item.patch),
            (Method::DELETE, &item.delete),
        ] {
            if op.is_none() {
                continue;
            }
            // Each parameter filled with something that names nothing; a host's with this
            // tenant's host.
            let concrete = path
                .replace("{host}", &host_id)
                .replace("{id}", "0000dead")
                .replace("{name}", "no-such-name")
                .replace("{item}", "no-such-item")
                .replace("{version}", "9.9.9")
                .replace("{from}", "1.0.0")
                .replace("{to}", "9.9.9")
                .replace("{action}", "pause");
            let body = (method != Method::GET).then(|| json!({}));
            let Some(needs) = need(method.as_str(), path) else {
                wrong.push(format!("{method} {path}: no role"));
                continue;
            };
            // Deleting the host would leave the others nothing to find: last.
            let removes_host = method == Method::DELETE && path.contains("{host}");
            for (role, token) in tokens.iter().filter(|_| !removes_host) {
                checked += 1;
                let (status, answer) =
                    call(&s, method.clone(), &concrete, Some(token), body.clone()).await;
                let refused_for_role = status == StatusCode::FORBIDDEN
                    && answer["message"].as_str().unwrap_or("").contains("needs");
                if role.allows(needs) == refused_for_role {
                    wrong.push(format!(
                        "{method} {path} as {role}: {status} {answer} (table: {})",
                        if role.allows(needs) {
                            "allowed"
                        } else {
                            "refused"
                        }
                    ));
                }
            }
            // Another tenant's admin never reaches this tenant's host.
            if path.contains("{host}") {
                let (status, answer) =
                    call(&s, method.clone(), &concrete, Some(&otto), body.clone()).await;
                if status != StatusCode::NOT_FOUND {
                    wrong.push(format!(
                        "{method} {path} as another tenant: {status} {answer}"
                    ));
                }
            }
            if method == Method::GET && !path.contains('{') {
                let (status, answer) = call(&s, Method::GET, path, Some(&otto), None).await;
                let text = answer.to_string();
                if status == StatusCode::OK && (text.contains(&host_id) || text.contains("home-1"))
                {
                    wrong.push(format!(
                        "GET {path} as another tenant shows this tenant's host: {text}"
                    ));
                }
                if text.contains("u-viewer") || text.contains("u-admin-cli") {
                    wrong.push(format!(
                        "GET {path} as another tenant shows this tenant's users: {text}"
                    ));
                }
            }
        }
    }
    assert!(checked > 150, "only {checked} calls made");
    assert!(
        wrong.is_empty(),
        "{} routes answer against the tables:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    // The host is still there, untouched by the other tenant.
    let (_, hosts) = call(&s, Method::GET, "/api/v1/hosts", admin, None).await;
    assert_eq!(hosts[0]["id"], host_id.as_str(), "{hosts}");
}

/// `GET /metrics`: counts a user who sees the whole server reads, in Prometheus's text
/// format, with check-ins counted by result and nothing of a host's or a token's in them.
#[tokio::test]
async fn metrics_count_check_ins_by_result_for_an_operator_who_sees_the_whole_server() {
    let s = TestServer::start().await;
    let facts = TestServer::facts("pump-secret-name", &[("web", Some("1.0.0"))]);
    let (status, enrolled) = call(
        &s,
        Method::POST,
        "/api/v1/enrol",
        None,
        Some(json!({"enrol_token": s.enrol, "facts": facts})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{enrolled}");
    let device = enrolled["device_token"].as_str().unwrap().to_string();
    let checkin = json!({"facts": facts, "wait_secs": 0});
    for token in [device.as_str(), device.as_str(), "fdv_forged"] {
        call(
            &s,
            Method::POST,
            "/api/v1/device/checkin",
            Some(token),
            Some(checkin.clone()),
        )
        .await;
    }

    let (status, _) = call(&s, Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let resp = s
        .router()
        .oneshot(
            Request::get("/metrics")
                .header("authorization", format!("Bearer {}", s.operator))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(
        axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap()
            .to_vec(),
    )
    .unwrap();
    for line in [
        "ferry_checkins_total{result=\"ok\"} 2",
        "ferry_checkins_total{result=\"refused\"} 1",
        "ferry_hosts 1",
        "ferry_long_polls_held 0",
        "ferry_build_info{database=\"sqlite\",version=",
    ] {
        assert!(text.contains(line), "{line} missing:\n{text}");
    }
    assert!(
        text.lines().any(
            |l| l.starts_with("ferry_database_query_duration_seconds_count ") && !l.ends_with(" 0")
        ),
        "{text}"
    );
    for secret in ["pump-secret-name", &device, &s.operator, "fdv_forged"] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Once the server has several tenants, its counts are no tenant's to read here.
    let (status, body) = call(
        &s,
        Method::POST,
        "/api/v1/tenants",
        Some(&s.operator),
        Some(json!({"name": "other"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = call(&s, Method::GET, "/metrics", Some(&s.operator), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("metrics_listen"),
        "{body}"
    );
}
