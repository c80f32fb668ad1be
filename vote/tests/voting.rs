//! The page, the voter cookie and the ballots queued on a real Redis.

mod support;

use support::{queued, queued_ballots, Page, Vote, FORM};
use test_servers::Redis;

async fn started() -> (String, Vote) {
    let url = Redis::shared().fresh_db_url();
    let vote = Vote::start(&url, &[]).await;
    (url, vote)
}

async fn page(vote: &Vote, cookie: Option<&str>) -> Page {
    Page::read(vote.get("/", cookie).await).await
}

#[tokio::test]
async fn page_shows_the_options_the_tip_and_the_host() {
    let (_, vote) = started().await;
    let page = page(&vote, None).await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    assert!(html.contains("<title>Cats vs Dogs!</title>"), "{html}");
    assert!(html.contains(r#"name="vote" value="a""#), "{html}");
    assert!(html.contains(r#"name="vote" value="b""#), "{html}");
    assert!(html.contains(">Cats<") && html.contains(">Dogs<"), "{html}");
    assert!(html.contains("you can change your vote"), "{html}");
    assert!(html.contains("Processed by container ID"), "{html}");
    assert!(!html.contains("Your vote"), "nothing chosen yet: {html}");
    // A link to the results (RESULT_PAGE_URL's default), and nothing else
    // from elsewhere: everything the page loads comes from the service itself.
    let link = r#"<a href="http://localhost:5001">See the results"#;
    assert!(html.contains(link), "{html}");
    let others = html.replace(link, "");
    assert!(
        !others.contains("http://") && !others.contains("https://"),
        "{html}"
    );
}

#[tokio::test]
async fn assets_are_served_by_the_service() {
    let (_, vote) = started().await;
    for (path, kind) in [
        ("/static/vote.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let response = vote.get(path, None).await;
        assert_eq!(response.status(), 200, "{path}");
        let header = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(header.starts_with(kind), "{path}: {header}");
    }
}

#[tokio::test]
async fn labels_and_extra_options_come_from_settings() {
    let url = Redis::shared().fresh_db_url();
    let args = [
        "--option-a",
        "Tea",
        "--option-b",
        "Coffee",
        "--option-c",
        "Water",
    ];
    let vote = Vote::start(&url, &args).await;
    let html = page(&vote, None).await.body;
    assert!(html.contains("<h1>Tea vs Coffee vs Water!</h1>"), "{html}");
    assert!(html.contains(r#"value="c""#), "{html}");
    assert_eq!(vote.vote("c", None).await.status, 200);
}

#[tokio::test]
async fn first_visit_gets_a_long_lived_private_voter_cookie() {
    let (_, vote) = started().await;
    let first = page(&vote, None).await;
    let line = first.set_cookie("voter_id").expect("voter_id cookie");
    let id = first.cookie_value("voter_id").unwrap();
    assert_eq!(id.len(), 32, "{line}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{line}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(line.contains(attribute), "{attribute} missing: {line}");
    }
    let max_age: u64 = line
        .split("; ")
        .find_map(|a| a.strip_prefix("Max-Age="))
        .expect("Max-Age")
        .parse()
        .unwrap();
    assert!(max_age >= 180 * 24 * 3600, "{line}");

    // A returning voter keeps their id: no new cookie.
    let again = page(&vote, Some(&format!("voter_id={id}"))).await;
    assert_eq!(again.set_cookie("voter_id"), None);

    // Another visitor gets another id.
    let other = page(&vote, None).await.cookie_value("voter_id").unwrap();
    assert_ne!(other, id);
}

#[tokio::test]
async fn malformed_voter_cookie_is_replaced() {
    let (url, vote) = started().await;
    let forged = "voter_id=../../etc; vote=a";
    let page = vote.vote("b", Some(forged)).await;
    assert_eq!(page.status, 200);
    let id = page.cookie_value("voter_id").expect("a new voter_id");
    assert_ne!(id, "../../etc");
    assert_eq!(queued_ballots(&url).await[0].voter_id, id);
}

#[tokio::test]
async fn voter_ids_from_the_reference_app_and_other_clients_are_kept() {
    let (url, vote) = started().await;
    let kept = [
        "42ea16b298bc356", // the reference vote app's: 14-16 hex digits
        "7",
        "Voter_id-with_UPPER-and-lower-0123456789",
        &"x".repeat(64),
    ];
    for id in kept {
        let page = vote.vote("a", Some(&format!("voter_id={id}"))).await;
        assert_eq!(page.status, 200, "{id}: {}", page.body);
        assert_eq!(page.set_cookie("voter_id"), None, "{id} was replaced");
    }
    let queued_ids: Vec<String> = queued_ballots(&url)
        .await
        .into_iter()
        .map(|ballot| ballot.voter_id)
        .collect();
    assert_eq!(queued_ids, kept);

    for bad in ["", &"x".repeat(65), "has.dot", "has%20space", "tr%C3%A9ma"] {
        let page = vote.vote("a", Some(&format!("voter_id={bad}"))).await;
        assert_eq!(page.status, 200, "{bad:?}: {}", page.body);
        let new = page.cookie_value("voter_id");
        assert!(
            new.as_ref().is_some_and(|id| id.len() == 32),
            "{bad:?}: {new:?}"
        );
    }
}

#[tokio::test]
async fn a_vote_is_queued_as_json_and_marked_on_the_page() {
    let (url, vote) = started().await;
    let id = page(&vote, None).await.cookie_value("voter_id").unwrap();
    let cookie = format!("voter_id={id}");

    let voted = vote.vote("b", Some(&cookie)).await;
    assert_eq!(voted.status, 200);
    voted.assert_marks("Dogs");
    assert!(
        voted.body.contains(r#"aria-pressed="true""#),
        "{}",
        voted.body
    );
    assert_eq!(voted.cookie_value("vote").as_deref(), Some("b"));

    let entries = queued(&url).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let json: serde_json::Value = serde_json::from_str(&entries[0]).unwrap();
    assert_eq!(json["voter_id"], id.as_str());
    assert_eq!(json["vote"], "b");
    let cast_at = json["cast_at"].as_i64().expect("cast_at");
    assert!(
        (ballot::now_micros() - cast_at).abs() < 60_000_000,
        "{json}"
    );

    // Their choice stays marked on later visits, from the cookie.
    let later = page(&vote, Some(&format!("{cookie}; vote=b"))).await;
    later.assert_marks("Dogs");
}

#[tokio::test]
async fn voting_again_queues_a_newer_ballot_from_the_same_voter() {
    let (url, vote) = started().await;
    let cookie = "voter_id=0123456789abcdef0123456789abcdef";
    assert_eq!(vote.vote("a", Some(cookie)).await.status, 200);
    let changed = vote.vote("b", Some(cookie)).await;
    assert_eq!(changed.status, 200);
    changed.assert_marks("Dogs");

    let ballots = queued_ballots(&url).await;
    assert_eq!(ballots.len(), 2);
    assert!(ballots
        .iter()
        .all(|b| b.voter_id == "0123456789abcdef0123456789abcdef"));
    assert_eq!(
        (ballots[0].vote.as_str(), ballots[1].vote.as_str()),
        ("a", "b")
    );
    assert!(ballots[0].cast_at < ballots[1].cast_at);
}

#[tokio::test]
async fn ballots_are_stamped_by_the_queue_clock_which_never_runs_backwards() {
    let (url, vote) = started().await;
    let mut redis = test_servers::redis_connection(&url).await;
    // As if another replica had stamped a ballot an hour from now.
    let ahead = ballot::now_micros() + 3_600_000_000;
    let () = redis::cmd("SET")
        .arg(ballot::queue::CLOCK)
        .arg(ahead)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(vote.vote("a", None).await.status, 200);
    assert_eq!(vote.vote("b", None).await.status, 200);

    let stamps: Vec<i64> = queued_ballots(&url)
        .await
        .iter()
        .map(|ballot| ballot.cast_at.unwrap())
        .collect();
    assert_eq!(stamps, [ahead + 1, ahead + 2]);
    let clock: i64 = redis::cmd("GET")
        .arg(ballot::queue::CLOCK)
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(clock, ahead + 2);
}

#[tokio::test]
async fn percent_encoded_and_extra_fields_are_understood() {
    let (url, vote) = started().await;
    let page = vote.post(FORM, b"submit=go&vote=%61", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let with_charset = format!("{FORM}; charset=UTF-8");
    let page = vote.post(&with_charset, b"vote=b", None).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(queued(&url).await.len(), 2);
}

/// A `multipart/form-data` body as `curl -F name=value ...` sends it.
fn multipart(fields: &[(&str, &str)]) -> (String, Vec<u8>) {
    let boundary = "------------------------d74496d66958873e";
    let mut body = String::new();
    for (name, value) in fields {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    (
        format!("multipart/form-data; boundary={boundary}"),
        body.into_bytes(),
    )
}

#[tokio::test]
async fn a_multipart_form_is_a_vote_like_the_urlencoded_one() {
    let (url, vote) = started().await;
    let (content_type, body) = multipart(&[("vote", "b")]);
    let page = vote
        .post(&content_type, &body, Some("voter_id=42ea16b298bc356"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_marks("Dogs");
    assert_eq!(page.cookie_value("vote").as_deref(), Some("b"));
    let (content_type, body) = multipart(&[("submit", "go"), ("vote", "a")]);
    assert_eq!(vote.post(&content_type, &body, None).await.status, 200);

    let too_big = "x".repeat(1100);
    type Fields<'a> = &'a [(&'a str, &'a str)];
    let cases: [(&str, Fields, u16, &str); 5] = [
        (
            "two choices",
            &[("vote", "a"), ("vote", "b")],
            400,
            "exactly one `vote` field",
        ),
        (
            "no vote field",
            &[("choice", "a")],
            400,
            "exactly one `vote` field",
        ),
        ("no fields", &[], 400, "exactly one `vote` field"),
        ("unknown option", &[("vote", "z")], 400, "no option"),
        (
            "over 1 KiB",
            &[("vote", "a"), ("padding", &too_big)],
            413,
            "too large",
        ),
    ];
    for (case, fields, status, message) in cases {
        let (content_type, body) = multipart(fields);
        let page = vote.post(&content_type, &body, None).await;
        assert_eq!(page.status, status, "{case}: {}", page.body);
        assert!(page.body.contains(message), "{case}: {}", page.body);
    }
    let no_boundary = vote.post("multipart/form-data", b"vote=a", None).await;
    assert_eq!(no_boundary.status, 400, "{}", no_boundary.body);
    let (content_type, _) = multipart(&[]);
    let garbled = vote.post(&content_type, b"vote=a", None).await;
    assert_eq!(garbled.status, 400, "{}", garbled.body);

    let ballots = queued_ballots(&url).await;
    assert_eq!(ballots.len(), 2, "only the two valid votes are queued");
    assert_eq!(ballots[0].voter_id, "42ea16b298bc356");
    assert_eq!(
        (ballots[0].vote.as_str(), ballots[1].vote.as_str()),
        ("b", "a")
    );
}

#[tokio::test]
async fn unknown_paths_get_a_short_404_page() {
    let (_, vote) = started().await;
    for path in ["/wp-admin", "/.env", "/static/other.css", "/healthz/x"] {
        let response = vote.get(path, None).await;
        assert_eq!(response.status(), 404, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("Not found"), "{path}: {html}");
        assert!(html.contains(r#"href="/""#), "{path}: {html}");
        assert!(html.len() < 1024, "{path}: {html}");
    }
    let response = vote
        .http
        .delete(format!("{}/x", vote.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn bad_input_is_refused_readably_and_nothing_is_queued() {
    let (url, vote) = started().await;
    let too_big = format!("vote=a&padding={}", "x".repeat(1100));
    let cases: [(&str, &str, &[u8], u16, &str); 10] = [
        ("unknown option", FORM, b"vote=z", 400, "no option"),
        (
            "missing field",
            FORM,
            b"choice=a",
            400,
            "exactly one `vote` field",
        ),
        (
            "two choices",
            FORM,
            b"vote=a&vote=b",
            400,
            "exactly one `vote` field",
        ),
        ("empty body", FORM, b"", 400, "form was empty"),
        (
            "JSON",
            "application/json",
            br#"{"vote":"a"}"#,
            415,
            "Send the vote as a form",
        ),
        (
            "plain text",
            "text/plain",
            b"vote=a",
            415,
            "Send the vote as a form",
        ),
        (
            "no content type",
            "",
            b"vote=a",
            415,
            "Send the vote as a form",
        ),
        ("over 1 KiB", FORM, too_big.as_bytes(), 413, "too large"),
        (
            "not UTF-8",
            FORM,
            b"vote=\xff",
            400,
            "could not be read as text",
        ),
        ("undecodable", FORM, b"vote=%ff", 400, "no option"),
    ];
    for (case, content_type, body, status, message) in cases {
        let page = vote.post(content_type, body, None).await;
        assert_eq!(page.status, status, "{case}: {}", page.body);
        assert!(page.body.contains(message), "{case}: {}", page.body);
        assert_eq!(page.cookie_value("vote"), None, "{case}");
    }
    let exactly_1_kib = format!("vote=a&padding={}", "x".repeat(1024 - 15));
    assert_eq!(exactly_1_kib.len(), 1024);
    assert_eq!(
        vote.post(FORM, exactly_1_kib.as_bytes(), None).await.status,
        200
    );
    assert_eq!(queued(&url).await.len(), 1, "only the valid vote is queued");
}

#[tokio::test]
async fn a_refused_vote_keeps_the_earlier_choice_marked() {
    let (_, vote) = started().await;
    let page = vote.vote("z", Some("vote=a")).await;
    assert_eq!(page.status, 400);
    page.assert_marks("Cats");
}

#[tokio::test]
async fn health_and_readiness() {
    let (_, vote) = started().await;
    assert_eq!(vote.get("/healthz", None).await.status(), 200);
    assert_eq!(vote.get("/readyz", None).await.status(), 200);
}

/// The headers Rocket's default Shield sent are still on every answer.
#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let (_, vote) = started().await;
    let answers = [
        vote.get("/", None).await,
        vote.get("/static/vote.css", None).await,
        vote.get("/nowhere", None).await,
        vote.get("/healthz", None).await,
    ];
    let voted = vote.vote("a", None).await;
    let refused = vote.vote("z", None).await;
    let mut headers: Vec<_> = answers.iter().map(|a| a.headers().clone()).collect();
    headers.extend([voted.headers, refused.headers]);
    for headers in headers {
        for (name, value) in [
            ("x-frame-options", "SAMEORIGIN"),
            ("x-content-type-options", "nosniff"),
            ("permissions-policy", "interest-cohort=()"),
        ] {
            assert_eq!(
                headers.get_all(name).iter().count(),
                1,
                "{name}: {headers:?}"
            );
            assert_eq!(headers[name], value, "{headers:?}");
        }
    }
}

/// A new voter gets their id with any answer to a vote, but only a queued
/// vote sets the choice; a known voter gets no new id.
#[tokio::test]
async fn cookies_are_set_once_each_and_only_when_due() {
    let (_, vote) = started().await;
    let voted = vote.vote("b", None).await;
    assert_eq!(voted.headers.get_all("set-cookie").iter().count(), 2);
    assert!(voted.cookie_value("voter_id").is_some());
    assert_eq!(voted.cookie_value("vote").as_deref(), Some("b"));
    assert_eq!(voted.headers["content-type"], "text/html; charset=utf-8");

    let refused = vote.vote("z", None).await;
    assert_eq!(refused.status, 400);
    assert_eq!(refused.headers.get_all("set-cookie").iter().count(), 1);
    assert!(refused.cookie_value("voter_id").is_some());

    let known = "voter_id=42ea16b298bc356; vote=b";
    let again = vote.vote("a", Some(known)).await;
    assert_eq!(again.status, 200);
    again.assert_marks("Cats");
    assert_eq!(again.headers.get_all("set-cookie").iter().count(), 1);
    assert_eq!(again.cookie_value("vote").as_deref(), Some("a"));
    let page = page(&vote, Some(known)).await;
    assert!(
        page.headers.get("set-cookie").is_none(),
        "{:?}",
        page.headers
    );
    page.assert_marks("Dogs");
}
