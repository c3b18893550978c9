//! Public MyData's and the support centre's routes: the linkage
//! consultation, tickets and trainings.

use super::*;

async fn a_linkage_agreement_is_applied_for_discussed_and_approved_by_its_holder(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, h) = app
        .user("nhis-op", "mydata_operator", "public_institution", true)
        .await;
    let holder = app.token("nhis-op", h.as_deref()).await;
    let (_, a) = app
        .user("keis-op", "mydata_operator", "using_agency", true)
        .await;
    let agency = app.token("keis-op", a.as_deref()).await;
    let (_, i) = app
        .user("md-inv", "investigator:seoul", "health_authority", true)
        .await;
    let outsider = app.token("md-inv", i.as_deref()).await;
    let post = |path: &str, token: &str, body: Value| {
        app.request(Method::POST, path, Some(token))
            .json(&body)
            .send()
    };

    let offer = json!({
        "kind": "dataset", "code": "income-bracket", "title": "Income bracket (소득 분위)",
        "description": "The household's income bracket", "legal_basis": "NHI Act art. 96",
        "items": [
            {"name": "income_bracket", "type": "integer", "description": "1-10", "sensitivity": "sensitive", "legal_basis": "NHI Act", "retention_days": 180},
            {"name": "premium_monthly", "type": "integer", "description": "KRW", "sensitivity": "sensitive", "legal_basis": "NHI Act", "retention_days": 90}
        ]
    });
    let denied = post("/api/v1/mydata/catalogue", &agency, offer.clone())
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let published = post("/api/v1/mydata/catalogue", &holder, offer.clone())
        .await
        .unwrap();
    assert_eq!(published.status(), StatusCode::CREATED);
    let published: Value = published.json().await.unwrap();
    let again = post("/api/v1/mydata/catalogue", &holder, offer)
        .await
        .unwrap();
    assert_problem(again, StatusCode::CONFLICT).await;

    // Anyone browses and searches the catalogue.
    let found: Value = app
        .get_json("/api/v1/mydata/catalogue?q=INCOME", None)
        .await;
    assert_eq!(found["offers"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["offers"][0]["holder"]["name"], "A public_institution");
    let none: Value = app
        .get_json("/api/v1/mydata/catalogue?q=vehicle", None)
        .await;
    assert_eq!(none["offers"], json!([]));

    let application = |items: Value, retention: i64| {
        json!({"offer_id": published["id"], "service": "Youth job subsidy", "items": items,
               "purpose": "Check the applicant's household income", "legal_basis": "Employment Insurance Act art. 25",
               "retention_days": retention})
    };
    // Items not offered, or kept longer than allowed, are refused.
    for (items, retention) in [
        (json!(["salary"]), 30),
        (json!(["income_bracket", "premium_monthly"]), 120),
    ] {
        let bad = post(
            "/api/v1/mydata/agreements",
            &agency,
            application(items, retention),
        )
        .await
        .unwrap();
        assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    }
    let applied = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 90),
    )
    .await
    .unwrap();
    assert_eq!(applied.status(), StatusCode::CREATED);
    let applied: Value = applied.json().await.unwrap();
    assert_eq!(applied["status"], "applied");
    assert_eq!(applied["version"], 1);
    let id = applied["id"].as_i64().unwrap();
    let notes = format!("/api/v1/mydata/agreements/{id}/notes");

    // Only the holder reviews; only the agency answers; outsiders see nothing.
    let r = post(&notes, &agency, json!({"kind": "approve", "text": "fine"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(&notes, &outsider, json!({"kind": "comment", "text": "hi"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(
        &notes,
        &holder,
        json!({"kind": "question", "text": "Why the premium too?"}),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "questioned");
    let r = post(&notes, &holder, json!({"kind": "approve", "text": "ok"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::CONFLICT).await;
    let r = post(&notes, &holder, json!({"kind": "answer", "text": "me"}))
        .await
        .unwrap();
    assert_problem(r, StatusCode::FORBIDDEN).await;
    let r = post(
        &notes,
        &agency,
        json!({"kind": "answer", "text": "We ask for the bracket only."}),
    )
    .await
    .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["status"], "applied");
    let r = post(
        &notes,
        &holder,
        json!({"kind": "approve", "text": "Approved for the subsidy."}),
    )
    .await
    .unwrap();
    let approved: Value = r.json().await.unwrap();
    assert_eq!(approved["status"], "approved");
    let kinds: Vec<&str> = approved["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["apply", "question", "answer", "approve"]);

    // A new version supersedes the approved one once it is approved.
    let v2: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 60),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v2["version"], 2);
    let v2_notes = format!("/api/v1/mydata/agreements/{}/notes", v2["id"]);
    post(&v2_notes, &holder, json!({"kind": "approve", "text": "ok"}))
        .await
        .unwrap();
    let v1: Value = app
        .get_json(&format!("/api/v1/mydata/agreements/{id}"), Some(&agency))
        .await;
    assert_eq!(v1["status"], "superseded");
    // A newer application replaces one still under discussion, which can
    // then no longer be approved over it.
    let v3: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 30),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let v4: Value = post(
        "/api/v1/mydata/agreements",
        &agency,
        application(json!(["income_bracket"]), 20),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(v4["version"], 4);
    let stale = post(
        &format!("/api/v1/mydata/agreements/{}/notes", v3["id"]),
        &holder,
        json!({"kind": "approve", "text": "ok"}),
    )
    .await
    .unwrap();
    let problem = assert_problem(stale, StatusCode::CONFLICT).await;
    let detail = problem["detail"].as_str().unwrap();
    assert!(
        detail.contains("superseded") && !detail.contains("already exists"),
        "{problem}"
    );
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/mydata/agreements/{id}"),
            Some(&outsider),
        )
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::FORBIDDEN).await;
    let list: Value = app
        .get_json("/api/v1/mydata/agreements", Some(&holder))
        .await;
    assert_eq!(list.as_array().unwrap().len(), 4);

    // The catalogue counts the agreement in force.
    let catalogue: Value = app.get_json("/api/v1/mydata/catalogue", None).await;
    assert_eq!(
        catalogue["offers"][0]["demand"]["agreements"], 1,
        "{catalogue}"
    );
    assert_eq!(catalogue["stats"]["by_agency"][0]["datasets"], 1);
}

async fn institutions_open_tickets_that_the_support_centre_answers_and_trains_them(db: TestDb) {
    let app = spawn_app(db).await;
    let (_, a) = app
        .user("helpdesk", "support_agent", "hub_operator", true)
        .await;
    let agent = app.token("helpdesk", a.as_deref()).await;
    let (nhis, n) = app
        .user("nhis-staff", "mydata_operator", "public_institution", true)
        .await;
    let staff = app.token("nhis-staff", n.as_deref()).await;
    let (_, o) = app
        .user("other-staff", "mydata_operator", "ministry", true)
        .await;
    let other = app.token("other-staff", o.as_deref()).await;
    let post = |path: String, token: &str, body: Value| {
        app.request(Method::POST, &path, Some(token))
            .json(&body)
            .send()
    };

    let bad = post(
        "/api/v1/support/tickets".into(),
        &staff,
        json!({"kind": "gossip", "subject": "s", "text": "t"}),
    )
    .await
    .unwrap();
    assert_problem(bad, StatusCode::UNPROCESSABLE_ENTITY).await;
    let opened = post(
        "/api/v1/support/tickets".into(),
        &staff,
        json!({"kind": "new_dataset", "subject": "Publish the long-term care grade", "text": "We would like to offer it as a dataset."}),
    )
    .await
    .unwrap();
    assert_eq!(opened.status(), StatusCode::CREATED);
    let ticket: Value = opened.json().await.unwrap();
    assert_eq!(ticket["status"], "open");
    let id = ticket["id"].as_i64().unwrap();

    // Another institution does not see it; the agent does, and answers.
    let hidden = app
        .request(
            Method::GET,
            &format!("/api/v1/support/tickets/{id}"),
            Some(&other),
        )
        .send()
        .await
        .unwrap();
    assert_problem(hidden, StatusCode::NOT_FOUND).await;
    let theirs: Value = app.get_json("/api/v1/support/tickets", Some(&other)).await;
    assert_eq!(theirs, json!([]));
    let answered: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &agent,
        json!({"text": "Send us its items; we review them in a week."}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(answered["status"], "answered");
    let reopened: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &staff,
        json!({"text": "Items attached."}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(reopened["status"], "open");
    let closed: Value = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &agent,
        json!({"close": true}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(closed["status"], "closed");
    assert_eq!(closed["messages"].as_array().unwrap().len(), 3);
    let late = post(
        format!("/api/v1/support/tickets/{id}/replies"),
        &staff,
        json!({"text": "One more thing"}),
    )
    .await
    .unwrap();
    assert_problem(late, StatusCode::CONFLICT).await;

    // Lists come a page at a time, newest first, each ticket with its
    // messages; another institution's tickets are never on its pages.
    let mut ids = vec![id];
    for (token, subject) in [(&staff, "Second"), (&other, "Theirs"), (&staff, "Third")] {
        let t: Value = post(
            "/api/v1/support/tickets".into(),
            token,
            json!({"kind": "other", "subject": subject, "text": "A question."}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        ids.push(t["id"].as_i64().unwrap());
    }
    let page = |v: &Value| -> Vec<i64> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|t| t["id"].as_i64().unwrap())
            .collect()
    };
    let first: Value = app
        .get_json("/api/v1/support/tickets?limit=2", Some(&agent))
        .await;
    assert_eq!(page(&first), vec![ids[3], ids[2]]);
    let next: Value = app
        .get_json(
            &format!("/api/v1/support/tickets?limit=2&before={}", ids[2]),
            Some(&agent),
        )
        .await;
    assert_eq!(page(&next), vec![ids[1], ids[0]]);
    assert_eq!(next[1]["messages"].as_array().unwrap().len(), 3);
    assert_eq!(next[1]["institution"]["id"], json!(nhis.institution.0));
    let own: Value = app.get_json("/api/v1/support/tickets", Some(&staff)).await;
    assert_eq!(page(&own), vec![ids[3], ids[1], ids[0]]);
    let own_next: Value = app
        .get_json(
            &format!("/api/v1/support/tickets?before={}", ids[1]),
            Some(&staff),
        )
        .await;
    assert_eq!(page(&own_next), vec![ids[0]]);
    for bad in ["limit=0", "limit=501", "before=x", "before=0", "before=-3"] {
        let answer = app
            .request(
                Method::GET,
                &format!("/api/v1/support/tickets?{bad}"),
                Some(&agent),
            )
            .send()
            .await
            .unwrap();
        assert!(
            answer.status().is_client_error(),
            "{bad}: {}",
            answer.status()
        );
    }
    let history: Value = app
        .get_json(
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&agent),
        )
        .await;
    assert_eq!(page(&history["tickets"]), vec![ids[3], ids[1], ids[0]]);

    // Trainings: agents schedule them and record attendees.
    let denied = post(
        "/api/v1/support/trainings".into(),
        &staff,
        json!({"title": "t", "held_on": "2026-12-10", "place": "p"}),
    )
    .await
    .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
    let bad_date = post(
        "/api/v1/support/trainings".into(),
        &agent,
        json!({"title": "t", "held_on": "10/12/2026", "place": "p"}),
    )
    .await
    .unwrap();
    assert_problem(bad_date, StatusCode::UNPROCESSABLE_ENTITY).await;
    let training: Value = post(
        "/api/v1/support/trainings".into(),
        &agent,
        json!({"title": "Publishing datasets", "held_on": "2026-12-10", "place": "Sejong",
               "materials": [{"title": "Slides", "url": "https://support.example.go.kr/slides.pdf"}]}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let tid = training["id"].as_i64().unwrap();
    let with: Value = post(
        format!("/api/v1/support/trainings/{tid}/attendees"),
        &agent,
        json!({"institution_id": nhis.institution.0, "name": "Kim Minji"}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(with["attendees"][0]["name"], "Kim Minji");
    let twice = post(
        format!("/api/v1/support/trainings/{tid}/attendees"),
        &agent,
        json!({"institution_id": nhis.institution.0, "name": "Kim Minji"}),
    )
    .await
    .unwrap();
    assert_problem(twice, StatusCode::CONFLICT).await;
    let listed: Value = app
        .get_json("/api/v1/support/trainings", Some(&staff))
        .await;
    assert_eq!(listed[0]["materials"][0]["title"], "Slides");

    // The institution's consulting history: its ticket and its training.
    let history: Value = app
        .get_json(
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&agent),
        )
        .await;
    assert_eq!(
        history["tickets"].as_array().unwrap().last().unwrap()["id"],
        id
    );
    assert_eq!(history["trainings"][0]["id"], tid);
    let denied = app
        .request(
            Method::GET,
            &format!(
                "/api/v1/support/institutions/{}/history",
                nhis.institution.0
            ),
            Some(&staff),
        )
        .send()
        .await
        .unwrap();
    assert_problem(denied, StatusCode::FORBIDDEN).await;
}

civic_store::backend_tests!(
    a_linkage_agreement_is_applied_for_discussed_and_approved_by_its_holder,
    institutions_open_tickets_that_the_support_centre_answers_and_trains_them,
);
