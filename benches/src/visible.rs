//! Counting the spans a server can answer for: through Cairn's SQL API, or any shell command
//! that prints a number (for other backends, e.g. `sqlite3 phoenix.db 'select count(*) from spans'`).

use serde_json::Value;

use crate::access::Trust;
use crate::{Error, Result};

/// How to count stored, queryable spans.
pub enum Counter {
    /// `POST <url>/api/v1/sql` with `SELECT count(*) FROM spans`.
    Sql {
        client: reqwest::Client,
        url: String,
        tenant: String,
        authorization: Option<String>,
    },
    /// A shell command whose output is the count.
    Command(String),
}

fn first_number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Array(items) => items.iter().find_map(first_number),
        Value::Object(fields) => fields.values().find_map(first_number),
        _ => None,
    }
}

impl Counter {
    /// Counts through Cairn's query API at `url` (`http://host:port`, or `https://` with
    /// `trust`), sending `authorization` (`Bearer <token>`) when given.
    pub fn sql(
        url: &str,
        tenant: &str,
        authorization: Option<String>,
        trust: Option<&Trust>,
    ) -> Result<Counter> {
        let mut builder = reqwest::Client::builder();
        if let Some(trust) = trust {
            builder = trust.http(builder)?;
        }
        Ok(Counter::Sql {
            client: builder.build().map_err(|e| Error::Usage(e.to_string()))?,
            url: format!("{}/api/v1/sql", url.trim_end_matches('/')),
            tenant: tenant.to_owned(),
            authorization,
        })
    }

    /// The number of spans visible now.
    pub async fn count(&self) -> Result<u64> {
        match self {
            Counter::Sql {
                client,
                url,
                tenant,
                authorization,
            } => {
                let mut request = client
                    .post(url.as_str())
                    .header("x-scope-orgid", tenant.as_str())
                    .header("content-type", "application/json");
                if let Some(authorization) = authorization {
                    request = request.header("authorization", authorization.as_str());
                }
                let response = request
                    .body(r#"{"sql": "SELECT count(*) AS n FROM spans"}"#)
                    .send()
                    .await
                    .map_err(|e| Error::Server(format!("POST {url}: {e}")))?;
                let status = response.status();
                let body: Value = response
                    .bytes()
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
                    .map_err(|e| Error::Server(format!("POST {url}: {status}: {e}")))?;
                if !status.is_success() {
                    return Err(Error::Server(format!("POST {url}: {status}: {body}")));
                }
                first_number(&body)
                    .ok_or_else(|| Error::Server(format!("no count in answer {body}")))
            }
            Counter::Command(command) => {
                let command = command.clone();
                let output = tokio::task::spawn_blocking(move || {
                    std::process::Command::new("sh")
                        .arg("-c")
                        .arg(&command)
                        .output()
                })
                .await
                .map_err(|e| Error::Server(e.to_string()))?
                .map_err(|e| Error::Usage(format!("count command: {e}")))?;
                let text = String::from_utf8_lossy(&output.stdout);
                text.trim().parse().map_err(|_| {
                    Error::Server(format!(
                        "count command printed {text:?} (stderr {:?})",
                        String::from_utf8_lossy(&output.stderr)
                    ))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_count_in_any_shape() {
        assert_eq!(first_number(&serde_json::json!([{ "n": 42 }])), Some(42));
        assert_eq!(first_number(&serde_json::json!({"rows": [["7"]]})), Some(7));
        assert_eq!(first_number(&serde_json::json!([])), None);
    }

    #[tokio::test]
    async fn counts_with_a_command() {
        assert_eq!(
            Counter::Command("echo 12".into()).count().await.unwrap(),
            12
        );
        assert!(Counter::Command("echo nope".into()).count().await.is_err());
    }
}
