//! `TestApp`: the real router over a fresh database, with a pinned clock,
//! actors that send requests in-process with their own API token, and
//! helpers that set up tenants, people and policy through the store.

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use changegate_core::{Email, Role, Slug, UserKind};
use changegate_store::{NewTenant, NewUser, Store, Tenant, TokenScope};
use changegate_web::{AppState, auth};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;
use std::any::Any;
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

pub struct TestApp {
    pub store: Arc<dyn Store>,
    /// What the handlers share: its `writes` counter, its snapshots.
    pub state: AppState,
    router: Router,
    clock: Arc<Mutex<DateTime<Utc>>>,
    _guard: Box<dyn Any + Send + Sync>,
}

/// A response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: StatusCode,
    pub json: Value,
    pub text: String,
    /// The body as sent (an archive, say).
    pub bytes: Vec<u8>,
    pub headers: axum::http::HeaderMap,
}

impl Resp {
    /// The stable error code of an error response.
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    pub fn field(&self) -> &str {
        self.json["error"]["field"].as_str().unwrap_or("")
    }

    #[track_caller]
    pub fn ok(self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.text
        );
        self.json
    }

    #[track_caller]
    pub fn status(self, expected: u16) -> Self {
        assert_eq!(self.status.as_u16(), expected, "body: {}", self.text);
        self
    }
}

/// Someone calling the API with their own token.
#[derive(Clone)]
pub struct Actor {
    pub email: String,
    pub token: Option<String>,
    /// A `Cookie` header to send (a signed-in browser).
    pub cookie: Option<String>,
    router: Router,
}

impl Actor {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Resp {
        self.send(method, path, body, &[]).await
    }

    /// A browser form post (`application/x-www-form-urlencoded`).
    pub async fn form(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let encoded: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", form_encode(k), form_encode(v)))
            .collect();
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("content-type", "application/x-www-form-urlencoded");
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let req = req
            .body(Body::from(encoded.join("&")))
            .expect("request builds");
        self.answer(req).await
    }

    /// A request with extra headers, e.g. `If-None-Match`.
    pub async fn call_with(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let method = method.parse().expect("an HTTP method");
        self.send(method, path, None, headers).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let req = match body {
            Some(b) => req
                .header("content-type", "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        let req = req.expect("request builds");
        self.answer(req).await
    }

    /// GET `path`, writing the body to `out` as it arrives: a large
    /// download (an evidence bundle) is measured without the client
    /// holding it. Returns the status.
    pub async fn download(&self, path: &str, out: &mut impl std::io::Write) -> StatusCode {
        use axum::body::HttpBody;
        let mut req = Request::builder().method(Method::GET).uri(path);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let req = req.body(Body::empty()).expect("request builds");
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = res.status();
        let mut body = res.into_body();
        while let Some(frame) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.expect("body reads").into_data() {
                out.write_all(&data).expect("body written");
            }
        }
        status
    }

    async fn answer(&self, req: Request<Body>) -> Resp {
        let res = self
            .router
            .clone()
            .oneshot(req)
            .await
            .expect("router answers");
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 512 << 20)
            .await
            .expect("body reads");
        // An archive is kept once, as bytes; text and JSON are for the rest.
        let binary = headers
            .get("content-type")
            .is_some_and(|t| t.as_bytes().starts_with(b"application/gzip"));
        let (text, json) = if binary {
            (String::new(), Value::Null)
        } else {
            (
                String::from_utf8_lossy(&bytes).to_string(),
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            )
        };
        Resp {
            status,
            json,
            text,
            bytes: Vec::from(bytes),
            headers,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.call(Method::PATCH, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.call(Method::DELETE, path, None).await
    }
}

/// `application/x-www-form-urlencoded` encoding of one key or value.
fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                (b as char).to_string()
            }
            b' ' => "+".to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// 2026-11-25 10:00 UTC, a Wednesday: where every test's clock starts.
pub fn start_of_tests() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 10, 0, 0)
        .single()
        .expect("valid time")
}

impl TestApp {
    /// The app over `store`; `guard` keeps the database alive (temp dir, PostgreSQL database).
    pub fn new(store: Arc<dyn Store>, guard: Box<dyn Any + Send + Sync>) -> Self {
        let clock = Arc::new(Mutex::new(start_of_tests()));
        let reader = clock.clone();
        let state = AppState::new(
            store.clone(),
            Arc::new(move || *reader.lock().unwrap_or_else(|p| p.into_inner())),
        );
        TestApp {
            store,
            router: changegate_web::router(state.clone()),
            state,
            clock,
            _guard: guard,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The database under the app, for tests that read or tamper with it
    /// behind the store (`None` for an app over a store given whole).
    pub fn db(&self) -> Option<&crate::db::TestDb> {
        self._guard.downcast_ref::<crate::db::TestDb>()
    }

    pub fn set_now(&self, t: DateTime<Utc>) {
        *self.clock.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }

    pub fn anonymous(&self) -> Actor {
        Actor {
            email: String::new(),
            token: None,
            cookie: None,
            router: self.router.clone(),
        }
    }

    async fn actor_for(&self, user: changegate_store::User) -> Actor {
        let (token, hash) = auth::new_token();
        self.store
            .create_token(user.id, "test", &hash, &TokenScope::Full, self.now())
            .await
            .expect("token stored");
        Actor {
            email: user.email.to_string(),
            token: Some(token),
            cookie: None,
            router: self.router.clone(),
        }
    }

    /// An installation admin.
    pub async fn admin(&self) -> Actor {
        let user = self
            .store
            .create_user(
                NewUser {
                    email: Email::parse("admin@msp.example").expect("valid"),
                    name: "Ada Admin".into(),
                    kind: UserKind::Msp,
                    admin: true,
                    tenant: None,
                    password_hash: None,
                },
                &[],
                "test",
                self.now(),
            )
            .await
            .expect("admin created");
        self.actor_for(user).await
    }

    pub async fn tenant(&self, slug: &str) -> Tenant {
        self.store
            .create_tenant(
                NewTenant {
                    slug: Slug::parse(slug).expect("valid slug"),
                    name: format!("{slug} Ltd"),
                    time_zone: "Europe/Berlin".into(),
                },
                "test",
                self.now(),
            )
            .await
            .expect("tenant created")
    }

    /// A person with `roles` in tenants (by slug). A client user belongs to
    /// the first tenant named; MSP staff to none.
    pub async fn person(&self, email: &str, kind: UserKind, roles: &[(&str, Role)]) -> Actor {
        let mut home = None;
        if kind == UserKind::Client {
            let slug = roles
                .first()
                .map(|r| r.0)
                .expect("a client user needs a tenant");
            home = Some(
                self.store
                    .tenant_by_slug(slug)
                    .await
                    .expect("tenant exists")
                    .id,
            );
        }
        let mut grants = Vec::new();
        for (slug, role) in roles {
            let t = self
                .store
                .tenant_by_slug(slug)
                .await
                .expect("tenant exists");
            grants.push((t.id, *role));
        }
        let user = self
            .store
            .create_user(
                NewUser {
                    email: Email::parse(email).expect("valid email"),
                    name: email.split('@').next().unwrap_or(email).to_string(),
                    kind,
                    admin: false,
                    tenant: home,
                    password_hash: None,
                },
                &grants,
                "test",
                self.now(),
            )
            .await
            .expect("user created");
        self.actor_for(user).await
    }

    /// Give an existing user one more role in a tenant.
    pub async fn bind(&self, email: &str, tenant: &str, role: Role) {
        let user = self
            .store
            .user_by_email(&Email::parse(email).expect("valid email"))
            .await
            .expect("user exists");
        let t = self.store.tenant_by_slug(tenant).await.expect("tenant");
        self.store
            .bind_role(user.id, t.id, role, "test", self.now())
            .await
            .expect("bound");
    }

    /// Give a user a password (for signing in).
    pub async fn set_password(&self, email: &str, password: &str) {
        let user = self
            .store
            .user_by_email(&Email::parse(email).expect("valid email"))
            .await
            .expect("user exists");
        let hash = auth::hash_password(password).expect("password long enough");
        self.store
            .set_password(user.id, &hash)
            .await
            .expect("password stored");
    }

    /// A caller presenting `token` (e.g. a pipeline's gate token).
    pub fn bearer(&self, token: &str) -> Actor {
        Actor {
            email: "pipeline".into(),
            token: Some(token.to_string()),
            cookie: None,
            router: self.router.clone(),
        }
    }

    /// A browser carrying `cookie` (e.g. `changegate_session=...`) and no token.
    pub fn browser(&self, cookie: Option<String>) -> Actor {
        Actor {
            email: String::new(),
            token: None,
            cookie,
            router: self.router.clone(),
        }
    }

    pub async fn msp(&self, email: &str, roles: &[(&str, Role)]) -> Actor {
        self.person(email, UserKind::Msp, roles).await
    }

    pub async fn client(&self, email: &str, roles: &[(&str, Role)]) -> Actor {
        self.person(email, UserKind::Client, roles).await
    }
}

impl TestApp {
    /// On a fresh SQLite database in a temporary directory.
    pub async fn sqlite() -> Self {
        Self::on(crate::db::TestDb::sqlite().await)
    }

    /// On a fresh database of the process's private PostgreSQL.
    pub async fn postgres() -> Self {
        Self::on(crate::db::TestDb::postgres().await)
    }

    pub fn on(db: crate::db::TestDb) -> Self {
        let store = db.store();
        TestApp::new(store, Box::new(db))
    }
}
