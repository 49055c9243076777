//! A blocking client for Herald's HTTP API.

use std::time::Duration;

/// A blocking HTTP client for Herald's API.
pub struct Api {
    pub base: String,
    pub token: String,
    pub client: reqwest::blocking::Client,
}

impl Api {
    pub fn new(base: String, token: String) -> Self {
        Self {
            base,
            token,
            client: reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
        }
    }

    pub fn post(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.post_with(path, body, &[])
    }

    pub fn post_with(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let req = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(with_headers(req, headers))
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.client.get(format!("{}{path}", self.base)))
    }

    pub fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.send(self.client.delete(format!("{}{path}", self.base)))
    }

    pub fn patch(&self, path: &str, body: &serde_json::Value) -> (u16, serde_json::Value) {
        self.patch_with(path, body, &[])
    }

    pub fn patch_with(
        &self,
        path: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> (u16, serde_json::Value) {
        let req = self.client.patch(format!("{}{path}", self.base)).json(body);
        self.send(with_headers(req, headers))
    }

    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req.bearer_auth(&self.token).send().expect("request");
        let status = resp.status().as_u16();
        (status, resp.json().unwrap_or(serde_json::Value::Null))
    }

    /// Creates an endpoint; returns (id, secret).
    pub fn create_endpoint(&self, url: &str, types: &[&str]) -> (String, String) {
        let (status, body) = self.post(
            "/v1/endpoints",
            &serde_json::json!({"url": url, "event_types": types}),
        );
        assert_eq!(status, 201, "{body}");
        (
            body["id"].as_str().unwrap().to_owned(),
            body["secret"].as_str().unwrap().to_owned(),
        )
    }
}

fn with_headers(
    req: reqwest::blocking::RequestBuilder,
    headers: &[(&str, &str)],
) -> reqwest::blocking::RequestBuilder {
    headers.iter().fold(req, |req, (k, v)| req.header(*k, *v))
}
