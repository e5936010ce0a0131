//! The calendar and its iCalendar feeds: occurrences computed in the
//! window's zone across a daylight-saving change, conflicts shown, the
//! feed parsed by an independent library (Python's icalendar), revoked
//! feeds and other tenants' feeds finding nothing.

use changegate_testkit::TestApp;
use changegate_testkit::msp::{Msp, low_risk, normal_change};
use serde_json::{Value, json};
use std::io::Write;
use std::process::{Command, Stdio};

const A: &str = "/api/v1/tenants/client-a";

/// The Python with icalendar that `make pydeps` prepares (or `CHANGEGATE_PYTHON`).
fn python() -> String {
    if let Ok(p) = std::env::var("CHANGEGATE_PYTHON") {
        return p;
    }
    let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/pyenv/bin/python");
    assert!(
        std::path::Path::new(venv).exists(),
        "no Python with icalendar at {venv}: run `make pydeps` (the test parses the feed with it)"
    );
    venv.to_string()
}

/// The feed as Python's icalendar reads it, times in `zone`.
fn parsed(ics: &str, zone: &str) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/ics_check.py");
    let mut child = Command::new(python())
        .arg(script)
        .arg(zone)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python runs");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(ics.as_bytes())
        .expect("feed written");
    let out = child.wait_with_output().expect("python ends");
    assert!(
        out.status.success(),
        "icalendar could not read the feed: {}\n{ics}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("json")
}

fn events_titled<'a>(feed: &'a Value, prefix: &str) -> Vec<&'a Value> {
    feed["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["summary"].as_str().is_some_and(|s| s.starts_with(prefix)))
        .collect()
}

async fn the_calendar_and_its_feed_hold_across_daylight_saving(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    m.alice
        .put(
            &format!("{A}/windows/payroll"),
            json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
                    "schedule": { "ranges": [ { "start": "2026-12-05T00:00:00Z", "end": "2026-12-06T00:00:00Z" } ] } }),
        )
        .await
        .ok();
    // Two changes on payments-api in the same slot; the second also on a Wednesday, outside the window.
    let raise = async |title: &str, start: &str, end: &str| {
        let mut body = normal_change(title, low_risk());
        body["planned_start"] = json!(start);
        body["planned_end"] = json!(end);
        let n = m
            .eve
            .post(&format!("{A}/changes"), body)
            .await
            .status(201)
            .json["number"]
            .as_str()
            .expect("number")
            .to_string();
        m.eve
            .post(&format!("{A}/changes/{n}/submit"), json!({}))
            .await
            .ok();
        n
    };
    let first = raise(
        "Upgrade payments",
        "2026-11-28T01:00:00Z",
        "2026-11-28T02:00:00Z",
    )
    .await;
    let second = raise(
        "Resize payments",
        "2026-11-28T01:30:00Z",
        "2026-11-28T02:30:00Z",
    )
    .await;
    let weekday = raise(
        "Patch on a weekday",
        "2026-12-02T10:00:00Z",
        "2026-12-02T11:00:00Z",
    )
    .await;

    let entries = m
        .carol
        .get(&format!("{A}/calendar?from=2026-11-23&to=2026-12-07"))
        .await
        .ok();
    let entries = entries.as_array().expect("entries");
    let of = |uid: &str| entries.iter().find(|e| e["uid"] == uid).cloned();
    let windows: Vec<&str> = entries
        .iter()
        .filter(|e| e["kind"] == "window")
        .filter_map(|e| e["start"].as_str())
        .collect();
    assert_eq!(windows, ["2026-11-28T01:00:00Z", "2026-12-05T01:00:00Z"]);
    assert!(entries.iter().any(|e| e["kind"] == "blackout"));
    let second_entry = of(&format!("change/{second}")).expect("the second change");
    assert!(
        second_entry["conflicts"].as_array().is_some_and(|c| c
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.contains(&first)))),
        "{second_entry}"
    );
    let weekday_entry = of(&format!("change/{weekday}")).expect("the weekday change");
    assert!(
        weekday_entry["conflicts"].to_string().contains("weekly"),
        "{weekday_entry}"
    );
    let r = m
        .carol
        .get(&format!("{A}/calendar?from=2026-12-07&to=2026-11-01"))
        .await
        .status(422);
    assert_eq!(r.field(), "to");
    m.bob.get(&format!("{A}/calendar")).await.status(404);

    // Carol's feed, read by a calendar client with no other credential.
    let made = m
        .carol
        .post(
            &format!("{A}/calendar-feeds"),
            json!({ "name": "my calendar" }),
        )
        .await
        .status(201)
        .json;
    let url = made["url"].as_str().expect("url").to_string();
    let path = url.trim_start_matches("http://127.0.0.1:8080");
    let ics = app.anonymous().get(path).await.status(200);
    assert!(
        ics.headers["content-type"]
            .to_str()
            .expect("as set up")
            .starts_with("text/calendar")
    );
    let berlin = parsed(&ics.text, "Europe/Berlin");
    // The weekly window at 02:00 Berlin time every Saturday, whether CET
    // or CEST: across the change to summer time on 2027-03-28.
    let weekly = events_titled(&berlin, "Window weekly");
    assert!(weekly.len() >= 52, "a year of Saturdays: {}", weekly.len());
    for w in &weekly {
        let start = w["start"].as_str().expect("start");
        assert!(
            start.ends_with("02:00 CET") || start.ends_with("02:00 CEST"),
            "{start}"
        );
    }
    let utc = parsed(&ics.text, "UTC");
    let utc_start = |day: &str| {
        events_titled(&utc, "Window weekly")
            .iter()
            .find(|e| e["start"].as_str().is_some_and(|s| s.starts_with(day)))
            .map(|e| e["start"].as_str().expect("start").to_string())
    };
    assert_eq!(
        utc_start("2027-03-27").as_deref(),
        Some("2027-03-27 01:00 UTC")
    );
    assert_eq!(
        utc_start("2027-04-03").as_deref(),
        Some("2027-04-03 00:00 UTC")
    );
    let change = events_titled(&berlin, &second);
    assert_eq!(change.len(), 1);
    assert!(
        change[0]["description"]
            .as_str()
            .expect("as set up")
            .contains("Conflict:")
    );
    assert!(
        change[0]["url"]
            .as_str()
            .expect("as set up")
            .ends_with(&format!("/t/client-a/changes/{second}"))
    );
    assert!(!ics.text.contains("client-b"));

    // Eve's feed: carol may not revoke it, the tenant admin may; carol
    // revokes her own; revoked feeds find nothing.
    let eves = m
        .eve
        .post(&format!("{A}/calendar-feeds"), json!({ "name": "eve" }))
        .await
        .status(201)
        .json;
    let eve_path = eves["url"]
        .as_str()
        .expect("url")
        .trim_start_matches("http://127.0.0.1:8080")
        .to_string();
    let listed = m.audrey.get(&format!("{A}/calendar-feeds")).await.ok();
    assert_eq!(listed.as_array().map(Vec::len), Some(2));
    assert!(listed[0]["url"].is_null(), "tokens are shown once");
    m.carol
        .delete(&format!("{A}/calendar-feeds/{}", eves["id"]))
        .await
        .status(403);
    m.alice
        .delete(&format!("{A}/calendar-feeds/{}", eves["id"]))
        .await
        .status(204);
    app.anonymous().get(&eve_path).await.status(404);
    m.carol
        .delete(&format!("{A}/calendar-feeds/{}", made["id"]))
        .await
        .status(204);
    app.anonymous().get(path).await.status(404);
    app.anonymous()
        .get("/feeds/not-a-token.ics")
        .await
        .status(404);
    m.bob
        .delete(&format!("{A}/calendar-feeds/{}", made["id"]))
        .await
        .status(404);
}

async fn the_calendar_pages_show_month_week_and_agenda_with_conflicts(app: TestApp) {
    let m = Msp::setup(&app).await;
    m.cm.put(
        &format!("{A}/windows/weekly"),
        json!({ "timeZone": "Europe/Berlin", "schedule": { "cron": { "expr": "0 2 * * SAT", "duration": "4h" } } }),
    )
    .await
    .ok();
    let mut body = normal_change("Patch on a weekday", low_risk());
    body["planned_start"] = json!("2026-12-02T10:00:00Z");
    let n = m
        .eve
        .post(&format!("{A}/changes"), body)
        .await
        .status(201)
        .json["number"]
        .as_str()
        .expect("number")
        .to_string();
    m.eve
        .post(&format!("{A}/changes/{n}/submit"), json!({}))
        .await
        .ok();
    m.eve
        .post(
            "/api/v1/tenants/client-b/changes",
            normal_change("Zebra move", low_risk()),
        )
        .await
        .status(201);
    // The year-end freeze: a blackout over several weeks.
    m.cm.put(
        &format!("{A}/windows/year-end-freeze"),
        json!({ "kind": "blackout", "timeZone": "Europe/Berlin",
                "schedule": { "ranges": [ { "start": "2026-12-17T23:00:00Z", "end": "2027-01-03T23:00:00Z" } ] } }),
    )
    .await
    .ok();
    let carol = crate::portal::sign_in(&app, "carol@client-a.example").await;
    // Drawn across every day it covers, shaded, not once on its first day.
    let december = carol
        .get("/t/client-a/calendar?view=month&date=2026-12-10")
        .await
        .status(200)
        .text;
    let cells: Vec<&str> = december.split("<td").skip(1).collect();
    let frozen = |label: &str| {
        cells
            .iter()
            .find(|c| c.contains(&format!("<div class=\"day\">{label}</div>")))
            .unwrap_or_else(|| panic!("no day {label} in {december}"))
            .contains("year-end-freeze")
    };
    assert!(
        !frozen("Thu 17"),
        "the freeze begins on the 18th, Berlin time"
    );
    for d in ["Fri 18", "Thu 24", "Thu 31"] {
        assert!(frozen(d), "{d} is in the freeze: {december}");
    }
    assert!(
        december.contains("kind blackout spans\">from 00:00 CET")
            && december.contains("kind blackout spans\">all day CET"),
        "{december}"
    );
    let january = carol
        .get("/t/client-a/calendar?view=agenda&date=2027-01-01")
        .await
        .status(200)
        .text;
    assert!(
        january.contains("until 24:00 CET"),
        "it ends with the 3rd: {january}"
    );
    let month = carol.get("/t/client-a/calendar").await.status(200).text;
    assert!(month.contains("November 2026"), "{month}");
    // Saturday's window at 02:00 Berlin time, in the tenant's zone.
    assert!(month.contains("02:00–06:00 CET"), "{month}");
    assert!(month.contains(&n) && month.contains("⚠"), "{month}");
    let week = carol
        .get("/t/client-a/calendar?view=week&date=2026-12-02&tz=UTC")
        .await
        .status(200)
        .text;
    assert!(
        week.contains("Week of Mon 2026-11-30") && week.contains("10:00–11:00 UTC"),
        "{week}"
    );
    let agenda = carol
        .get("/t/client-a/calendar?view=agenda")
        .await
        .status(200)
        .text;
    assert!(agenda.contains("Saturday 2026-11-28"), "{agenda}");
    carol
        .get("/t/client-a/calendar?view=year")
        .await
        .status(422);
    carol
        .get("/t/client-a/calendar?tz=Mars/Olympus")
        .await
        .status(422);
    carol.get("/t/client-b/calendar").await.status(404);
    let all = carol.get("/calendar").await.status(200).text;
    assert!(
        all.contains("[client-a]") && !all.contains("client-b"),
        "{all}"
    );
    // A feed made from the page shows its address once.
    let token = crate::portal::csrf(&month);
    let made = carol
        .form(
            "/t/client-a/calendar/feeds",
            &[("csrf", &token), ("name", "desk")],
        )
        .await
        .status(200)
        .text;
    assert!(made.contains("/feeds/cg_"), "{made}");
}

crate::on_both!(
    the_calendar_and_its_feed_hold_across_daylight_saving,
    the_calendar_pages_show_month_week_and_agenda_with_conflicts,
);
