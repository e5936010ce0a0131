//! The portal phase of `server_load`: [`CLIENTS`] people signed in (each
//! the requester of one tenant, through `POST /api/v1/session`) load the
//! change list page (`/t/{tenant}/changes`, its newest 50 changes) and a
//! random change's page for the read duration, as a browser does with its
//! session cookie. Prints the server time p50/p99 of each (target p99 <=
//! 50 ms) and the weight of each page and of its stylesheet; between
//! them, in turn, the other pages a requester opens (the inbox, the change
//! form, when away, proposals, releases and a new release), with the same
//! figures for each.

use changegate_core::{ChangeNumber, Email};
use changegate_store::Store;
use reqwest::header::{COOKIE, SET_COOKIE};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{CLIENTS, Fixture, Rng, TENANTS, ms, percentile, print_errors};

const PASSWORD: &str = "a long benchmark password";

/// The requester of tenant `i`, as `setup_tenant` made them.
fn requester(i: usize) -> String {
    format!("requester-{i:03}@msp.example")
}

pub async fn run(
    name: &str,
    store: &Arc<dyn Store>,
    base: &str,
    tenants: &Arc<Vec<Fixture>>,
    seconds: Duration,
) {
    // One argon2 hash for every signer: hashing is not what is measured.
    let hash = changegate_web::auth::hash_password(PASSWORD).expect("a password hash");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("an HTTP client");
    let mut signed_in = Vec::new();
    for n in 0..CLIENTS {
        let i = n * (TENANTS / CLIENTS);
        let email = requester(i);
        let user = store
            .user_by_email(&Email::parse(&email).expect("an e-mail"))
            .await
            .expect("the requester");
        store
            .set_password(user.id, &hash)
            .await
            .expect("password set");
        let r = client
            .post(format!("{base}/api/v1/session"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await
            .expect("signed in");
        assert!(
            r.status().is_success(),
            "sign-in of {email}: {}",
            r.status()
        );
        let cookie = r
            .headers()
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("changegate_session="))
            .and_then(|v| v.split(';').next())
            .expect("a session cookie")
            .to_string();
        signed_in.push((i, cookie));
    }

    let started = Instant::now();
    let deadline = started + seconds;
    let mut readers = Vec::new();
    for (n, (i, cookie)) in signed_in.into_iter().enumerate() {
        let (client, base, tenants) = (client.clone(), base.to_string(), tenants.clone());
        readers.push(tokio::spawn(async move {
            let t = &tenants[i];
            let mut rng = Rng::new(n as u64 + 101);
            let (mut list, mut page, mut errors) = (Vec::new(), Vec::new(), Vec::new());
            let (mut list_bytes, mut page_bytes) = (0, 0);
            let mut others: Vec<(String, Vec<Duration>, usize)> = OTHER_PAGES
                .iter()
                .map(|p| (p.replace("{tenant}", t.slug.as_str()), Vec::new(), 0))
                .collect();
            let mut turn = 0;
            while Instant::now() < deadline {
                let (path, times, weight) = &mut others[turn % OTHER_PAGES.len()];
                turn += 1;
                let at = Instant::now();
                match get(&client, &format!("{base}{path}"), &cookie).await {
                    Ok(bytes) => {
                        times.push(at.elapsed());
                        *weight = (*weight).max(bytes);
                    }
                    Err(e) => errors.push(format!("{path}: {e}")),
                }
                let at = Instant::now();
                match get(&client, &format!("{base}/t/{}/changes", t.slug), &cookie).await {
                    Ok(bytes) => {
                        list.push(at.elapsed());
                        list_bytes = bytes;
                    }
                    Err(e) => errors.push(format!("list {}: {e}", t.slug)),
                }
                let number = ChangeNumber(t.numbers[rng.below(t.numbers.len())]);
                let at = Instant::now();
                match get(
                    &client,
                    &format!("{base}/t/{}/changes/{number}", t.slug),
                    &cookie,
                )
                .await
                {
                    Ok(bytes) => {
                        page.push(at.elapsed());
                        page_bytes = page_bytes.max(bytes);
                    }
                    Err(e) => errors.push(format!("page {} {number}: {e}", t.slug)),
                }
            }
            (list, page, errors, list_bytes, page_bytes, others)
        }));
    }
    let (mut list, mut page, mut errors) = (Vec::new(), Vec::new(), Vec::new());
    let (mut list_bytes, mut page_bytes) = (0, 0);
    let mut other_times: Vec<(Vec<Duration>, usize)> =
        OTHER_PAGES.iter().map(|_| (Vec::new(), 0)).collect();
    for r in readers {
        let (l, p, e, lb, pb, o) = r.await.expect("a portal reader finished");
        for (i, (_, times, weight)) in o.into_iter().enumerate() {
            other_times[i].0.extend(times);
            other_times[i].1 = other_times[i].1.max(weight);
        }
        list.extend(l);
        page.extend(p);
        errors.extend(e);
        list_bytes = list_bytes.max(lb);
        page_bytes = page_bytes.max(pb);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let css = client
        .get(format!("{base}/static/app.css"))
        .send()
        .await
        .expect("the stylesheet")
        .bytes()
        .await
        .expect("its body")
        .len();
    println!(
        "server_load {name}: portal {CLIENTS} signed-in clients {elapsed:.0} s: change list page (50 newest) \
         {:.0} req/s, p50 {}, p99 {}; change page {:.0} req/s, p50 {}, p99 {} (target p99 <= 50 ms); \
         {} errors; weights: list {:.1} KB, change page {:.1} KB of HTML, stylesheet {:.1} KB, script 0 KB",
        list.len() as f64 / elapsed,
        ms(percentile(&mut list.clone(), 0.50)),
        ms(percentile(&mut list, 0.99)),
        page.len() as f64 / elapsed,
        ms(percentile(&mut page.clone(), 0.50)),
        ms(percentile(&mut page, 0.99)),
        errors.len(),
        list_bytes as f64 / 1024.0,
        page_bytes as f64 / 1024.0,
        css as f64 / 1024.0,
    );
    let others: Vec<String> = OTHER_PAGES
        .iter()
        .zip(other_times.iter_mut())
        .map(|(path, (times, weight))| {
            format!(
                "{path} p50 {}, p99 {}, {:.1} KB",
                ms(percentile(&mut times.clone(), 0.50)),
                ms(percentile(times, 0.99)),
                *weight as f64 / 1024.0
            )
        })
        .collect();
    println!(
        "server_load {name}: portal other pages (server time, HTML weight): {}",
        others.join("; ")
    );
    print_errors(name, &errors);
}

/// The other pages a requester opens, in turn with the list and a change.
const OTHER_PAGES: [&str; 6] = [
    "/inbox",
    "/t/{tenant}/changes/new",
    "/t/{tenant}/delegations",
    "/t/{tenant}/proposals",
    "/releases",
    "/releases/new",
];

/// A page with the session cookie: its size, or what went wrong.
async fn get(client: &reqwest::Client, url: &str, cookie: &str) -> Result<usize, String> {
    let r = client
        .get(url)
        .header(COOKIE, cookie)
        .send()
        .await
        .map_err(|e| format!("request failed: {e}"))?;
    let status = r.status();
    let body = r.bytes().await.map_err(|e| format!("body unread: {e}"))?;
    if status != reqwest::StatusCode::OK {
        return Err(format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ));
    }
    Ok(body.len())
}
