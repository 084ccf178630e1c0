//! Black-box tests of the real app over HTTP on a real port.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{App, browser, csrf_of, sign_in};
use serde_json::{Value, json};

async fn json_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

fn assert_error_shape(v: &Value, status: u16, code: &str) {
    assert_eq!(v["error"]["status"], status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let r = c.get(app.at("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = c.get(app.at("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let _ = c.get(app.at("/login")).send().await.unwrap();
    let metrics = c
        .get(app.at("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("irflow_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/login\""), "{metrics}");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_safe_session_and_sign_out_ends_it() {
    let app = App::start().await;
    let client = browser();
    // Unauthenticated pages send people to sign in, and come back after.
    let r = client.get(app.at("/cases/3")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?next=/cases/3");

    let (status, _) = sign_in(&client, &app, "nurse", "wrong-password").await;
    assert_eq!(status, 401);
    let (status, cookies) = sign_in(&client, &app, "nurse", "demo").await;
    assert_eq!(status, 303);
    let session = cookies
        .iter()
        .find(|c| c.starts_with("irflow_session="))
        .expect("session cookie");
    assert!(
        session.contains("HttpOnly")
            && session.contains("SameSite=Lax")
            && session.contains("Path=/"),
        "{session}"
    );

    let page = client.get(app.at("/cases")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["cache-control"], "no-store");
    let html = page.text().await.unwrap();
    assert!(
        html.contains("Worklist") && html.contains("García López, María"),
        "worklist shows demo cases"
    );
    assert!(html.contains("Nora Patel, RN"));

    let csrf = csrf_of(&html);
    let r = client
        .post(app.at("/logout"))
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/login?signed_out=1");
    let r = client.get(app.at("/cases")).send().await.unwrap();
    assert_eq!(r.status(), 303, "the session is gone on the server");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secure_deployments_use_host_prefixed_secure_cookies() {
    let app = App::start_with(irflow_server::ServerConfig::default()).await;
    let client = browser();
    let page = client.get(app.at("/login")).send().await.unwrap();
    let set = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        set.starts_with("__Host-irflow_login=") && set.contains("Secure"),
        "{set}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_cross_site_writes_are_refused() {
    let app = App::start().await;
    // A sign-in post without the form's cookie is refused.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.at("/login"))
        .form(&[
            ("username", "nurse"),
            ("password", "demo"),
            ("csrf", "guess"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let client = app.signed_in("radiologist").await;
    let case = app.case_in_state("referred").await;
    // Wrong token: refused, nothing changes.
    let r = client
        .post(app.at(&format!("/cases/{case}/transitions")))
        .form(&[("csrf", "forged"), ("action", "accept")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Right token but another site's Origin: refused by the outer wall.
    let html = client
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let r = client
        .post(app.at(&format!("/cases/{case}/transitions")))
        .header("origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str()), ("action", "accept")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let html = client
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(">Referred</span>"), "still referred");
    // The genuine form works.
    let r = client
        .post(app.at(&format!("/cases/{case}/transitions")))
        .form(&[("csrf", csrf.as_str()), ("action", "accept")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let html = client
        .get(app.at(&format!("/cases/{case}?done=accept")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains("Done: Accept referral.") && html.contains("id=\"case-state\">Screening"),
        "moved on"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_form_errors_keep_what_was_typed() {
    let app = App::start().await;
    let client = app.signed_in("nurse").await;
    let case = app.case_in_state("screening").await;
    let html = client
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = csrf_of(&html);
    let r = client
        .post(app.at(&format!("/cases/{case}/transitions")))
        .form(&[
            ("csrf", csrf.as_str()),
            ("action", "defer"),
            ("reason", "fever <b>38.5</b>"),
            ("deferred_until", "2001-01-01"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let html = r.text().await.unwrap();
    assert!(
        html.contains("is not after today"),
        "message next to the form"
    );
    assert!(
        html.contains("fever &#60;b&#62;38.5&#60;/b&#62;")
            || html.contains("fever &lt;b&gt;38.5&lt;/b&gt;"),
        "typed text kept, escaped"
    );
    assert!(html.contains("aria-invalid=\"true\""));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_is_rate_limited() {
    let app = App::start().await;
    let client = browser();
    for _ in 0..5 {
        assert_eq!(sign_in(&client, &app, "scheduler", "nope").await.0, 401);
    }
    let (status, _) = sign_in(&client, &app, "scheduler", "demo").await;
    assert_eq!(
        status, 429,
        "even the right password waits once the limit is reached"
    );
    // Other users are not locked out by someone else's failures (below the per-client limit).
    assert_eq!(sign_in(&client, &app, "nurse", "demo").await.0, 303);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_authentication_and_roles() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let (status, v) = json_of(c.get(app.at("/api/v1/cases")).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert_error_shape(&v, 401, "unauthenticated");
    let (status, _) = json_of(
        c.get(app.at("/api/v1/cases"))
            .bearer_auth("irf_not-a-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);

    let nurse = app.token_for("nurse").await;
    let (status, v) = json_of(
        c.get(app.at("/api/v1/cases"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let cases = v["cases"].as_array().unwrap();
    let demo_cases = app
        .store
        .count_cases(&irflow_domain::Actor::system("test"), &Default::default())
        .await
        .unwrap();
    assert_eq!(
        i64::try_from(cases.len()).unwrap(),
        demo_cases,
        "staff see every case"
    );
    for case in cases {
        assert!(
            case["id"].is_i64()
                && case["state"].is_string()
                && case["patient"]["name"].is_string()
                && case["procedure"]["code"].is_string()
        );
    }
    let (status, v) = json_of(
        c.get(app.at("/api/v1/cases?state=screening"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["state"] == "screening")
    );
    let (status, v) = json_of(
        c.get(app.at("/api/v1/cases?state=bogus"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_error_shape(&v, 400, "bad_request");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("screening"),
        "lists the valid states"
    );
    let (status, _) = json_of(
        c.get(app.at("/api/v1/cases/abc"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let (status, v) = json_of(
        c.get(app.at("/api/v1/cases/99999"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404, "not_found");
    let (status, v) = json_of(
        c.get(app.at("/api/v1/nothing-here"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_error_shape(&v, 404, "not_found");

    // Admins may read cases (they may triage) but not take clinical steps.
    let admin = app.token_for("admin").await;
    let (status, _) = json_of(
        c.get(app.at("/api/v1/cases"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let ready = app.case_in_state("ready").await;
    let (status, v) = json_of(
        c.post(app.at(&format!("/api/v1/cases/{ready}/transitions")))
            .bearer_auth(&admin)
            .json(&json!({"action": "schedule"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_error_shape(&v, 403, "forbidden");
    // Only admins read the audit log.
    let (status, _) = json_of(
        c.get(app.at("/api/v1/audit"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    let (status, v) = json_of(
        c.get(app.at("/api/v1/audit?limit=5"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["events"].as_array().unwrap().len(), 5);
    assert!(v["next_before_id"].is_i64());
    let (status, v) = json_of(
        c.get(app.at("/api/v1/audit?since=yesterday"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(v["error"]["message"].as_str().unwrap().contains("since"));

    let (status, v) = json_of(
        c.get(app.at("/api/v1/me"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, v["user"]["role"].as_str()), (200, Some("nurse")));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoked_tokens_stop_working() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let token = app.token_for("scheduler").await;
    assert_eq!(
        c.get(app.at("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let id = app.store.list_api_tokens().await.unwrap()[0].id;
    app.store
        .revoke_api_token(&irflow_domain::Actor::system("test"), id)
        .await
        .unwrap();
    assert_eq!(
        c.get(app.at("/api/v1/me"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn referrers_cannot_reach_other_referrers_cases() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let nurse = app.token_for("nurse").await;
    let (_, all) = json_of(
        c.get(app.at("/api/v1/cases"))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let referrer_id = app
        .store
        .user_by_username("referrer")
        .await
        .unwrap()
        .id
        .get();
    let (mine, theirs): (Vec<&Value>, Vec<&Value>) = all["cases"]
        .as_array()
        .unwrap()
        .iter()
        .partition(|c| c["referrer"]["id"] == referrer_id);
    assert!(!mine.is_empty() && !theirs.is_empty());

    let token = app.token_for("referrer").await;
    let (status, v) = json_of(
        c.get(app.at("/api/v1/cases"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(v["cases"].as_array().unwrap().len(), mine.len());
    assert!(
        v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["referrer"]["id"] == referrer_id)
    );
    for other in &theirs {
        let id = other["id"].as_i64().unwrap();
        let (status, v) = json_of(
            c.get(app.at(&format!("/api/v1/cases/{id}")))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404, "API hides another referrer's case {id}");
        assert_error_shape(&v, 404, "not_found");
        let (status, _) = json_of(
            c.post(app.at(&format!("/api/v1/cases/{id}/transitions")))
                .bearer_auth(&token)
                .json(&json!({"action": "cancel", "reason": "not mine"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 404);
    }
    // And by URL in the browser.
    let browser = app.signed_in("referrer").await;
    let other = theirs[0]["id"].as_i64().unwrap();
    let r = browser
        .get(app.at(&format!("/cases/{other}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let html = r.text().await.unwrap();
    assert!(
        !html.contains(theirs[0]["patient"]["family_name"].as_str().unwrap()),
        "no patient data leaks"
    );
    let list = browser
        .get(app.at("/cases?closed=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(list.contains("My referrals"));
    for t in &theirs {
        assert!(!list.contains(t["patient"]["family_name"].as_str().unwrap()));
    }
    // Every refused attempt is audited as denied, against the referrer.
    let admin = app.token_for("admin").await;
    let (_, v) = json_of(
        c.get(app.at("/api/v1/audit?actor=referrer&outcome=denied&limit=500"))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let denied: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["entity_id"].as_str())
        .collect();
    for t in &theirs {
        assert!(
            denied.contains(&t["id"].to_string().as_str()),
            "denied read of {} audited",
            t["id"]
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_transitions_follow_the_pathway() {
    let app = App::start().await;
    let c = reqwest::Client::new();
    let case = app.case_in_state("referred").await;
    let url = app.at(&format!("/api/v1/cases/{case}/transitions"));
    let nurse = app.token_for("nurse").await;
    let rad = app.token_for("radiologist").await;

    let (status, v) = json_of(
        c.post(&url)
            .bearer_auth(&nurse)
            .json(&json!({"action": "accept"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "only radiologists vet");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("radiologist")
    );
    let (status, v) = json_of(
        c.post(&url)
            .bearer_auth(&rad)
            .json(&json!({"action": "discharge"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    let (status, v) = json_of(
        c.post(&url)
            .bearer_auth(&rad)
            .json(&json!({"action": "return"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 422);
    assert!(v["error"]["message"].as_str().unwrap().contains("reason"));
    let (status, _) = json_of(
        c.post(&url)
            .bearer_auth(&rad)
            .json(&json!({"action": "fly"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    let r = c
        .post(&url)
        .bearer_auth(&rad)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_error_shape(&r.json().await.unwrap(), 400, "bad_request");

    let (status, v) = json_of(
        c.post(&url)
            .bearer_auth(&rad)
            .json(&json!({"action": "accept", "expected_version": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["state"], "screening");
    let timeline = v["timeline"].as_array().unwrap();
    assert_eq!(timeline.last().unwrap()["action"], "accept");
    assert_eq!(timeline.last().unwrap()["actor"]["username"], "radiologist");
    // Stale version: conflict. Impossible step: conflict with the reason.
    let (status, _) = json_of(
        c.post(&url)
            .bearer_auth(&nurse)
            .json(&json!({"action": "mark_ready", "expected_version": 1}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409);
    let (status, v) = json_of(
        c.post(&url)
            .bearer_auth(&rad)
            .json(&json!({"action": "accept"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 409);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("cannot accept a case that is screening"),
        "{v}"
    );
    let (status, v) = json_of(
        c.get(app.at(&format!("/api/v1/cases/{case}")))
            .bearer_auth(&nurse)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let actions: Vec<&str> = v["available_actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["action"].as_str().unwrap())
        .collect();
    assert!(
        actions.contains(&"mark_ready")
            && actions.contains(&"defer")
            && !actions.contains(&"accept"),
        "{actions:?}"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visit_leaves_a_complete_audit_trail() {
    let app = App::start().await;
    let client = app.signed_in("scheduler").await;
    let case = app.case_in_state("confirmed").await;
    client.get(app.at("/cases")).send().await.unwrap();
    client
        .get(app.at(&format!("/cases/{case}")))
        .send()
        .await
        .unwrap();
    let admin = app.signed_in("admin").await;
    let page = admin
        .get(app.at("/admin/audit?actor=scheduler"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    for expected in ["sign_in", "list", "read", &format!("case {case}")] {
        assert!(html.contains(expected), "audit page shows {expected}");
    }
    let admin_token = app.token_for("admin").await;
    let (_, v) = json_of(
        reqwest::Client::new()
            .get(app.at(&format!(
                "/api/v1/audit?actor=scheduler&action=read&entity_type=case&entity_id={case}"
            )))
            .bearer_auth(&admin_token)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let read = &v["events"][0];
    assert_eq!(read["outcome"], "success");
    assert_eq!(read["actor"]["role"], "scheduler");
    assert_eq!(
        read["client"], "127.0.0.1",
        "reads record where they came from"
    );
    // Anonymous attempts are recorded too.
    reqwest::Client::new()
        .get(app.at(&format!("/api/v1/cases/{case}")))
        .send()
        .await
        .unwrap();
    let html = admin
        .get(app.at("/admin/audit?actor=anonymous&outcome=denied"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("case {case}")),
        "anonymous read attempt audited"
    );
    // Non-admins cannot open the audit log or the users page.
    let html = client.get(app.at("/admin/audit")).send().await.unwrap();
    assert_eq!(html.status(), 403);
    assert_eq!(
        client
            .get(app.at("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        403
    );
    assert_eq!(
        admin
            .get(app.at("/admin/users"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_documents_every_api_route() {
    let app = App::start().await;
    let doc: Value = reqwest::get(app.at("/api/v1/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.0.3");
    for path in [
        "/api/v1/cases",
        "/api/v1/cases/{id}",
        "/api/v1/cases/{id}/transitions",
        "/api/v1/cases/{id}/triage",
        "/api/v1/cases/{id}/screening",
        "/api/v1/cases/{id}/screening/for-date",
        "/api/v1/cases/{id}/actions/{action_id}",
        "/api/v1/cases/{id}/slots",
        "/api/v1/cases/{id}/appointment",
        "/api/v1/cases/{id}/preferences",
        "/api/v1/cases/{id}/plan",
        "/api/v1/cases/{id}/waitlist",
        "/api/v1/cases/{id}/waitlist/take",
        "/api/v1/waitlist",
        "/api/v1/appointments",
        "/api/v1/resources",
        "/api/v1/audit",
        "/api/v1/me",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    // The documented enums match the domain.
    let states: Vec<&str> = doc["components"]["schemas"]["CaseState"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(states, irflow_domain::CaseState::ALL.map(|s| s.as_str()));
    let actions: Vec<&str> = doc["components"]["schemas"]["Action"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(actions, irflow_domain::Action::ALL.map(|a| a.as_str()));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_guarded_by_role_and_unknown_paths_are_404() {
    let app = App::start().await;
    let admin = app.signed_in("admin").await;
    let r = admin.get(app.at("/")).send().await.unwrap();
    assert_eq!(r.headers()["location"], "/admin/audit");
    assert_eq!(
        admin.get(app.at("/cases")).send().await.unwrap().status(),
        200
    );
    let r = admin.get(app.at("/no/such/page")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let nurse = app.signed_in("nurse").await;
    assert_eq!(
        nurse
            .get(app.at("/cases/not-a-number"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        nurse
            .get(app.at("/cases?state=nonsense"))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let r = nurse
        .get(app.at("/static/htmx-2.0.11.min.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    app.stop().await;
}
