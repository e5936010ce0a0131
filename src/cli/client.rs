//! The HTTP client the client commands share: server URL and token from
//! flags or the environment, JSON in and out, the server's error shown
//! with its code and field.

use clap::Args;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use std::fmt;

#[derive(Args, Clone)]
pub struct ServerArgs {
    /// The changegate server.
    #[arg(
        long,
        env = "CHANGEGATE_SERVER",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub server: String,
    /// An API token (`changegate admin token <email>` prints one).
    #[arg(long, env = "CHANGEGATE_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

#[derive(Debug)]
pub enum ClientError {
    /// The server answered with an error.
    Refused {
        status: StatusCode,
        code: String,
        message: String,
        field: Option<String>,
    },
    /// No answer, or not one we understand.
    Unreachable(String),
}

impl ClientError {
    /// 1 when the server refused, 2 when it could not be asked.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Refused { .. } => 1,
            ClientError::Unreachable(_) => 2,
        }
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Refused {
                status,
                code,
                message,
                field,
            } => {
                write!(f, "refused ({} {code}): {message}", status.as_u16())?;
                if let Some(field) = field {
                    write!(f, " [field: {field}]")?;
                }
                Ok(())
            }
            ClientError::Unreachable(m) => f.write_str(m),
        }
    }
}

impl ServerArgs {
    pub fn client(&self) -> Result<Client, ClientError> {
        let token = self.token.clone().filter(|t| !t.is_empty()).ok_or_else(|| {
            ClientError::Unreachable(
                "no API token: pass --token or set CHANGEGATE_TOKEN (an admin prints one with `changegate admin token <email>`)".into(),
            )
        })?;
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| ClientError::Unreachable(format!("cannot build an HTTP client: {e}")))?;
        Ok(Client {
            http,
            base: self.server.trim_end_matches('/').to_string(),
            token,
        })
    }
}

impl Client {
    /// The body of a successful answer as it came (an archive, a CSV).
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Vec<u8>, ClientError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.map_err(|e| {
            ClientError::Unreachable(format!(
                "cannot reach {}: {e}; is `changegate serve` running there? (--server)",
                self.base
            ))
        })?;
        let status = res.status();
        let bytes = res.bytes().await.map_err(|e| {
            ClientError::Unreachable(format!("the answer from {} broke off: {e}", self.base))
        })?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        let text = String::from_utf8_lossy(&bytes).to_string();
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let err = &json["error"];
        Err(ClientError::Refused {
            status,
            code: err["code"].as_str().unwrap_or("http").to_string(),
            message: err["message"].as_str().map(str::to_string).unwrap_or(text),
            field: err["field"].as_str().map(str::to_string),
        })
    }

    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, ClientError> {
        let bytes = self.call_raw(method, path, body).await?;
        Ok(serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str) -> Result<Value, ClientError> {
        self.call(Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        self.call(Method::PUT, path, Some(body)).await
    }
}

/// `text` as one path segment: everything but unreserved characters and
/// `:`/`@` (common in Kubernetes user names) percent-encoded.
pub fn path_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':' | b'@') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
