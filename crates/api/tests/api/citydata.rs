//! City data end to end, on both backends: a sensor publishes on the
//! machine's Mosquitto, the broker ingests it by its mapping, a
//! subscriber hears of it over HTTP and over MQTT; bad input gets the
//! NGSI-LD ProblemDetails and changes nothing.

use super::*;
use civic_core::audit::AuditEntry;
use std::time::Duration;

const MOSQUITTO: (&str, u16) = ("127.0.0.1", 1883);

/// An HTTP endpoint on loopback that keeps what is POSTed to it.
async fn receiver() -> (String, Heard) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().route(
        "/notify",
        axum::routing::post(
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((
                        headers,
                        serde_json::from_slice(&body).unwrap_or(Value::Null),
                    ));
                    StatusCode::NO_CONTENT
                }
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/notify", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

/// What `receiver` heard.
type Heard = tokio::sync::mpsc::UnboundedReceiver<(axum::http::HeaderMap, Value)>;

/// The next notification `receiver` hears (its headers and body), within
/// 10 s.
async fn next_notification(heard: &mut Heard) -> (axum::http::HeaderMap, Value) {
    tokio::time::timeout(Duration::from_secs(10), heard.recv())
        .await
        .expect("a notification within 10 s")
        .expect("the receiver runs")
}

fn mqtt_client(name: &str) -> (rumqttc::AsyncClient, rumqttc::EventLoop) {
    let mut o = rumqttc::MqttOptions::new(
        format!("{name}-{}", uuid::Uuid::new_v4().simple()),
        MOSQUITTO.0,
        MOSQUITTO.1,
    );
    o.set_keep_alive(Duration::from_secs(10));
    rumqttc::AsyncClient::new(o, 64)
}

async fn sensors_arrive_over_mqtt_and_subscribers_hear_over_http_and_mqtt(db: TestDb) {
    // Topics of this run only: the tests share the machine's Mosquitto.
    let run = uuid::Uuid::new_v4().simple().to_string();
    let mappings = tempfile::NamedTempFile::with_suffix(".toml").unwrap();
    std::fs::write(
        mappings.path(),
        format!(
            r#"
            [[mapping]]
            topic = "test-{run}/air/+/reading"
            id = "urn:ngsi-ld:AirQualityObserved:{{1}}"
            type = "AirQualityObserved"
            observed_at = "ts"
            observed_as = "dateObserved"
            location = {{ lat = "lat", lon = "lon" }}
            [mapping.attributes]
            pm25 = {{ path = "pm25", unit = "GQ" }}
            "#
        ),
    )
    .unwrap();
    let path = mappings.path().to_owned();
    let app = spawn_app_with(db, move |c| {
        c.mqtt_url = Some(format!("mqtt://{}:{}", MOSQUITTO.0, MOSQUITTO.1));
        c.mqtt_mappings = Some(path);
        // The receivers are on loopback.
        c.city_egress_private = true;
        c.city_implicit_tenants = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();

    // A subscriber over HTTP: bad air, in keyValues.
    let (endpoint, mut heard) = receiver().await;
    let created = http
        .post(format!("{broker}/subscriptions"))
        .json(&json!({
            "type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
            "watchedAttributes": ["pm25"], "q": "pm25>35",
            "notification": {"format": "keyValues", "attributes": ["pm25"], "endpoint": {"uri": endpoint}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    // One over MQTT.
    let notify_topic = format!("test-{run}/notifications");
    let created = http
        .post(format!("{broker}/subscriptions"))
        .json(&json!({
            "type": "Subscription", "entities": [{"type": "AirQualityObserved"}],
            "notification": {"endpoint": {"uri": format!("mqtt://{}:{}/{notify_topic}", MOSQUITTO.0, MOSQUITTO.1)}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let (listener, mut listener_events) = mqtt_client("listener");
    listener
        .subscribe(notify_topic.clone(), rumqttc::QoS::AtLeastOnce)
        .await
        .unwrap();
    let (mqtt_tx, mut mqtt_heard) = tokio::sync::mpsc::unbounded_channel::<Value>();
    tokio::spawn(async move {
        while let Ok(event) = listener_events.poll().await {
            if let rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) = event {
                let _ = mqtt_tx.send(serde_json::from_slice(&p.payload).unwrap_or(Value::Null));
            }
        }
    });
    // Creating a subscription is an administrative act: in the ledger.
    let id = location.rsplit('/').next().unwrap();
    let audited = app
        .hub
        .store
        .search_audit(
            civic_core::audit::AuditQuery {
                action: Some("citydata.subscription.create".into()),
                limit: 10,
                ..Default::default()
            },
            civic_core::audit::AuditEntry::new("audit.search", "audit", Outcome::Allowed),
        )
        .await
        .unwrap();
    assert!(
        audited.iter().any(|r| r.entry.resource.ends_with(id)),
        "{audited:?}"
    );

    // A sensor publishes; the entity arrives.
    let (sensor, mut sensor_events) = mqtt_client("sensor");
    tokio::spawn(async move { while sensor_events.poll().await.is_ok() {} });
    let entity = format!("{broker}/entities/urn:ngsi-ld:AirQualityObserved:jongno");
    let mut got = None;
    for attempt in 0..100 {
        // Published again only if it did not arrive (a subscription made
        // just before may not yet have been in Mosquitto's table).
        if attempt % 30 != 0 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let r = http.get(&entity).send().await.unwrap();
            if r.status() == StatusCode::OK {
                got = Some(r.json::<Value>().await.unwrap());
                break;
            }
            continue;
        }
        sensor
            .publish(
                format!("test-{run}/air/jongno/reading"),
                rumqttc::QoS::AtLeastOnce,
                false,
                json!({"pm25": 41.5, "ts": 1_583_020_800, "lat": 37.57, "lon": 126.98}).to_string(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let r = http.get(&entity).send().await.unwrap();
        if r.status() == StatusCode::OK {
            got = Some(r.json::<Value>().await.unwrap());
            break;
        }
    }
    let got = got.expect("the sensor's entity arrives within 10 s");
    assert_eq!(got["pm25"]["value"], 41.5);
    assert_eq!(got["pm25"]["unitCode"], "GQ");
    assert_eq!(got["pm25"]["observedAt"], "2020-03-01T00:00:00.000Z");
    assert_eq!(
        got["dateObserved"]["value"],
        json!({"@type": "DateTime", "@value": "2020-03-01T00:00:00.000Z"}),
        "the model's dateObserved, from the mapping's observed_as"
    );
    assert_eq!(
        got["location"]["value"]["coordinates"],
        json!([126.98, 37.57])
    );

    // The subscribers hear of it.
    let (headers, n) = next_notification(&mut heard).await;
    assert_eq!(n["type"], "Notification");
    assert_eq!(n["subscriptionId"], id);
    assert_eq!(n["data"][0]["id"], "urn:ngsi-ld:AirQualityObserved:jongno");
    assert_eq!(n["data"][0]["pm25"], 41.5);
    assert!(headers["link"]
        .to_str()
        .unwrap()
        .contains("ngsi-ld-core-context"));
    let m = tokio::time::timeout(Duration::from_secs(10), mqtt_heard.recv())
        .await
        .expect("an MQTT notification within 10 s")
        .unwrap();
    assert_eq!(m["metadata"]["Content-Type"], "application/json");
    assert_eq!(m["body"]["data"][0]["pm25"]["value"], 41.5);

    // Good air is not news to the first subscriber (once what is in
    // flight has come); its count says so.
    while tokio::time::timeout(Duration::from_millis(700), heard.recv())
        .await
        .is_ok()
    {}
    http.patch(format!("{entity}/attrs"))
        .json(&json!({"pm25": {"type": "Property", "value": 12.0}}))
        .send()
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(1500), heard.recv())
            .await
            .is_err()
    );
    let shown: Value = http
        .get(format!("{}{location}", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        shown["notification"]["timesSent"].as_u64().unwrap() >= 1,
        "{shown}"
    );
    assert_eq!(shown["status"], "active");
}

async fn bad_city_data_gets_ngsi_ld_problems_and_changes_nothing(db: TestDb) {
    let app = spawn_app_with(db, |c| c.city_implicit_tenants = true).await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let problem = |r: reqwest::Response, status: StatusCode, kind: &'static str| async move {
        assert_eq!(r.status(), status);
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body["type"],
            format!("https://uri.etsi.org/ngsi-ld/errors/{kind}"),
            "{body}"
        );
        assert!(body["title"].is_string() && body["detail"].is_string());
    };
    let e = json!({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "level": {"type": "Property", "value": 3}});
    let post = |body: Value| http.post(format!("{broker}/entities")).json(&body).send();
    assert_eq!(post(e.clone()).await.unwrap().status(), StatusCode::CREATED);
    problem(
        post(e.clone()).await.unwrap(),
        StatusCode::CONFLICT,
        "AlreadyExists",
    )
    .await;
    problem(
        post(json!({"id": "not a uri", "type": "Sensor"}))
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "BadRequestData",
    )
    .await;
    problem(
        post(
            json!({"id": "urn:ngsi-ld:Sensor:2", "type": "Sensor", "level": {"type": "Property"}}),
        )
        .await
        .unwrap(),
        StatusCode::BAD_REQUEST,
        "BadRequestData",
    )
    .await;
    let r = http
        .post(format!("{broker}/entities"))
        .header("content-type", "text/plain")
        .body(e.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // A q without its value; a repetition of a repetition is no POSIX
    // pattern; id and type are not attributes; `;` is in no member's
    // name, nor `@` at its start.
    for bad in [
        "type=Sensor&q=level==",
        "type=Sensor&idPattern=urn.*%2A",
        "attrs=id,type",
        "type=Sensor&pick=id%3Blevel",
        "type=Sensor&attrs=%40level",
    ] {
        problem(
            http.get(format!("{broker}/entities?{bad}"))
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "BadRequestData",
        )
        .await;
    }
    problem(
        http.get(format!("{broker}/entities?type=Sensor&bogus=1"))
            .send()
            .await
            .unwrap(),
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
    )
    .await;
    // A batch with one bad entity writes the good ones and says which failed.
    let r = http
        .post(format!("{broker}/entityOperations/create"))
        .json(&json!([
            {"id": "urn:ngsi-ld:Sensor:3", "type": "Sensor"},
            {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor"}
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::MULTI_STATUS);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], json!(["urn:ngsi-ld:Sensor:3"]));
    assert_eq!(body["errors"][0]["entityId"], "urn:ngsi-ld:Sensor:1");
    // JSON null is no value: a batch update or merge refuses the item as
    // bad data, whether its entity exists or not.
    for op in ["update", "merge"] {
        let r = http
            .post(format!("{broker}/entityOperations/{op}"))
            .json(&json!([
                {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "level": {"type": "Property", "value": null}},
                {"id": "urn:ngsi-ld:Sensor:9", "type": "Sensor", "level": {"type": "Property", "value": null}}
            ]))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::MULTI_STATUS);
        let body: Value = r.json().await.unwrap();
        for n in 0..2 {
            assert_eq!(
                body["errors"][n]["error"]["type"],
                "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
                "{op}: {body}"
            );
        }
    }
    // Nothing of the refused writes is there.
    let all: Value = http
        .get(format!("{broker}/entities?type=Sensor&options=keyValues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        all,
        json!([
            {"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor", "level": 3},
            {"id": "urn:ngsi-ld:Sensor:3", "type": "Sensor"}
        ])
    );
    // By default the broker reaches no private address on a caller's
    // word: neither a @context there nor a notification endpoint.
    let r = http
        .get(format!("{broker}/entities?type=Sensor"))
        .header(
            "link",
            "<http://127.0.0.1:9/none.jsonld>; rel=\"http://www.w3.org/ns/json-ld#context\"",
        )
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "BadRequestData").await;
    let r = http
        .post(format!("{broker}/subscriptions"))
        .json(
            &json!({"type": "Subscription", "entities": [{"type": "Sensor"}],
            "notification": {"endpoint": {"uri": "http://169.254.169.254/latest/meta-data"}}}),
        )
        .send()
        .await
        .unwrap();
    problem(r, StatusCode::BAD_REQUEST, "BadRequestData").await;
    let subs: Value = http
        .get(format!("{broker}/subscriptions"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subs, json!([]));
}

async fn context_sources_are_registered_discovered_and_watched(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_egress_private = true;
        c.city_implicit_tenants = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let (endpoint, mut heard) = receiver().await;
    // A subscriber to registrations of parking.
    let r = http
        .post(format!("{broker}/csourceSubscriptions"))
        .json(&json!({
            "type": "Subscription", "entities": [{"type": "ParkingSpot"}],
            "notification": {"endpoint": {"uri": endpoint}}
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // A city department registers its parking sensors' broker.
    let registration = json!({
        "id": "urn:ngsi-ld:ContextSourceRegistration:parking", "type": "ContextSourceRegistration",
        "information": [
            {"entities": [{"type": "ParkingSpot"}], "propertyNames": ["status"]},
            {"entities": [{"type": "Streetlight"}]}
        ],
        "endpoint": "http://parking.example.org:1026",
        "location": {"type": "Point", "coordinates": [126.978, 37.5665]},
        "expiresAt": "2035-11-29T14:53:15Z"
    });
    let r = http
        .post(format!("{broker}/csourceRegistrations"))
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(
        r.headers()["location"],
        "/ngsi-ld/v1/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:parking"
    );
    // It is shown as it was given.
    let shown: Value = http
        .get(format!(
            "{broker}/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:parking"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown, registration);
    // Discovered by type and attribute, near its place, not otherwise.
    let found = |query: &'static str| {
        let http = http.clone();
        let url = format!("{broker}/csourceRegistrations?{query}");
        async move {
            let list: Vec<Value> = http.get(url).send().await.unwrap().json().await.unwrap();
            list.len()
        }
    };
    assert_eq!(found("type=ParkingSpot&attrs=status").await, 1);
    assert_eq!(
        found("type=ParkingSpot&georel=near%3BmaxDistance%3D%3D1000&geometry=Point&coordinates=%5B126.98,37.567%5D").await,
        1
    );
    assert_eq!(found("type=Vehicle").await, 0);
    assert_eq!(found("type=ParkingSpot&attrs=speed").await, 0);
    let r = http
        .get(format!("{broker}/csourceRegistrations"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::BAD_REQUEST,
        "a query must ask something"
    );
    // The subscriber heard of it, with the information that concerns it.
    let (_, n) = next_notification(&mut heard).await;
    assert_eq!(n["type"], "ContextSourceNotification");
    assert_eq!(n["triggerReason"], "newlyMatching");
    assert_eq!(n["data"][0]["id"], registration["id"]);
    assert_eq!(n["data"][0]["information"].as_array().unwrap().len(), 1);
    // No longer of parking: it hears that too.
    let r = http
        .patch(format!(
            "{broker}/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:parking"
        ))
        .json(&json!({"information": [{"entities": [{"type": "Streetlight"}]}], "expiresAt": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (_, n) = next_notification(&mut heard).await;
    assert_eq!(n["triggerReason"], "noLongerMatching");
    // Registering is an administrative act: in the ledger, in its transaction.
    let audited = app
        .hub
        .store
        .search_audit(
            civic_core::audit::AuditQuery {
                action: Some("citydata.registration.update".into()),
                limit: 10,
                ..Default::default()
            },
            civic_core::audit::AuditEntry::new("audit.search", "audit", Outcome::Allowed),
        )
        .await
        .unwrap();
    assert!(
        audited.iter().any(|r| r
            .entry
            .resource
            .ends_with("ContextSourceRegistration:parking")),
        "{audited:?}"
    );
    let r = http
        .delete(format!(
            "{broker}/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:parking"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = http
        .get(format!(
            "{broker}/csourceRegistrations/urn:ngsi-ld:ContextSourceRegistration:parking"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

/// A context source on loopback: answers what it is told to, keeps what
/// it was sent.
async fn context_source(
    reply: Value,
) -> (
    String,
    tokio::sync::mpsc::UnboundedReceiver<(String, axum::http::HeaderMap, Value)>,
) {
    use axum::response::IntoResponse;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(
        move |method: axum::http::Method,
              uri: axum::http::Uri,
              headers: axum::http::HeaderMap,
              body: axum::body::Bytes| {
            let (tx, reply) = (tx.clone(), reply.clone());
            async move {
                let _ = tx.send((
                    format!("{method} {uri}"),
                    headers,
                    serde_json::from_slice(&body).unwrap_or(Value::Null),
                ));
                match method {
                    axum::http::Method::GET => axum::Json(reply).into_response(),
                    axum::http::Method::POST => StatusCode::CREATED.into_response(),
                    _ => StatusCode::NO_CONTENT.into_response(),
                }
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, rx)
}

async fn operations_go_to_the_registered_sources_and_their_answers_merge(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_egress_private = true;
        c.city_implicit_tenants = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let id = "urn:ngsi-ld:ParkingSpot:cityhall-1";
    // The parking operator's broker holds the spots' occupancy.
    let (endpoint, mut heard) = context_source(json!([{
        "id": id, "type": "ParkingSpot",
        "status": {"type": "Property", "value": "occupied"}
    }]))
    .await;
    let r = http
        .post(format!("{broker}/csourceRegistrations"))
        .json(&json!({
            "type": "ContextSourceRegistration",
            "information": [{"entities": [{"type": "ParkingSpot"}]}],
            "endpoint": endpoint,
            "contextSourceInfo": [
                {"key": "Authorization", "value": "Bearer operator-s3cret"},
                {"key": "Fiware-Service", "value": "parking"}
            ]
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let registration = r.headers()["location"].to_str().unwrap().to_owned();
    // Whoever reads the registration sees its credential withheld.
    let shown: Value = http
        .get(format!("{}{registration}", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        shown["contextSourceInfo"],
        json!([{"key": "Authorization", "value": "(withheld)"}, {"key": "Fiware-Service", "value": "parking"}]),
        "{shown}"
    );
    let r = http
        .post(format!("{broker}/csourceRegistrations"))
        .json(
            &json!({"type": "ContextSourceRegistration", "endpoint": endpoint,
            "information": [{"entities": [{"type": "Lamp"}]}],
            "contextSourceInfo": {"Authorization": "Bearer x"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "contextSourceInfo is key-value pairs");
    // Created here; reading it asks the source too, and merges.
    let r = http
        .post(format!("{broker}/entities"))
        .json(&json!({"id": id, "type": "ParkingSpot", "name": {"type": "Property", "value": "City hall 1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let spot: Value = http
        .get(format!("{broker}/entities/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(spot["name"]["value"], "City hall 1");
    assert_eq!(spot["status"]["value"], "occupied");
    let (request, headers, _) = heard.recv().await.unwrap();
    assert!(
        request.starts_with("GET /ngsi-ld/v1/entities/"),
        "{request}"
    );
    let via = headers["via"].to_str().unwrap().to_owned();
    assert!(via.starts_with("1.1 "), "{via}");
    // The source gets what its registration carries for it, and never the
    // caller's own token.
    assert_eq!(headers["authorization"], "Bearer operator-s3cret");
    assert_eq!(headers["fiware-service"], "parking");
    // local=true asks no one.
    let spot: Value = http
        .get(format!("{broker}/entities/{id}?local=true"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spot.get("status").is_none());
    // A query merges too.
    let found: Vec<Value> = http
        .get(format!("{broker}/entities?type=ParkingSpot"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["status"]["value"], "occupied");
    // A request that has been here already is a loop.
    let r = http
        .get(format!("{broker}/entities/{id}"))
        .header("Via", via)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 508);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/LoopDetected"
    );
}

/// Tenants in the platform: an administrator sets one up for her
/// institution; a closed one answers only the tokens the policy lets in,
/// an open one anyone reads but only its institution registers in; every
/// change is in the ledger, naming who made it; tokens are rate-limited.
async fn closed_tenants_answer_only_the_callers_the_policy_lets_in(db: TestDb) {
    let app = spawn_app_with(db, |c| c.city_requests_per_minute = 40).await;
    let ngsi = |m: Method, path: &str, tenant: &str, token: Option<&str>| {
        let rb = app.request(m, &format!("/ngsi-ld/v1{path}"), token);
        if tenant.is_empty() {
            rb
        } else {
            rb.header("NGSILD-Tenant", tenant)
        }
    };
    let entity = json!({"id": "urn:ngsi-ld:ParkingSpot:1", "type": "ParkingSpot",
        "status": {"type": "Property", "value": "free"}});

    // Tenants no administrator set up do not exist here (a deployment's
    // default), whoever asks.
    let r = ngsi(Method::GET, "/entities?type=ParkingSpot", "", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/NonexistentTenant"
    );
    let r = ngsi(Method::POST, "/entities", "made-up", None)
        .json(&entity)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "no tenant is made on first use");

    // The city's administrator sets up a closed tenant, letting a
    // transit operator write it and a telco read it.
    let (_, secret) = app
        .user("city-admin", "administrator", "local_government", true)
        .await;
    let admin = app.token("city-admin", secret.as_deref()).await;
    let city = app.institution("local_government").await;
    let transit = app.institution("transit_operator").await;
    let telco = app.institution("telco").await;
    let ministry = app.institution("ministry").await;
    let settings = json!({"name": "parking", "institution": city.0, "access": "closed",
        "writers": [transit.0], "readers": [telco.0]});
    let ledger = app.ledger_size().await;
    let r = app
        .request(Method::PUT, "/api/v1/citydata/tenants", Some(&admin))
        .json(&settings)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        app.ledger_size().await,
        ledger + 1,
        "the creation is audited"
    );
    // Another institution's administrator may not take it over.
    let (_, other) = app
        .user("ministry-admin", "administrator", "ministry", true)
        .await;
    let other = app.token("ministry-admin", other.as_deref()).await;
    let takeover = json!({"name": "parking", "institution": ministry.0, "access": "open",
        "public_writes": true, "public_registrations": true});
    let r = app
        .request(Method::PUT, "/api/v1/citydata/tenants", Some(&other))
        .json(&takeover)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // What a closed tenant ignores is cleared, so that what is shown is
    // what applies; a name a tenant cannot have is refused.
    let odd = json!({"name": "parking", "institution": city.0, "access": "closed",
        "public_writes": true, "writers": [transit.0, transit.0], "readers": [telco.0]});
    let r = app
        .request(Method::PUT, "/api/v1/citydata/tenants", Some(&admin))
        .json(&odd)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let kept: Value = r.json().await.unwrap();
    assert_eq!(kept["public_writes"], false);
    assert_eq!(kept["writers"], json!([transit.0]));
    let bad = json!({"name": "no spaces", "institution": city.0, "access": "closed"});
    let r = app
        .request(Method::PUT, "/api/v1/citydata/tenants", Some(&admin))
        .json(&bad)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Machine clients with their API tokens.
    let token = |username: &'static str, duty: &'static str, kind: &'static str| {
        let app = &app;
        async move {
            let m = app.machine(username, duty, kind).await;
            app.hub
                .issue_api_token(&Ctx::local_operator(), m.institution, m.id, "sensors", None)
                .await
                .unwrap()
                .secret
        }
    };
    let owner = token("city-sensors", "city_data_operator", "local_government").await;
    let writer = token("transit-feed", "city_data_operator", "transit_operator").await;
    let reader = token("telco-analytics", "city_data_operator", "telco").await;
    let stranger = token("ministry-bot", "city_data_operator", "ministry").await;

    // Nothing without a token, and a bad token is refused.
    let r = ngsi(Method::GET, "/entities?type=ParkingSpot", "parking", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["type"],
        "https://uri.etsi.org/ngsi-ld/errors/Unauthorized"
    );
    let r = ngsi(
        Method::GET,
        "/entities?type=ParkingSpot",
        "parking",
        Some("not-a-token"),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 401);

    // The writer writes, the reader reads, the stranger does neither.
    let r = ngsi(Method::POST, "/entities", "parking", Some(&writer))
        .json(&entity)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = ngsi(Method::POST, "/entities", "parking", Some(&reader))
        .json(&json!({"id": "urn:ngsi-ld:ParkingSpot:2", "type": "ParkingSpot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let found = ngsi(
        Method::GET,
        "/entities?type=ParkingSpot",
        "parking",
        Some(&reader),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(found.status(), 200);
    assert_eq!(
        found
            .json::<Value>()
            .await
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    for m in [Method::GET, Method::DELETE] {
        let r = ngsi(
            m,
            "/entities/urn:ngsi-ld:ParkingSpot:1",
            "parking",
            Some(&stranger),
        )
        .send()
        .await
        .unwrap();
        assert_eq!(r.status(), 403);
    }
    // Registering a context source is the owner's alone.
    let registration = json!({"id": "urn:ngsi-ld:ContextSourceRegistration:parking",
        "type": "ContextSourceRegistration", "endpoint": "http://127.0.0.1:9/ngsi",
        "information": [{"entities": [{"type": "ParkingSpot"}]}]});
    let r = ngsi(
        Method::POST,
        "/csourceRegistrations",
        "parking",
        Some(&writer),
    )
    .json(&registration)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 403);
    let ledger = app.ledger_size().await;
    let r = ngsi(
        Method::POST,
        "/csourceRegistrations",
        "parking",
        Some(&owner),
    )
    .json(&registration)
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(app.ledger_size().await, ledger + 1);
    let audit = app
        .hub
        .store
        .audit_record(
            ledger,
            AuditEntry::new("audit.read", "audit", Outcome::Allowed),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.entry.action, "citydata.registration.create");
    assert_eq!(
        audit.entry.actor_name.as_deref(),
        Some("city-sensors"),
        "the registration names who made it"
    );
    // The refusals were recorded.
    let refusals = app
        .hub
        .store
        .search_audit(
            civic_core::audit::AuditQuery {
                action: Some("citydata.register".into()),
                limit: 100,
                ..Default::default()
            },
            AuditEntry::new("audit.search", "audit", Outcome::Allowed),
        )
        .await
        .unwrap();
    assert!(refusals.iter().any(|r| r.entry.outcome == Outcome::Denied));

    // The city opens the tenant: anyone reads it, no one anonymous writes
    // or registers in it.
    let open = json!({"name": "parking", "institution": city.0, "access": "open"});
    let r = app
        .request(Method::PUT, "/api/v1/citydata/tenants", Some(&admin))
        .json(&open)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ngsi(Method::GET, "/entities?type=ParkingSpot", "parking", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ngsi(Method::POST, "/entities", "parking", None)
        .json(&json!({"id": "urn:ngsi-ld:ParkingSpot:3", "type": "ParkingSpot"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ngsi(Method::POST, "/csourceRegistrations", "parking", None)
        .json(&registration)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        401,
        "no one takes over the open tenant's entities"
    );
    // Subscriptions hold their owners' endpoints: not left to anyone.
    let r = ngsi(Method::GET, "/subscriptions", "parking", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ngsi(Method::GET, "/subscriptions", "parking", Some(&owner))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = ngsi(Method::GET, "/subscriptions", "parking", Some(&stranger))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let listed = app.get_json("/api/v1/citydata/tenants", Some(&admin)).await;
    assert_eq!(listed[0]["access"], "open");
    assert_eq!(listed[0]["writers"], json!([]));

    // Each token has its rate: 40 a minute here.
    let mut limited = None;
    for _ in 0..45 {
        let r = ngsi(
            Method::GET,
            "/entities?type=ParkingSpot",
            "parking",
            Some(&reader),
        )
        .send()
        .await
        .unwrap();
        if r.status() != 200 {
            limited = Some(r);
            break;
        }
    }
    let r = limited.expect("the rate limit answers");
    assert_eq!(r.status(), 429);
    assert_eq!(r.headers()["retry-after"], "60");
    // Another caller is not slowed by it, nor are anonymous readers.
    let r = ngsi(
        Method::GET,
        "/entities?type=ParkingSpot",
        "parking",
        Some(&owner),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(r.status(), 200);
    let r = ngsi(Method::GET, "/entities?type=ParkingSpot", "parking", None)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Closed again elsewhere (`civic admin city-tenant`, another broker
    // process over the database): the server sees it within seconds.
    let elsewhere = civic_citydata::CityData::new(app.hub.clone());
    let closed: civic_citydata::tenancy::TenantSettings = serde_json::from_value(
        json!({"name": "parking", "institution": city.0, "access": "closed"}),
    )
    .unwrap();
    elsewhere
        .set_tenant(&Ctx::local_operator(), closed)
        .await
        .unwrap();
    let mut status = 200;
    for _ in 0..40 {
        status = ngsi(Method::GET, "/entities?type=ParkingSpot", "parking", None)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 401 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(status, 401, "the closing reached the running server");
}

/// Periodic subscriptions (`timeInterval`) send what they select every
/// interval, JSON-LD notifications carry the @context in each entity, a
/// `q` written %-encoded is read as a query's is, and a type selection
/// nests.
async fn periodic_subscriptions_send_what_they_select(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_egress_private = true;
        c.city_implicit_tenants = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    for (id, name) in [
        ("urn:ngsi-ld:Tower:1", "Eiffel Tower"),
        ("urn:ngsi-ld:Tower:2", "Namsan Tower"),
    ] {
        let r = http
            .post(format!("{broker}/entities"))
            .json(&json!({"id": id, "type": "Tower", "name": {"type": "Property", "value": name}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (url, mut heard) = receiver().await;
    let sub = json!({"type": "Subscription", "timeInterval": 1,
        "entities": [{"type": "(Building|Tower)"}], "q": "name==\"Eiffel%20Tower\"",
        "notification": {"endpoint": {"uri": url, "accept": "application/ld+json"}}});
    let r = http
        .post(format!("{broker}/subscriptions"))
        .json(&sub)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    for _ in 0..2 {
        let (headers, body) = next_notification(&mut heard).await;
        assert_eq!(headers["content-type"], "application/ld+json");
        let data = body["data"].as_array().unwrap();
        assert_eq!(data.len(), 1, "only what q selects: {body}");
        assert_eq!(data[0]["id"], "urn:ngsi-ld:Tower:1");
        assert_eq!(data[0]["name"]["value"], "Eiffel Tower");
        assert!(
            data[0].get("@context").is_some(),
            "each entity carries the @context"
        );
    }
    let r = http
        .delete(format!("{}{location}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
}

/// One attribute's instances as the test keeps them: (ms, value).
type Series = Vec<(i64, serde_json::Value)>;

/// What an aggregation must give, computed here from the instances
/// alone, as CIM 009 §4.5.19 says (population standard deviation):
/// per method, the non-empty buckets' [value, start ms, end ms].
fn expected_aggregation(
    series: &Series,
    from: i64,
    until: i64,
    origin: Option<i64>,
    period: i64,
    method: &str,
) -> Vec<(serde_json::Value, i64, i64)> {
    let inside: Vec<&(i64, serde_json::Value)> = series
        .iter()
        .filter(|(at, _)| *at >= from && *at < until)
        .collect();
    let Some(first) = inside.iter().map(|(at, _)| *at).min() else {
        return vec![];
    };
    let last = inside.iter().map(|(at, _)| *at).max().unwrap();
    let origin = origin.unwrap_or(first);
    let end = if until == i64::MAX { last + 1 } else { until };
    let period = if period == 0 { end - origin } else { period };
    let mut buckets: std::collections::BTreeMap<i64, Vec<&serde_json::Value>> =
        std::collections::BTreeMap::new();
    for (at, v) in inside.iter().filter(|(at, _)| *at >= origin) {
        buckets.entry((at - origin) / period).or_default().push(v);
    }
    buckets
        .into_iter()
        .filter_map(|(k, vs)| {
            let nums: Vec<f64> = vs.iter().filter_map(|v| v.as_f64()).collect();
            let n = nums.len() as f64;
            let mean = nums.iter().sum::<f64>() / n;
            let mut strings: Vec<&str> = vs.iter().filter_map(|v| v.as_str()).collect();
            strings.sort();
            let v: serde_json::Value = match method {
                "totalCount" => vs.len().into(),
                "distinctCount" => {
                    let mut d: Vec<String> = vs.iter().map(|v| v.to_string()).collect();
                    d.sort();
                    d.dedup();
                    d.len().into()
                }
                _ if nums.is_empty() => match method {
                    "min" => (*strings.first()?).into(),
                    "max" => (*strings.last()?).into(),
                    _ => return None,
                },
                "sum" => nums.iter().sum::<f64>().into(),
                "avg" => mean.into(),
                "min" => nums.iter().cloned().fold(f64::INFINITY, f64::min).into(),
                "max" => nums
                    .iter()
                    .cloned()
                    .fold(f64::NEG_INFINITY, f64::max)
                    .into(),
                "sumsq" => nums.iter().map(|x| x * x).sum::<f64>().into(),
                "stddev" => (nums.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n)
                    .sqrt()
                    .into(),
                _ => unreachable!(),
            };
            let start = origin + k * period;
            Some((v, start, start + period))
        })
        .collect()
}

/// Aggregations over whole hours come from the store's hourly sums, the
/// rest from the instances: whatever the buckets' origin, length and the
/// interval, the answer is the one computed from the instances alone
/// (late instances, before what was recorded, included).
async fn temporal_aggregations_agree_with_the_instances(db: TestDb) {
    use civic_citydata::entity::{format_datetime, parse_datetime};
    let app = spawn_app_with(db, |c| c.city_implicit_tenants = true).await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let t0 = parse_datetime("2024-03-01T00:00:00Z").unwrap();
    let mut seed: u64 = 19;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut temperature: Series = Vec::new();
    let mut status: Series = Vec::new();
    // Two loads: the second arrives late, before and among the first.
    for (load, start) in [(0, 86_400_000), (1, -3_600_000 * 5 - 1234)] {
        let mut t_items = Vec::new();
        let mut s_items = Vec::new();
        for i in 0..1500 {
            let at = t0 + start + i * 97_000 + (next() % 60_000) as i64;
            let v = (next() % 4000) as f64 / 100.0 - 10.0;
            let v = if i % 7 == 0 {
                json!(v.round() as i64)
            } else {
                json!(v)
            };
            t_items
                .push(json!({"type": "Property", "value": v, "observedAt": format_datetime(at)}));
            temperature.push((at, v));
            if i % 10 == load {
                let word = ["ok", "warn", "fault"][(next() % 3) as usize];
                s_items.push(
                    json!({"type": "Property", "value": word, "observedAt": format_datetime(at)}),
                );
                status.push((at, json!(word)));
            }
        }
        // In parts, as the test server takes small bodies.
        for part in 0..t_items.len().div_ceil(200) {
            let take = |items: &[serde_json::Value]| -> Vec<serde_json::Value> {
                items.iter().skip(part * 200).take(200).cloned().collect()
            };
            let r = http
                .post(format!("{broker}/temporal/entities"))
                .json(&json!({"id": "urn:ngsi-ld:Sensor:1", "type": "Sensor",
                    "temperature": take(&t_items), "status": take(&s_items)}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success(), "{}", r.text().await.unwrap());
        }
    }
    // The entity as it is now holds the latest instance.
    let now: serde_json::Value = http
        .get(format!("{broker}/entities/urn:ngsi-ld:Sensor:1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let latest = temperature.iter().max_by_key(|(at, _)| *at).unwrap();
    assert_eq!(now["temperature"]["value"], latest.1, "{now}");
    // The attributes go: their deletions are recorded (nulls with their
    // deletedAt), and counted by no aggregation.
    for attr in ["temperature", "status"] {
        let r = http
            .delete(format!(
                "{broker}/entities/urn:ngsi-ld:Sensor:1/attrs/{attr}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 204);
    }
    let h = 3_600_000;
    let fmt = |ms: i64| format_datetime(ms);
    // (timerel, timeAt, endTimeAt, period): aligned and not.
    let cases: Vec<(Option<&str>, i64, i64, &str, i64)> = vec![
        (Some("after"), t0, 0, "PT1H", h),
        (
            Some("between"),
            t0 + 17 * 60_000 + 3_000,
            t0 + 2 * 86_400_000 + 5 * 60_000,
            "PT1H",
            h,
        ),
        (Some("after"), t0 + 5 * h, 0, "P1D", 24 * h),
        (Some("before"), t0 + 3 * 86_400_000, 0, "PT7H", 7 * h),
        (Some("between"), t0, t0 + 86_400_000, "PT15M", 15 * 60_000),
        (Some("between"), t0 - 2 * h, t0 + 50 * h + 1, "", 0),
        (None, 0, 0, "PT2H", 2 * h),
        (None, 0, 0, "PT1H30M", 90 * 60_000),
        // One bucket until 2032, holding the deletions (today).
        (Some("after"), t0, 0, "P3000D", 3000 * 24 * h),
    ];
    for (timerel, at, end, duration, period) in cases {
        let mut url = format!(
            "{broker}/temporal/entities/urn:ngsi-ld:Sensor:1?options=aggregatedValues\
             &aggrMethods=totalCount,sum,avg,min,max,stddev,sumsq"
        );
        if !duration.is_empty() {
            url.push_str(&format!("&aggrPeriodDuration={duration}"));
        }
        let (from, until) = match timerel {
            Some("after") => (at, i64::MAX),
            Some("before") => (i64::MIN, at),
            Some(_) => (at, end),
            None => (i64::MIN, i64::MAX),
        };
        if let Some(rel) = timerel {
            url.push_str(&format!("&timerel={rel}&timeAt={}", fmt(at)));
            if rel == "between" {
                url.push_str(&format!("&endTimeAt={}", fmt(end)));
            }
        }
        let origin = (from != i64::MIN).then_some(from);
        let body: serde_json::Value = http.get(&url).send().await.unwrap().json().await.unwrap();
        for (attr, series, methods) in [
            (
                "temperature",
                &temperature,
                &["totalCount", "sum", "avg", "min", "max", "stddev", "sumsq"][..],
            ),
            ("status", &status, &["totalCount", "min", "max"][..]),
        ] {
            for method in methods {
                let want = expected_aggregation(series, from, until, origin, period, method);
                let got = body[attr][method].as_array().cloned().unwrap_or_default();
                let case = format!("{attr} {method} {url}");
                assert_eq!(got.len(), want.len(), "{case}: {got:?}");
                for (g, (value, start, stop)) in got.iter().zip(&want) {
                    assert_eq!(
                        parse_datetime(g[1].as_str().unwrap()),
                        Some(*start),
                        "{case}"
                    );
                    assert_eq!(
                        parse_datetime(g[2].as_str().unwrap()),
                        Some(*stop),
                        "{case}"
                    );
                    match (g[0].as_f64(), value.as_f64()) {
                        (Some(a), Some(b)) => assert!(
                            (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                            "{case}: {a} is not {b}"
                        ),
                        _ => assert_eq!(&g[0], value, "{case}"),
                    }
                }
            }
        }
    }
    // distinctCount reads the instances; a type query pages and counts.
    let body: serde_json::Value = http
        .get(format!(
            "{broker}/temporal/entities?type=Sensor&options=aggregatedValues\
             &aggrMethods=distinctCount&aggrPeriodDuration=P1D&timerel=after&timeAt={}&count=true",
            fmt(t0)
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let want = expected_aggregation(&status, t0, i64::MAX, Some(t0), 24 * h, "distinctCount");
    let got = body[0]["status"]["distinctCount"].as_array().unwrap();
    assert_eq!(got.len(), want.len());
    for (g, (v, _, _)) in got.iter().zip(&want) {
        assert_eq!(&g[0], v);
    }
    // The same query in a body; ids alone are not a query of history.
    let r = http
        .post(format!("{broker}/temporal/entityOperations/query?options=aggregatedValues&aggrMethods=totalCount"))
        .json(&json!({"type": "Query", "entities": [{"type": "Sensor"}], "attrs": ["status"],
            "temporalQ": {"timerel": "after", "timeAt": fmt(t0)}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.unwrap();
    let want = expected_aggregation(&status, t0, i64::MAX, Some(t0), 0, "totalCount");
    assert_eq!(body[0]["status"]["totalCount"][0][0], want[0].0, "{body}");
    let r = http
        .get(format!(
            "{broker}/temporal/entities?id=urn:ngsi-ld:Sensor:1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Without a count, an entity without instances in the interval is
    // left out as with one.
    for (timerel, at, n) in [("before", t0 - 10 * h, 0), ("after", t0 - 10 * h, 1)] {
        let body: serde_json::Value = http
            .get(format!(
                "{broker}/temporal/entities?type=Sensor&attrs=temperature&options=aggregatedValues\
                 &aggrMethods=avg&aggrPeriodDuration=P1D&timerel={timerel}&timeAt={}",
                fmt(at)
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body.as_array().unwrap().len(), n, "{timerel}: {body}");
    }
    // pick and omit shape the answer; with attrs, or a bad format, 400.
    let one = format!("{broker}/temporal/entities/urn:ngsi-ld:Sensor:1");
    let picked: serde_json::Value = http
        .get(format!("{one}?pick=id,status&lastN=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys: Vec<&String> = picked.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["id", "status"], "{picked}");
    for bad in [
        "pick=status&attrs=status",
        "format=tabular",
        "options=keyValues",
    ] {
        let r = http.get(format!("{one}?{bad}")).send().await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
    }
    let r = http
        .get(format!("{one}?attrs=nothingLikeIt"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "none of the attributes asked for");
    // One instance modified, then deleted: the sums follow.
    let latest: serde_json::Value = http
        .get(format!("{one}?attrs=temperature&lastN=1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let instance = latest["temperature"][0]["instanceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let max = |http: reqwest::Client, one: String| async move {
        let body: serde_json::Value = http
            .get(format!(
                "{one}?attrs=temperature&options=aggregatedValues&aggrMethods=max,totalCount"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (
            body["temperature"]["max"][0][0].as_f64().unwrap(),
            body["temperature"]["totalCount"][0][0].as_i64().unwrap(),
        )
    };
    let (before, n) = max(http.clone(), one.clone()).await;
    let at = format!("{one}/attrs/temperature/{instance}");
    let r = http
        .patch(&at)
        .json(&json!({"type": "Property", "value": 1000.5}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204, "{}", r.text().await.unwrap());
    assert_eq!(max(http.clone(), one.clone()).await, (1000.5, n));
    assert_eq!(http.delete(&at).send().await.unwrap().status(), 204);
    let (after, m) = max(http.clone(), one.clone()).await;
    assert!(after <= before && m == n - 1, "{after} {m}");
    assert_eq!(http.delete(&at).send().await.unwrap().status(), 404);
    let r = http
        .patch(format!("{one}/attrs/temperature/notAUri"))
        .json(&json!({"type": "Property", "value": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // Forgetting an attribute's history forgets its sums.
    let r = http
        .delete(format!(
            "{broker}/temporal/entities/urn:ngsi-ld:Sensor:1/attrs/temperature"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let body: serde_json::Value = http
        .get(format!(
            "{broker}/temporal/entities/urn:ngsi-ld:Sensor:1?options=aggregatedValues\
             &aggrMethods=totalCount&aggrPeriodDuration=P1D"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(body.get("temperature").is_none(), "{body}");
    assert!(body.get("status").is_some(), "{body}");
}

/// A subscription made in a compound @context gets a URL of the broker's
/// for it (an ImplicitlyCreated @context, CIM 009 §5.8.1, §5.13), shown
/// as its jsonldContext and served; it goes with the subscription.
async fn compound_contexts_of_subscriptions_get_a_url(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_implicit_tenants = true;
        c.city_egress_private = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let context = json!([{"speed": "https://example.org/speed"},
        "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]);
    let r = http
        .post(format!("{broker}/subscriptions"))
        .header("content-type", "application/ld+json")
        .body(
            json!({"type": "Subscription", "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
            "@context": context})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let location = r.headers()["location"].to_str().unwrap().to_owned();
    let sub: serde_json::Value = http
        .get(format!("{}{location}", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let url = sub["jsonldContext"]
        .as_str()
        .expect("a jsonldContext")
        .to_owned();
    let local_id = url.rsplit('/').next().unwrap().to_owned();
    assert!(
        url.starts_with(&format!("{broker}/jsonldContexts/")),
        "{url}"
    );
    let listed: serde_json::Value = http
        .get(format!(
            "{broker}/jsonldContexts?kind=ImplicitlyCreated&details=true"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["URL"], url.as_str());
    assert_eq!(listed[0]["kind"], "ImplicitlyCreated");
    let served: serde_json::Value = http
        .get(format!("{broker}/jsonldContexts/{local_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(served, json!({"@context": context}));
    // It has no other URL to be reloaded from.
    let r = http
        .delete(format!("{broker}/jsonldContexts/{local_id}?reload=true"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A single URL needs none.
    let r = http
        .post(format!("{broker}/subscriptions"))
        .header("content-type", "application/ld+json")
        .body(
            json!({"type": "Subscription", "entities": [{"type": "Vehicle"}],
            "notification": {"endpoint": {"uri": "http://127.0.0.1:9/n"}},
            "@context": ["https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"]})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .delete(format!("{}{location}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{broker}/jsonldContexts/{local_id}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "it goes with its subscription");
}

async fn relationships_join_the_entities_they_link_to(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_implicit_tenants = true;
        c.city_egress_private = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let batch = json!([
        {"id": "urn:ngsi-ld:Building:1", "type": "Building",
         "name": {"type": "Property", "value": "Tower"},
         "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:1"}},
        {"id": "urn:ngsi-ld:Building:2", "type": "Building",
         "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:404"}},
        {"id": "urn:ngsi-ld:City:1", "type": "City",
         "name": {"type": "Property", "value": "Seoul"},
         "isInCountry": {"type": "Relationship", "object": "urn:ngsi-ld:Country:1"}},
        {"id": "urn:ngsi-ld:Country:1", "type": "Country",
         "name": {"type": "Property", "value": "Korea"}},
    ]);
    let r = http
        .post(format!("{broker}/entityOperations/create"))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let get = |path: String| {
        let http = http.clone();
        async move {
            let r = http.get(path).send().await.unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let b1 = format!("{broker}/entities/urn:ngsi-ld:Building:1");
    let (status, inline) = get(format!("{b1}?join=inline&joinLevel=2")).await;
    assert_eq!(status, 200);
    let city = &inline["locatedAt"]["entity"];
    assert_eq!(city["name"]["value"], "Seoul");
    assert_eq!(city["isInCountry"]["entity"]["name"]["value"], "Korea");
    let (_, kv) = get(format!("{b1}?join=inline&options=keyValues")).await;
    assert_eq!(kv["locatedAt"]["name"], "Seoul");
    assert_eq!(kv["locatedAt"]["isInCountry"], "urn:ngsi-ld:Country:1");
    let (_, flat) = get(format!(
        "{b1}?join=flat&joinLevel=2&pick=id,locatedAt%7Bid,name%7D"
    ))
    .await;
    assert_eq!(
        flat,
        json!([{"id": "urn:ngsi-ld:Building:1",
                "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:1"}},
               {"id": "urn:ngsi-ld:City:1", "name": {"type": "Property", "value": "Seoul"}}])
    );
    // Nothing to link: the entity alone.
    let (_, alone) = get(format!(
        "{broker}/entities/urn:ngsi-ld:Building:2?join=flat"
    ))
    .await;
    assert_eq!(alone["id"], "urn:ngsi-ld:Building:2");
    // A query, flat: the buildings, then what they link to, each once.
    let (_, page) = get(format!(
        "{broker}/entities?type=Building&join=flat&options=keyValues"
    ))
    .await;
    let ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "urn:ngsi-ld:Building:1",
            "urn:ngsi-ld:Building:2",
            "urn:ngsi-ld:City:1"
        ]
    );
    // A pick of attributes selects the entities that have one of them.
    let (_, named) = get(format!("{broker}/entities?type=Building&pick=name")).await;
    assert_eq!(
        named,
        json!([{"name": {"type": "Property", "value": "Tower"}}])
    );
    // The POST query's own join, one hop by default.
    let page: serde_json::Value = http
        .post(format!("{broker}/entityOperations/query"))
        .json(&json!({"type": "Query", "entities": [{"type": "Building"}], "join": "inline"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page[0]["locatedAt"]["entity"]["id"], "urn:ngsi-ld:City:1");
    assert!(page[0]["locatedAt"]["entity"]["isInCountry"]
        .get("entity")
        .is_none());
    // A subscription's notifications join too: here flat, in keyValues.
    let (endpoint, mut heard) = receiver().await;
    let r = http
        .post(format!("{broker}/subscriptions"))
        .json(
            &json!({"type": "Subscription", "entities": [{"type": "Building"}],
            "watchedAttributes": ["name"],
            "notification": {"endpoint": {"uri": endpoint}, "format": "keyValues",
                             "join": "flat", "joinLevel": 2}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    let r = http
        .patch(format!("{b1}/attrs"))
        .json(&json!({"name": {"type": "Property", "value": "Taller"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, n) = next_notification(&mut heard).await;
    assert_eq!(
        n["data"],
        json!([{"id": "urn:ngsi-ld:Building:1", "type": "Building", "name": "Taller",
                "locatedAt": "urn:ngsi-ld:City:1"},
               {"id": "urn:ngsi-ld:City:1", "type": "City", "name": "Seoul",
                "isInCountry": "urn:ngsi-ld:Country:1"},
               {"id": "urn:ngsi-ld:Country:1", "type": "Country", "name": "Korea"}])
    );
    // Bad joins are refused.
    for bad in [
        "join=sideways",
        "join=flat&joinLevel=0",
        "pick=locatedAt%7Bname%7D",
    ] {
        let (status, problem) = get(format!("{b1}?{bad}")).await;
        assert_eq!(status, 400, "{bad}: {problem}");
        assert_eq!(
            problem["type"],
            "https://uri.etsi.org/ngsi-ld/errors/BadRequestData"
        );
    }
}

/// What deletions and system attributes tell subscribers: a deleted
/// attribute as an NGSI-LD null with when it was made and deleted, a
/// deleted entity's watched attributes as nulls, the entity's own
/// timestamps in keyValues; and what a subscription shows of itself.
async fn deletions_and_system_attributes_reach_subscribers(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_egress_private = true;
        c.city_implicit_tenants = true;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    for id in ["urn:ngsi-ld:Tower:1", "urn:ngsi-ld:Tower:2"] {
        let r = http
            .post(format!("{broker}/entities"))
            .json(&json!({"id": id, "type": "Tower",
                "name": {"type": "Property", "value": "a tower"},
                "height": {"type": "Property", "value": 300}}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let (url, mut heard) = receiver().await;
    let subscribe = |body: Value| {
        let http = http.clone();
        let broker = broker.clone();
        async move {
            let r = http
                .post(format!("{broker}/subscriptions"))
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 201);
            r.headers()["location"].to_str().unwrap().to_owned()
        }
    };
    let deletions = subscribe(
        json!({"type": "Subscription", "entities": [{"type": "Tower"}],
        "watchedAttributes": ["name"], "notificationTrigger": ["attributeDeleted"],
        "notification": {"endpoint": {"uri": url}, "sysAttrs": true}}),
    )
    .await;
    let heights = subscribe(
        json!({"type": "Subscription", "entities": [{"type": "Tower"}],
        "watchedAttributes": ["height"],
        "notification": {"endpoint": {"uri": url}, "format": "keyValues", "sysAttrs": true}}),
    )
    .await;
    let shown = |location: String| {
        let http = http.clone();
        let base = app.url.clone();
        async move {
            http.get(format!("{base}{location}"))
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let sub = shown(heights.clone()).await;
    assert_eq!(
        sub["notificationTrigger"],
        json!(["attributeCreated", "attributeUpdated"])
    );
    assert!(sub["notification"].get("lastNotification").is_none());
    assert_eq!(
        shown(deletions).await["notificationTrigger"],
        json!(["attributeDeleted"])
    );
    // A notification patched must still say where to.
    let r = http
        .patch(format!("{}{heights}", app.url))
        .json(&json!({"notification": {"format": "normalized"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = http
        .patch(format!("{broker}/entities/urn:ngsi-ld:Tower:1/attrs"))
        .json(&json!({"height": {"type": "Property", "value": 301}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let n = next_notification(&mut heard).await.1;
    assert_eq!(n["data"][0]["height"], 301);
    assert!(n["data"][0]["createdAt"].is_string() && n["data"][0]["modifiedAt"].is_string());
    let r = http
        .delete(format!("{broker}/entities/urn:ngsi-ld:Tower:1/attrs/name"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let n = next_notification(&mut heard).await.1;
    let name = &n["data"][0]["name"];
    assert_eq!(name["value"], "urn:ngsi-ld:null", "{n}");
    assert!(
        name["createdAt"].is_string() && name["deletedAt"].is_string(),
        "{n}"
    );
    let r = http
        .delete(format!("{broker}/entities/urn:ngsi-ld:Tower:2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let n = next_notification(&mut heard).await.1;
    let gone = &n["data"][0];
    assert_eq!(gone["id"], "urn:ngsi-ld:Tower:2");
    assert!(
        gone["deletedAt"].is_string() && gone["createdAt"].is_string(),
        "{n}"
    );
    assert_eq!(gone["name"]["value"], "urn:ngsi-ld:null", "{n}");
    assert!(gone.get("height").is_none(), "only the watched: {n}");
}

/// Scopes as CIM 009 §5.6.2/§5.6.3 (and the ETSI suite) read them: an
/// append replaces the entity's scope, with noOverwrite adds to it; an
/// update replaces a scope the entity has and reports, without failing
/// the rest, that it has none to update.
async fn scopes_are_replaced_added_or_reported(db: TestDb) {
    let app = spawn_app_with(db, |c| c.city_implicit_tenants = true).await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    // PATH after /entities: "" creates, "/ID/attrs…" changes.
    let send = |method: reqwest::Method, path: &str, body: Value| {
        http.request(method, format!("{broker}/entities{path}"))
            .json(&body)
            .send()
    };
    for (id, scope) in [
        ("urn:ngsi-ld:Park:1", json!("/Seoul/Parks")),
        ("urn:ngsi-ld:Park:2", Value::Null),
    ] {
        let mut e =
            json!({"id": id, "type": "Park", "name": {"type": "Property", "value": "a park"}});
        if !scope.is_null() {
            e["scope"] = scope;
        }
        let r = send(reqwest::Method::POST, "", e).await.unwrap();
        assert_eq!(r.status(), 201);
    }
    let scope_of = |id: &'static str| {
        let http = http.clone();
        let broker = broker.clone();
        async move {
            let e: Value = http
                .get(format!("{broker}/entities/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            e["scope"].clone()
        }
    };
    // Append, append without overwriting, update: the scope after each.
    for (method, path, scope, after) in [
        (
            reqwest::Method::POST,
            "attrs",
            "/Busan/Parks",
            json!("/Busan/Parks"),
        ),
        (
            reqwest::Method::POST,
            "attrs?options=noOverwrite",
            "/Seoul/Parks",
            json!(["/Busan/Parks", "/Seoul/Parks"]),
        ),
        (
            reqwest::Method::PATCH,
            "attrs",
            "/Daegu/Parks",
            json!("/Daegu/Parks"),
        ),
    ] {
        let r = send(
            method,
            &format!("/urn:ngsi-ld:Park:1/{path}"),
            json!({"scope": scope}),
        );
        assert_eq!(r.await.unwrap().status(), 204, "{path}");
        assert_eq!(scope_of("urn:ngsi-ld:Park:1").await, after, "{path}");
    }
    let r = send(
        reqwest::Method::PATCH,
        "/urn:ngsi-ld:Park:2/attrs",
        json!({"scope": "/Daegu/Parks", "name": {"type": "Property", "value": "renamed"}}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["notUpdated"][0]["attributeName"], "scope", "{body}");
    assert_eq!(scope_of("urn:ngsi-ld:Park:2").await, Value::Null);
}

/// The temporal API's details that CIM 009 §6.3.10, §5.6.11 and §4.5.3
/// set: an answer past `city_temporal_instances` of an attribute is cut,
/// 206 with a `Content-Range`, every attribute and entity shown up to the
/// same instant; an instance posted again at the instant it was observed
/// replaces the one recorded; a deleted attribute is recorded as an
/// NGSI-LD null read back by `timeproperty=deletedAt`; several instances
/// in keyValues are keyed by datasetId, and deleting one of them is an
/// `attributeDeleted` that shows it as a null beside the others.
async fn temporal_answers_are_cut_and_deletions_recorded(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_implicit_tenants = true;
        c.city_egress_private = true;
        c.city_temporal_instances = 3;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    let minute = |m: u32| format!("2020-01-01T01:{m:02}:00Z");
    let series = |values: &[(f64, u32)]| -> Value {
        values
            .iter()
            .map(|(v, m)| json!({"type": "Property", "value": v, "observedAt": minute(*m)}))
            .collect()
    };
    let post = |body: Value| {
        let r = http
            .post(format!("{broker}/temporal/entities"))
            .json(&body)
            .send();
        async move { r.await.unwrap().status() }
    };
    let v1 = "urn:ngsi-ld:Vehicle:1";
    let speed = series(&[(1.0, 1), (2.0, 2), (3.0, 3), (4.0, 4), (5.0, 5)]);
    let fuel = series(&[(10.0, 2), (20.0, 3), (30.0, 4), (40.0, 5), (50.0, 6)]);
    let body = json!({"id": v1, "type": "Vehicle", "speed": speed, "fuelLevel": fuel});
    assert_eq!(post(body).await, 201);
    let get = |query: String| {
        let r = http.get(format!("{broker}/temporal/{query}")).send();
        async move {
            let r = r.await.unwrap();
            let range = r
                .headers()
                .get("content-range")
                .map(|v| v.to_str().unwrap().to_owned());
            (r.status().as_u16(), range, r.json::<Value>().await.unwrap())
        }
    };
    let minutes_of = |attr: &Value| -> Vec<String> {
        attr.as_array()
            .unwrap()
            .iter()
            .map(|i| i["observedAt"].as_str().unwrap().to_owned())
            .collect()
    };
    // Oldest first: speed reaches the limit at 01:03; fuelLevel is shown
    // up to there.
    let (status, range, e) = get(format!("entities/{v1}")).await;
    assert_eq!(status, 206, "{e}");
    let range = range.expect("a Content-Range");
    assert_eq!(range, format!("date-time {}-{}/*", minute(1), minute(3)));
    assert_eq!(minutes_of(&e["speed"]), [minute(1), minute(2), minute(3)]);
    assert_eq!(minutes_of(&e["fuelLevel"]), [minute(2), minute(3)]);
    // lastN within the limit is not cut; beyond it, newest first.
    let (status, range, e) = get(format!("entities/{v1}?lastN=2")).await;
    assert_eq!((status, range), (200, None), "{e}");
    assert_eq!(minutes_of(&e["fuelLevel"]), [minute(5), minute(6)]);
    let (status, range, e) = get(format!("entities/{v1}?lastN=5")).await;
    assert_eq!(status, 206);
    assert_eq!(
        range.unwrap(),
        format!("date-time {}-{}/5", minute(6), minute(4))
    );
    assert_eq!(minutes_of(&e["speed"]), [minute(4), minute(5)]);
    // A query cuts every entity on its page at the same instant.
    let v2 = "urn:ngsi-ld:Vehicle:2";
    let late = json!({"id": v2, "type": "Vehicle", "speed": series(&[(7.0, 10)])});
    assert_eq!(post(late).await, 201);
    let (status, range, page) = get("entities?type=Vehicle".into()).await;
    assert_eq!(status, 206, "{page}");
    assert_eq!(
        range.unwrap(),
        format!("date-time {}-{}/*", minute(1), minute(3))
    );
    let second = page
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == v2)
        .expect("the second vehicle");
    assert_eq!(second["speed"], json!([]), "{page}");

    // Observed again at 01:01: replaced, not added.
    let again = json!({"id": v1, "type": "Vehicle", "speed": series(&[(99.0, 1)])});
    assert_eq!(post(again).await, 204);
    let (_, _, e) = get(format!(
        "entities/{v1}?attrs=speed&timerel=before&timeAt=2020-01-01T01:01:30Z"
    ))
    .await;
    assert_eq!(e["speed"].as_array().map(Vec::len), Some(1), "{e}");
    assert_eq!(e["speed"][0]["value"], 99.0);

    // A deleted attribute is an NGSI-LD null at its deletedAt.
    let r = http
        .delete(format!("{broker}/entities/{v1}/attrs/fuelLevel"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (status, _, e) = get(format!("entities/{v1}?timeproperty=deletedAt")).await;
    assert_eq!(status, 200, "{e}");
    assert!(e.get("speed").is_none(), "only what was deleted: {e}");
    let deleted = &e["fuelLevel"][0];
    assert_eq!(deleted["value"], "urn:ngsi-ld:null", "{e}");
    assert!(deleted["deletedAt"].is_string(), "{e}");
    let (_, _, e) = get(format!("entities/{v1}?attrs=fuelLevel&lastN=2")).await;
    assert_eq!(
        e["fuelLevel"][1]["value"], 50.0,
        "the deletion is not an observation: {e}"
    );
    let (status, _, _) = get(format!("entities/{v1}?timeproperty=someday")).await;
    assert_eq!(status, 400);

    // Several instances: keyValues by datasetId; deleting one notifies.
    let (url, mut heard) = receiver().await;
    let r = http
        .post(format!("{broker}/subscriptions"))
        .json(
            &json!({"type": "Subscription", "entities": [{"type": "Tower"}],
            "watchedAttributes": ["name"], "notificationTrigger": ["attributeDeleted"],
            "notification": {"endpoint": {"uri": url}, "format": "keyValues"}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let tower = "urn:ngsi-ld:Tower:N";
    let r = http
        .post(format!("{broker}/entities"))
        .json(&json!({"id": tower, "type": "Tower", "name": [
            {"type": "Property", "value": "Namsan Tower"},
            {"type": "Property", "value": "N서울타워", "datasetId": "urn:ngsi-ld:Dataset:ko"},
            {"type": "Property", "value": "N首尔塔", "datasetId": "urn:ngsi-ld:Dataset:zh"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let e: Value = http
        .get(format!("{broker}/entities/{tower}?options=keyValues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["name"]["dataset"]["@none"], "Namsan Tower", "{e}");
    assert_eq!(
        e["name"]["dataset"]["urn:ngsi-ld:Dataset:ko"], "N서울타워",
        "{e}"
    );
    let r = http
        .delete(format!(
            "{broker}/entities/{tower}/attrs/name?datasetId=urn:ngsi-ld:Dataset:zh"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let (_, n) = next_notification(&mut heard).await;
    let dataset = &n["data"][0]["name"]["dataset"];
    assert_eq!(dataset["urn:ngsi-ld:Dataset:zh"], "urn:ngsi-ld:null", "{n}");
    assert_eq!(dataset["urn:ngsi-ld:Dataset:ko"], "N서울타워", "{n}");
}

/// The shipped Smart Data Models, end to end: their own published
/// examples go in with the subjects' `@context`s, which are built in (this
/// machine reaches no internet); an entity of a model that would break
/// it is refused with the attributes at fault, whether it is created,
/// changed, or one of a batch, and the refusal changes nothing.
async fn smart_data_models_are_built_in_and_kept(db: TestDb) {
    let app = spawn_app_with(db, |c| c.city_implicit_tenants = true).await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    for example in [
        include_str!("../../../citydata/tests/smart-data-models/CrowdFlowObserved.jsonld"),
        include_str!("../../../citydata/tests/smart-data-models/TrafficFlowObserved.jsonld"),
        include_str!("../../../citydata/tests/smart-data-models/Streetlight.jsonld"),
    ] {
        let r = http
            .post(format!("{broker}/entities"))
            .header("content-type", "application/ld+json")
            .body(example)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
    // The models are public, for pages and mapping writers.
    let models: Vec<Value> = http
        .get(format!("{}/api/v1/citydata/models", app.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models.len(), 6);
    let parking = models.iter().find(|m| m["type"] == "ParkingSpot").unwrap();
    assert_eq!(
        parking["attributes"]["status"]["enum"],
        json!(["closed", "free", "occupied", "unknown"])
    );
    assert_eq!(
        parking["required"],
        json!(["location", "status", "category", "refParkingSite"])
    );
    // Read back in the Streetlighting context: its terms, its IRIs.
    let streetlighting = "https://raw.githubusercontent.com/smart-data-models/dataModel.Streetlighting/master/context.jsonld";
    let link = format!(
        "<{streetlighting}>; rel=\"http://www.w3.org/ns/json-ld#context\"; type=\"application/ld+json\""
    );
    let e: Value = http
        .get(format!(
            "{broker}/entities/urn:ngsi-ld:Streetlight:streetlight:guadalajara:4567?options=keyValues"
        ))
        .header("link", &link)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(e["powerState"], "off", "{e}");
    let e: Value = http
        .get(format!(
            "{broker}/entities/urn:ngsi-ld:Streetlight:streetlight:guadalajara:4567?options=keyValues"
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        e["https://smartdatamodels.org/dataModel.Streetlighting/powerState"], "off",
        "{e}"
    );

    let spot = |id: &str, status: &str| {
        json!({"id": id, "type": "ParkingSpot",
            "status": {"type": "Property", "value": status},
            "category": {"type": "Property", "value": ["onStreet"]},
            "refParkingSite": {"type": "Relationship", "object": "urn:ngsi-ld:OnStreetParking:cityhall"},
            "location": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [126.978, 37.566]}}})
    };
    let problem = |r: reqwest::Response| async move {
        assert_eq!(r.status(), 400);
        let p: Value = r.json().await.unwrap();
        assert_eq!(
            p["type"], "https://uri.etsi.org/ngsi-ld/errors/BadRequestData",
            "{p}"
        );
        p["detail"].as_str().unwrap().to_owned()
    };
    let r = http
        .post(format!("{broker}/entities"))
        .json(&spot("urn:ngsi-ld:ParkingSpot:cityhall-1", "taken"))
        .send()
        .await
        .unwrap();
    let detail = problem(r).await;
    assert!(
        detail.contains("status: one of closed, free, occupied, unknown, not \"taken\""),
        "{detail}"
    );
    let r = http
        .get(format!(
            "{broker}/entities/urn:ngsi-ld:ParkingSpot:cityhall-1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404, "a refused entity is not created");

    let id = "urn:ngsi-ld:ParkingSpot:cityhall-1";
    let r = http
        .post(format!("{broker}/entities"))
        .json(&spot(id, "free"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let r = http
        .patch(format!("{broker}/entities/{id}/attrs"))
        .json(&json!({"status": {"type": "Property", "value": 3}}))
        .send()
        .await
        .unwrap();
    assert!(problem(r).await.contains("status: a string, not 3"));
    let r = http
        .post(format!("{broker}/entities/{id}/attrs"))
        .json(&json!({"category": {"type": "Property", "value": "onStreet"}, "width": {"type": "Property", "value": "wide"}}))
        .send()
        .await
        .unwrap();
    let detail = problem(r).await;
    assert!(
        detail.contains("category: an array, not \"onStreet\"; width: a number, not \"wide\""),
        "{detail}"
    );
    let kept: Value = http
        .get(format!("{broker}/entities/{id}?options=keyValues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(kept["status"], "free", "{kept}");
    assert_eq!(kept["category"], json!(["onStreet"]), "{kept}");

    // A batch: the good are written, the one at fault reported.
    let r = http
        .post(format!("{broker}/entityOperations/upsert"))
        .json(&json!([
            spot("urn:ngsi-ld:ParkingSpot:cityhall-2", "occupied"),
            spot("urn:ngsi-ld:ParkingSpot:cityhall-3", "full"),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 207);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["success"],
        json!(["urn:ngsi-ld:ParkingSpot:cityhall-2"]),
        "{body}"
    );
    assert_eq!(
        body["errors"][0]["entityId"], "urn:ngsi-ld:ParkingSpot:cityhall-3",
        "{body}"
    );
    let count = http
        .get(format!(
            "{broker}/entities?type=ParkingSpot&count=true&limit=0"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(count.headers()["ngsild-results-count"], "2");
}

/// An open tenant's anonymous callers are counted by their address
/// (`city_anonymous_requests_per_minute`): past it, 429 as a ProblemDetails
/// with `Retry-After`; a caller with a token has its own count.
async fn anonymous_callers_are_counted_by_their_address(db: TestDb) {
    let app = spawn_app_with(db, |c| {
        c.city_implicit_tenants = true;
        c.city_anonymous_requests_per_minute = 3;
    })
    .await;
    let broker = format!("{}/ngsi-ld/v1", app.url);
    let http = reqwest::Client::new();
    for _ in 0..3 {
        let r = http.get(format!("{broker}/types")).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = http.get(format!("{broker}/types")).send().await.unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    let p: Value = r.json().await.unwrap();
    assert!(
        p["detail"].as_str().unwrap().contains("without a token"),
        "{p}"
    );
    // A machine client's token is counted apart.
    let m = app
        .machine("city-sensors", "city_data_operator", "local_government")
        .await;
    let token = app
        .hub
        .issue_api_token(&Ctx::local_operator(), m.institution, m.id, "sensors", None)
        .await
        .unwrap()
        .secret;
    let r = http
        .get(format!("{broker}/types"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

civic_store::backend_tests!(
    anonymous_callers_are_counted_by_their_address,
    smart_data_models_are_built_in_and_kept,
    temporal_answers_are_cut_and_deletions_recorded,
    scopes_are_replaced_added_or_reported,
    deletions_and_system_attributes_reach_subscribers,
    relationships_join_the_entities_they_link_to,
    compound_contexts_of_subscriptions_get_a_url,
    temporal_aggregations_agree_with_the_instances,
    periodic_subscriptions_send_what_they_select,
    closed_tenants_answer_only_the_callers_the_policy_lets_in,
    sensors_arrive_over_mqtt_and_subscribers_hear_over_http_and_mqtt,
    bad_city_data_gets_ngsi_ld_problems_and_changes_nothing,
    context_sources_are_registered_discovered_and_watched,
    operations_go_to_the_registered_sources_and_their_answers_merge,
);
