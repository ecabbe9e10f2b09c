//! SMS through HTTP gateways, each request built and signed as its provider documents it.
//!
//! - Aliyun (阿里云) `SendSms`, API version 2017-05-25, RPC style, signature v1: the sorted,
//!   RFC 3986-encoded parameters, `POST&%2F&<encoded>`, HMAC-SHA1 with `secret + "&"`, Base64.
//!   `OutId` carries a digest of the idempotency key.
//! - Tencent Cloud (腾讯云) `SendSms`, API version 2021-01-11, TC3-HMAC-SHA256 over the canonical
//!   request (signed headers `content-type;host;x-tc-action`). `SessionContext` carries the digest.
//! - Twilio `Messages.json`: HTTP basic auth with the Account SID and auth token, form-encoded.
//! - A generic JSON webhook with an `Idempotency-Key` header.
//! - A JSON-lines file (`<data_dir>/outbox/sms.jsonl`): the embedded default.
//!
//! Mainland providers only send pre-approved templates (code plus parameters) and refuse dunning
//! (催款) or survey wording: the shipped fee template is a neutral bill notice, and surveys go by
//! email or link only (see config/templates/README.md).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use super::{OutboxMessage, Outcome, SmsProvider, SmsSettings, key_digest};
use wuye_config::secret::Secret;

/// One SMS as a provider sees it (for tests and tools that build requests).
#[derive(Debug, Clone)]
pub struct SmsRequest {
    pub to: String,
    pub body: String,
    pub code: Option<String>,
    pub params: Vec<(String, String)>,
    /// Digest of the idempotency key (`OutId`, `SessionContext`, `Idempotency-Key`).
    pub id: String,
}

pub(crate) struct SmsChannel {
    pub(crate) provider: SmsProvider,
    endpoint: String,
    sign_name: String,
    key_id: Option<Secret>,
    secret: Option<Secret>,
    app_id: String,
    region: String,
    from: String,
    file: PathBuf,
    file_lock: Mutex<()>,
    /// `wuyed simulate`: the request is built (so a bad template fails as it would) and
    /// counted as sent; the outbox row is the record, nothing is written or posted.
    pub(crate) capture: bool,
    client: reqwest::Client,
    permits: Semaphore,
    pub(crate) settings: SmsSettings,
}

impl SmsChannel {
    pub(crate) fn new(
        s: &SmsSettings,
        config_dir: &Path,
        outbox_dir: &Path,
    ) -> anyhow::Result<SmsChannel> {
        let resolve = |name: &str, v: &Option<wuye_config::secret::SecretSource>| {
            v.as_ref()
                .map(|v| {
                    v.resolve(config_dir)
                        .map_err(|e| anyhow::anyhow!("{name}: {e}"))
                })
                .transpose()
        };
        let key_id = resolve("key_id", &s.key_id)?;
        let secret = resolve("secret", &s.secret)?;
        let need = |what: &str, ok: bool| -> anyhow::Result<()> {
            if ok {
                Ok(())
            } else {
                bail!("provider {} needs {what}", s.provider.as_str())
            }
        };
        match s.provider {
            SmsProvider::Aliyun => {
                need("key_id", key_id.is_some())?;
                need("secret", secret.is_some())?;
                need("sign_name", s.sign_name.is_some())?;
            }
            SmsProvider::Tencent => {
                need("key_id", key_id.is_some())?;
                need("secret", secret.is_some())?;
                need("sign_name", s.sign_name.is_some())?;
                need("app_id", s.app_id.is_some())?;
            }
            SmsProvider::Twilio => {
                need("key_id (Account SID)", key_id.is_some())?;
                need("secret (auth token)", secret.is_some())?;
                need("from", s.from.is_some())?;
            }
            SmsProvider::Webhook => need("endpoint", s.endpoint.is_some())?,
            SmsProvider::File => {}
        }
        let endpoint = s
            .endpoint
            .clone()
            .unwrap_or_else(|| {
                match s.provider {
                    SmsProvider::Aliyun => "https://dysmsapi.aliyuncs.com",
                    SmsProvider::Tencent => "https://sms.tencentcloudapi.com",
                    SmsProvider::Twilio => "https://api.twilio.com",
                    _ => "",
                }
                .to_string()
            })
            .trim_end_matches('/')
            .to_string();
        let concurrency = s.concurrency.unwrap_or(16).clamp(1, 256);
        Ok(SmsChannel {
            provider: s.provider,
            endpoint,
            sign_name: s.sign_name.clone().unwrap_or_default(),
            key_id,
            secret,
            app_id: s.app_id.clone().unwrap_or_default(),
            region: s.region.clone().unwrap_or_else(|| {
                match s.provider {
                    SmsProvider::Tencent => "ap-guangzhou",
                    _ => "cn-hangzhou",
                }
                .to_string()
            }),
            from: s.from.clone().unwrap_or_default(),
            file: outbox_dir.join("sms.jsonl"),
            file_lock: Mutex::new(()),
            capture: false,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .connect_timeout(Duration::from_secs(10))
                .pool_max_idle_per_host(concurrency)
                .tcp_nodelay(true)
                .build()
                .context("HTTP client")?,
            permits: Semaphore::new(concurrency),
            settings: s.clone(),
        })
    }

    pub(crate) async fn send(&self, m: &OutboxMessage, now: DateTime<Utc>) -> Outcome {
        let Ok(_permit) = self.permits.acquire().await else {
            return Outcome::Temporary("SMS channel closed".into());
        };
        let req = SmsRequest {
            to: m.address.clone(),
            body: m.body_text.clone(),
            code: m.sms_code.clone(),
            params: m.sms_params.clone(),
            id: key_digest(&m.idempotency_key()),
        };
        if self.capture {
            return Outcome::Sent {
                provider_id: Some(req.id),
            };
        }
        let outcome = match self.provider {
            SmsProvider::File => self.to_file(m, &req, now),
            SmsProvider::Aliyun => self.aliyun(&req, now).await,
            SmsProvider::Tencent => self.tencent(&req, now).await,
            SmsProvider::Twilio => self.twilio(&req).await,
            SmsProvider::Webhook => self.webhook(m, &req).await,
        };
        match outcome {
            // The receiver drops repeats by id, so resending is the safe answer.
            Outcome::Unknown(why) if self.provider.idempotent() => Outcome::Temporary(why),
            o => o,
        }
    }

    fn to_file(&self, m: &OutboxMessage, req: &SmsRequest, now: DateTime<Utc>) -> Outcome {
        let line = serde_json::json!({
            "at": now.to_rfc3339(),
            "id": req.id,
            "community": m.community,
            "to": req.to,
            "body": req.body,
            "template_code": req.code,
            "params": req.params,
            "category": m.category.as_str(),
        });
        let _g = self.file_lock.lock().expect("sms file lock poisoned");
        let r = (|| -> std::io::Result<()> {
            if let Some(d) = self.file.parent() {
                wuye_core::privacy::create_private_dir(d)?;
            }
            let mut f = wuye_core::privacy::private_file()
                .create(true)
                .append(true)
                .open(&self.file)?;
            f.write_all(format!("{line}\n").as_bytes())
        })();
        match r {
            Ok(()) => Outcome::Sent {
                provider_id: Some(req.id.clone()),
            },
            Err(e) => Outcome::Temporary(format!("cannot append to {}: {e}", self.file.display())),
        }
    }

    async fn aliyun(&self, req: &SmsRequest, now: DateTime<Utc>) -> Outcome {
        let Some(code) = &req.code else {
            return Outcome::Permanent(
                "Aliyun sends approved templates only: template has no sms_code".into(),
            );
        };
        let (Some(key), Some(secret)) = (&self.key_id, &self.secret) else {
            return Outcome::Permanent("Aliyun credentials missing".into());
        };
        let phone = req.to.strip_prefix("+86").unwrap_or(&req.to).to_string();
        let template_param: serde_json::Map<String, serde_json::Value> = req
            .params
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let (status, json) = match self
            .aliyun_call(
                key.expose(),
                secret.expose(),
                vec![
                    ("Action", "SendSms".into()),
                    ("OutId", req.id.clone()),
                    ("PhoneNumbers", phone),
                    ("SignName", self.sign_name.clone()),
                    ("TemplateCode", code.clone()),
                    (
                        "TemplateParam",
                        serde_json::Value::Object(template_param).to_string(),
                    ),
                ],
                now,
            )
            .await
        {
            Ok(v) => v,
            Err(o) => return o,
        };
        let code = json["Code"].as_str().unwrap_or("");
        let msg = json["Message"].as_str().unwrap_or("");
        if code == "OK" {
            return Outcome::Sent {
                provider_id: json["BizId"].as_str().map(str::to_string),
            };
        }
        let why = format!("Aliyun {code}: {msg} (HTTP {status})");
        if status == 429
            || status >= 500
            || code.starts_with("isp.")
            || code.starts_with("Throttling")
            || code == "isv.BUSINESS_LIMIT_CONTROL"
            || code == "isv.DAY_LIMIT_CONTROL"
        {
            Outcome::Temporary(why)
        } else {
            Outcome::Permanent(why)
        }
    }

    /// One signed Aliyun RPC call: the common parameters, `params`, signature v1, POST.
    async fn aliyun_call(
        &self,
        key_id: &str,
        secret: &str,
        params: Vec<(&str, String)>,
        now: DateTime<Utc>,
    ) -> Result<(u16, serde_json::Value), Outcome> {
        let mut p: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in [
            ("AccessKeyId", key_id.to_string()),
            ("Format", "JSON".into()),
            ("RegionId", self.region.clone()),
            ("SignatureMethod", "HMAC-SHA1".into()),
            ("SignatureNonce", hex::encode(rand::random::<[u8; 16]>())),
            ("SignatureVersion", "1.0".into()),
            ("Timestamp", now.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
            ("Version", "2017-05-25".into()),
        ]
        .into_iter()
        .chain(params)
        {
            p.insert(k.to_string(), v);
        }
        let signature = aliyun_signature("POST", &p, secret);
        let body = format!(
            "Signature={}&{}",
            percent_encode(&signature),
            canonical_query(&p)
        );
        let resp = self
            .client
            .post(format!("{}/", self.endpoint))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await;
        read_json(resp).await
    }

    /// Asks the provider what became of a message whose answer was lost. `Some(Sent)` if the
    /// provider has it (Aliyun: found by `OutId` among the number's messages of that day;
    /// Tencent: a successful delivery receipt with our `SessionContext`), `Some(Temporary)` if it
    /// surely does not (safe to send; only Aliyun can say so), `None` when this provider cannot
    /// tell.
    pub(crate) async fn resolve_unknown(
        &self,
        m: &OutboxMessage,
        tz: chrono_tz::Tz,
        now: DateTime<Utc>,
    ) -> Option<Outcome> {
        if self.provider == SmsProvider::Tencent {
            return self.tencent_resolve(m, now).await;
        }
        if self.provider != SmsProvider::Aliyun {
            return None;
        }
        let (Some(key), Some(secret)) = (&self.key_id, &self.secret) else {
            return None;
        };
        let id = key_digest(&m.idempotency_key());
        let phone = m
            .address
            .strip_prefix("+86")
            .unwrap_or(&m.address)
            .to_string();
        // QuerySendDetails lists one number's messages of one day (China time); the attempt
        // happened at `updated_at`.
        let date = m.updated_at.with_timezone(&tz).format("%Y%m%d").to_string();
        let mut page = 1;
        loop {
            let (_, json) = self
                .aliyun_call(
                    key.expose(),
                    secret.expose(),
                    vec![
                        ("Action", "QuerySendDetails".into()),
                        ("PhoneNumber", phone.clone()),
                        ("SendDate", date.clone()),
                        ("PageSize", "50".into()),
                        ("CurrentPage", page.to_string()),
                    ],
                    now,
                )
                .await
                .ok()?;
            if json["Code"] != "OK" {
                return None;
            }
            let list = json["SmsSendDetailDTOs"]["SmsSendDetailDTO"].as_array()?;
            if let Some(d) = list.iter().find(|d| d["OutId"] == id.as_str()) {
                return Some(Outcome::Sent {
                    provider_id: d["BizId"].as_str().map(str::to_string),
                });
            }
            let total: usize = json["TotalCount"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .or(json["TotalCount"].as_u64().map(|t| t as usize))
                .unwrap_or(0);
            if page * 50 >= total || list.is_empty() {
                return Some(Outcome::Temporary(
                    "the provider has no record of it: sending again".into(),
                ));
            }
            page += 1;
        }
    }

    /// One signed call of Tencent Cloud's SMS API (TC3-HMAC-SHA256, version 2021-01-11).
    async fn tencent_post(
        &self,
        action: &str,
        key: &str,
        secret: &str,
        payload: String,
        now: DateTime<Utc>,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let host = self
            .endpoint
            .split("://")
            .nth(1)
            .unwrap_or(&self.endpoint)
            .split('/')
            .next()
            .unwrap_or_default()
            .to_string();
        let ts = now.timestamp();
        let auth = tencent_authorization_for(action, key, secret, &host, &payload, ts);
        self.client
            .post(format!("{}/", self.endpoint))
            .header("Authorization", auth)
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Host", host)
            .header("X-TC-Action", action)
            .header("X-TC-Timestamp", ts.to_string())
            .header("X-TC-Version", "2021-01-11")
            .header("X-TC-Region", &self.region)
            .body(payload)
            .send()
            .await
    }

    /// Tencent: the number's delivery receipts since the message was queued
    /// (PullSmsSendStatusByPhoneNumber, which keeps seven days), searched for our
    /// `SessionContext`. A successful receipt settles the message as sent. No receipt proves
    /// nothing (receipts come minutes after the carrier delivers, and a failed report may still
    /// have cost a text), so everything else stays for a human: `None`.
    async fn tencent_resolve(&self, m: &OutboxMessage, now: DateTime<Utc>) -> Option<Outcome> {
        let (Some(key), Some(secret)) = (&self.key_id, &self.secret) else {
            return None;
        };
        let id = key_digest(&m.idempotency_key());
        let phone = if m.address.starts_with('+') {
            m.address.clone()
        } else {
            format!("+86{}", m.address)
        };
        let begin = m
            .created_at
            .max(now - chrono::Duration::days(7))
            .timestamp();
        let mut offset = 0;
        loop {
            let payload = serde_json::json!({
                "BeginTime": begin,
                "EndTime": now.timestamp(),
                "Offset": offset,
                "Limit": 100,
                "PhoneNumber": phone,
                "SmsSdkAppId": self.app_id,
            })
            .to_string();
            let resp = self
                .tencent_post(
                    "PullSmsSendStatusByPhoneNumber",
                    key.expose(),
                    secret.expose(),
                    payload,
                    now,
                )
                .await;
            let (_, json) = read_json(resp).await.ok()?;
            let r = &json["Response"];
            if r.get("Error").is_some() {
                return None;
            }
            let list = r["PullSmsSendStatusSet"].as_array()?;
            if let Some(s) = list.iter().find(|s| s["SessionContext"] == id.as_str()) {
                return (s["ReportStatus"] == "SUCCESS").then(|| Outcome::Sent {
                    provider_id: s["SerialNo"].as_str().map(str::to_string),
                });
            }
            if list.len() < 100 {
                return None;
            }
            offset += 100;
        }
    }

    async fn tencent(&self, req: &SmsRequest, now: DateTime<Utc>) -> Outcome {
        let Some(code) = &req.code else {
            return Outcome::Permanent(
                "Tencent sends approved templates only: template has no sms_code".into(),
            );
        };
        let (Some(key), Some(secret)) = (&self.key_id, &self.secret) else {
            return Outcome::Permanent("Tencent credentials missing".into());
        };
        let phone = if req.to.starts_with('+') {
            req.to.clone()
        } else {
            format!("+86{}", req.to)
        };
        let payload = serde_json::json!({
            "PhoneNumberSet": [phone],
            "SmsSdkAppId": self.app_id,
            "SignName": self.sign_name,
            "TemplateId": code,
            "TemplateParamSet": req.params.iter().map(|(_, v)| v.clone()).collect::<Vec<_>>(),
            "SessionContext": req.id,
        })
        .to_string();
        let resp = self
            .tencent_post("SendSms", key.expose(), secret.expose(), payload, now)
            .await;
        let (status, json) = match read_json(resp).await {
            Ok(v) => v,
            Err(o) => return o,
        };
        let r = &json["Response"];
        if let Some(e) = r.get("Error") {
            let code = e["Code"].as_str().unwrap_or("");
            let why = format!(
                "Tencent {code}: {} (HTTP {status})",
                e["Message"].as_str().unwrap_or("")
            );
            return if code.starts_with("RequestLimitExceeded")
                || code.starts_with("InternalError")
                || code.starts_with("LimitExceeded")
                || status >= 500
            {
                Outcome::Temporary(why)
            } else {
                Outcome::Permanent(why)
            };
        }
        let s = &r["SendStatusSet"][0];
        let code = s["Code"].as_str().unwrap_or("");
        if code == "Ok" {
            Outcome::Sent {
                provider_id: s["SerialNo"].as_str().map(str::to_string),
            }
        } else {
            let why = format!("Tencent {code}: {}", s["Message"].as_str().unwrap_or(""));
            if code.starts_with("LimitExceeded") || code.starts_with("InternalError") {
                Outcome::Temporary(why)
            } else {
                Outcome::Permanent(why)
            }
        }
    }

    async fn twilio(&self, req: &SmsRequest) -> Outcome {
        let (Some(sid), Some(token)) = (&self.key_id, &self.secret) else {
            return Outcome::Permanent("Twilio credentials missing".into());
        };
        let mut form = vec![("To", req.to.clone()), ("Body", req.body.clone())];
        if self.from.starts_with("MG") {
            form.push(("MessagingServiceSid", self.from.clone()));
        } else {
            form.push(("From", self.from.clone()));
        }
        let resp = self
            .client
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                self.endpoint,
                sid.expose()
            ))
            .basic_auth(sid.expose(), Some(token.expose()))
            .form(&form)
            .send()
            .await;
        let (status, json) = match read_json(resp).await {
            Ok(v) => v,
            Err(o) => return o,
        };
        if (200..300).contains(&status) {
            return Outcome::Sent {
                provider_id: json["sid"].as_str().map(str::to_string),
            };
        }
        let why = format!(
            "Twilio {}: {} (HTTP {status})",
            json["code"],
            json["message"].as_str().unwrap_or("")
        );
        if status == 429 || status >= 500 {
            Outcome::Temporary(why)
        } else {
            Outcome::Permanent(why)
        }
    }

    async fn webhook(&self, m: &OutboxMessage, req: &SmsRequest) -> Outcome {
        let mut r = self
            .client
            .post(&self.endpoint)
            .header("Idempotency-Key", &req.id)
            .json(&serde_json::json!({
                "id": req.id,
                "community": m.community,
                "to": req.to,
                "body": req.body,
                "template_code": req.code,
                "params": req.params.iter().map(|(k, v)| serde_json::json!({"name": k, "value": v})).collect::<Vec<_>>(),
                "category": m.category.as_str(),
            }));
        if let Some(t) = &self.secret {
            r = r.bearer_auth(t.expose());
        }
        let (status, json) = match read_json(r.send().await).await {
            Ok(v) => v,
            Err(o) => return o,
        };
        if (200..300).contains(&status) {
            Outcome::Sent {
                provider_id: json["id"]
                    .as_str()
                    .map(str::to_string)
                    .or(Some(req.id.clone())),
            }
        } else if status == 429 || status >= 500 {
            Outcome::Temporary(format!("webhook HTTP {status}: {json}"))
        } else {
            Outcome::Permanent(format!("webhook HTTP {status}: {json}"))
        }
    }
}

/// Reads a JSON answer; a network failure becomes the outcome it means.
async fn read_json(
    resp: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, serde_json::Value), Outcome> {
    let resp = match resp {
        Ok(r) => r,
        // Nothing was handed over.
        Err(e) if e.is_connect() => return Err(Outcome::Temporary(format!("cannot connect: {e}"))),
        // The request may have reached the provider.
        Err(e) => return Err(Outcome::Unknown(format!("no answer from the gateway: {e}"))),
    };
    let status = resp.status().as_u16();
    let text = match resp.text().await {
        Ok(t) => t,
        Err(e) => {
            return Err(Outcome::Unknown(format!(
                "answer cut off (HTTP {status}): {e}"
            )));
        }
    };
    let json = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    Ok((status, json))
}

/// RFC 3986 percent-encoding as Aliyun's signature v1 requires: unreserved characters stay,
/// everything else (UTF-8 bytes) becomes `%XX` in upper case; space is `%20`, never `+`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn canonical_query(params: &BTreeMap<String, String>) -> String {
    params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Aliyun RPC signature v1 of `params` (without `Signature`): Base64(HMAC-SHA1(secret + "&",
/// method + "&" + enc("/") + "&" + enc(canonical query))).
pub fn aliyun_signature(method: &str, params: &BTreeMap<String, String>, secret: &str) -> String {
    let to_sign = format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes any key length");
    mac.update(to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn hmac256(key: &[u8], msg: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// Tencent Cloud TC3-HMAC-SHA256 `Authorization` header for a `SendSms` POST of `payload` to
/// `host` at Unix time `timestamp`.
pub fn tencent_authorization(
    secret_id: &str,
    secret_key: &str,
    host: &str,
    payload: &str,
    timestamp: i64,
) -> String {
    tencent_authorization_for("SendSms", secret_id, secret_key, host, payload, timestamp)
}

/// [`tencent_authorization`] for any action of the SMS API (the action is a signed header).
pub fn tencent_authorization_for(
    action: &str,
    secret_id: &str,
    secret_key: &str,
    host: &str,
    payload: &str,
    timestamp: i64,
) -> String {
    let date = DateTime::from_timestamp(timestamp, 0)
        .unwrap_or_default()
        .format("%Y-%m-%d")
        .to_string();
    let signed_headers = "content-type;host;x-tc-action";
    let canonical_request = format!(
        "POST\n/\n\ncontent-type:application/json; charset=utf-8\nhost:{host}\nx-tc-action:{}\n\n{signed_headers}\n{}",
        action.to_ascii_lowercase(),
        hex::encode(Sha256::digest(payload.as_bytes()))
    );
    let scope = format!("{date}/sms/tc3_request");
    let to_sign = format!(
        "TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    );
    let k_date = hmac256(format!("TC3{secret_key}").as_bytes(), &date);
    let k_service = hmac256(&k_date, "sms");
    let k_signing = hmac256(&k_service, "tc3_request");
    let signature = hex::encode(hmac256(&k_signing, &to_sign));
    format!(
        "TC3-HMAC-SHA256 Credential={secret_id}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_rfc3986_as_aliyun_asks() {
        assert_eq!(percent_encode("a b*~"), "a%20b%2A~");
        assert_eq!(percent_encode("水"), "%E6%B0%B4");
    }
}
