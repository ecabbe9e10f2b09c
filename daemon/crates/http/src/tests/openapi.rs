//! `openapi.json` held to the server it describes. The document is written by hand (its prose
//! says more than derived schemas would), so these tests are what keeps it true:
//! - it parses as OpenAPI 3.0 (the `openapiv3` crate), every `$ref` resolves, every path
//!   parameter is declared and every operation has responses;
//! - its (method, path) pairs are exactly those of the route tables the routers are built from,
//!   each answered by the real router, with a bearer token required exactly where documented;
//! - each JSON request body's schema has the fields, types and required set of the type its
//!   handler reads;
//! - every response the HTTP tests receive (`super::call`) has a documented status and media
//!   type, and a JSON body that validates against the documented schema with no undocumented
//!   field; every body the server accepted validates against the documented request schema.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::LazyLock;

use axum::body::Body as AxumBody;
use axum::extract::MatchedPath;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::super::{
    COMMUNITY_API, OPENAPI_JSON, Route, api_router, community_table, open_table, owner_router,
    owner_table, router,
};
use super::setup_state;

static DOC: LazyLock<Value> =
    LazyLock::new(|| serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON"));

/// The operations openapi.json documents, as (METHOD, path template).
fn documented() -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in DOC["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            if METHODS.contains(&method.as_str()) {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The operation keys of an OpenAPI 3.0 path item.
const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Every route the routers serve, as (METHOD, full path, whether it needs a bearer token).
fn served() -> Vec<(String, String, bool)> {
    let row = |r: Route, prefix: &str, bearer: bool| {
        (r.method.to_string(), format!("{prefix}{}", r.path), bearer)
    };
    let mut out: Vec<_> = owner_table()
        .into_iter()
        .chain(open_table())
        .map(|r| row(r, "", false))
        .collect();
    out.extend(
        community_table()
            .into_iter()
            .map(|r| row(r, COMMUNITY_API, true)),
    );
    out
}

fn operation(method: &str, template: &str) -> Option<&'static Value> {
    DOC["paths"].get(template)?.get(method.to_ascii_lowercase())
}

/// `value`, or what it points to when it is a `{"$ref": "#/..."}`.
fn resolved(value: &'static Value) -> &'static Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let target = r
                .strip_prefix('#')
                .and_then(|p| DOC.pointer(p))
                .unwrap_or_else(|| panic!("openapi.json: $ref {r:?} points nowhere"));
            resolved(target)
        }
        None => value,
    }
}

/// The documented path template `uri` is an instance of; the one with the most literal segments
/// when several match.
fn template_of(uri: &str) -> Option<&'static str> {
    let path = uri.split('?').next().unwrap_or(uri);
    let parts: Vec<&str> = path.split('/').collect();
    DOC["paths"]
        .as_object()
        .unwrap()
        .keys()
        .filter_map(|t| {
            let segs: Vec<&str> = t.split('/').collect();
            let fits = segs.len() == parts.len()
                && segs
                    .iter()
                    .zip(&parts)
                    .all(|(s, p)| s == p || (s.starts_with('{') && !p.is_empty()));
            fits.then(|| (segs.iter().filter(|s| !s.starts_with('{')).count(), t))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, t)| t.as_str())
}

/// An OpenAPI 3.0 schema object as JSON Schema draft 4, `$ref`s into `#/definitions`. With
/// `closed`, objects that list properties refuse others: a response field the document does not
/// name fails, though the document itself leaves responses open for clients to tolerate growth.
fn to_json_schema(schema: &Value, closed: bool) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map {
                match k.as_str() {
                    "$ref" => {
                        let r = v.as_str().unwrap();
                        let name = r.strip_prefix("#/components/schemas/").unwrap_or_else(|| {
                            panic!("openapi.json: schema $ref {r:?} is not a component schema")
                        });
                        out.insert(k.clone(), json!(format!("#/definitions/{name}")));
                    }
                    "nullable" | "example" => {}
                    "properties" => {
                        let props = v
                            .as_object()
                            .unwrap()
                            .iter()
                            .map(|(name, s)| (name.clone(), to_json_schema(s, closed)))
                            .collect();
                        out.insert(k.clone(), Value::Object(props));
                    }
                    "items" | "additionalProperties" | "not" => {
                        out.insert(k.clone(), to_json_schema(v, closed));
                    }
                    "allOf" | "oneOf" | "anyOf" => {
                        let all = v.as_array().unwrap();
                        let all = all.iter().map(|s| to_json_schema(s, closed)).collect();
                        out.insert(k.clone(), Value::Array(all));
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
            // OpenAPI 3.0's `nullable` is JSON Schema's null type (and null among an enum).
            if map.get("nullable") == Some(&json!(true)) {
                if let Some(t) = out.get_mut("type") {
                    *t = json!([t.clone(), "null"]);
                }
                if let Some(Value::Array(e)) = out.get_mut("enum") {
                    e.push(Value::Null);
                }
            }
            if closed && map.contains_key("properties") && !map.contains_key("additionalProperties")
            {
                out.insert("additionalProperties".into(), json!(false));
            }
            Value::Object(out)
        }
        other => other.clone(),
    }
}

/// Why `instance` does not fit `schema` (an OpenAPI schema of the document), if it does not.
fn misfit(schema: &Value, instance: &Value, closed: bool) -> Option<String> {
    let mut root = to_json_schema(schema, closed);
    let definitions: serde_json::Map<String, Value> = DOC["components"]["schemas"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, s)| (name.clone(), to_json_schema(s, closed)))
        .collect();
    root.as_object_mut()
        .expect("a schema object")
        .insert("definitions".into(), Value::Object(definitions));
    let validator = jsonschema::draft4::options()
        .should_validate_formats(true)
        .build(&root)
        .unwrap_or_else(|e| panic!("openapi.json: a schema is not valid JSON Schema: {e}"));
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    (!errors.is_empty()).then(|| errors.join("; "))
}

/// The documented response to `method uri` with `status`: panics when the document lists no
/// such status for the operation.
fn documented_response(method: &str, uri: &str, status: StatusCode) -> &'static Value {
    let error = || resolved(&DOC["components"]["responses"]["Error"]);
    let Some(template) = template_of(uri) else {
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "{method} {uri}: no such path"
        );
        return error();
    };
    let Some(op) = operation(method, template) else {
        assert_eq!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {template} is not documented, yet the server answered"
        );
        return error();
    };
    match op["responses"].get(status.as_str()) {
        Some(r) => resolved(r),
        // The document's description: any request may be cut off (408) or turned away while
        // the database is held by another writer or the connections are full (503).
        None if matches!(status.as_u16(), 408 | 503) => error(),
        None => panic!(
            "{method} {template} answered {status}, which openapi.json does not list for it \
             (add it to the operation's responses)"
        ),
    }
}

/// Checks one exchange of the HTTP tests against the document; see the module's doc.
pub(super) fn check_exchange(
    method: &str,
    uri: &str,
    request: &str,
    status: StatusCode,
    content_type: Option<&str>,
    body: &[u8],
) {
    let response = documented_response(method, uri, status);
    let media = content_type
        .and_then(|c| c.split(';').next())
        .map(|c| c.trim().to_ascii_lowercase());
    match response.get("content").and_then(Value::as_object) {
        None => assert!(
            body.is_empty(),
            "{method} {uri}: {status} sends a body ({media:?}) openapi.json does not document"
        ),
        Some(_) if body.is_empty() => {}
        Some(documented) => {
            let m = media.unwrap_or_default();
            let content = documented.get(&m).unwrap_or_else(|| {
                panic!(
                    "{method} {uri}: {status} answered {m:?}, openapi.json documents {:?}",
                    documented.keys().collect::<Vec<_>>()
                )
            });
            if let (true, Some(schema)) = (m == "application/json", content.get("schema")) {
                let value: Value = serde_json::from_slice(body)
                    .unwrap_or_else(|e| panic!("{method} {uri}: {status} body is not JSON: {e}"));
                if let Some(why) = misfit(schema, &value, true) {
                    panic!(
                        "{method} {uri}: the {status} body does not fit openapi.json: {why}\n{value}"
                    );
                }
            }
        }
    }
    // A body the server took must be one the document allows.
    let schema = template_of(uri)
        .and_then(|t| operation(method, t))
        .and_then(|op| op.get("requestBody"))
        .map(resolved)
        .and_then(|b| b.pointer("/content/application~1json/schema"));
    if let (true, Some(schema), false) = (status.is_success(), schema, request.is_empty()) {
        let value: Value = serde_json::from_str(request).unwrap();
        if let Some(why) = misfit(schema, &value, false) {
            panic!(
                "{method} {uri}: the server accepted a body openapi.json refuses: {why}\n{value}"
            );
        }
    }
}

#[test]
fn openapi_is_valid_openapi_3_0() {
    let de = &mut serde_json::Deserializer::from_str(OPENAPI_JSON);
    let api: openapiv3::OpenAPI = serde_path_to_error::deserialize(de)
        .unwrap_or_else(|e| panic!("openapi.json is not an OpenAPI 3.0 document: {e}"));
    assert!(api.openapi.starts_with("3.0."), "{}", api.openapi);

    // Every $ref resolves inside the document.
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&DOC, &mut all);
    assert!(!all.is_empty());
    for r in all {
        let target = r.strip_prefix('#').and_then(|p| DOC.pointer(p));
        assert!(target.is_some(), "openapi.json: $ref {r:?} points nowhere");
    }

    let schemes = &DOC["components"]["securitySchemes"];
    let mut ids = BTreeSet::new();
    for (method, path) in documented() {
        let op = operation(&method, &path).unwrap();
        let name = format!("{method} {path}");
        let id = op["operationId"].as_str();
        assert!(
            id.is_some_and(|id| ids.insert(id.to_string())),
            "{name}: operationId missing or used twice"
        );
        let responses = op["responses"].as_object();
        assert!(
            responses.is_some_and(|r| !r.is_empty()),
            "{name} has no responses"
        );
        for (code, r) in responses.unwrap() {
            assert!(
                resolved(r)["description"].is_string(),
                "{name} {code}: no description"
            );
        }
        // The path's {parameters} are exactly the declared path parameters, each required.
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let params = op["parameters"].as_array().into_iter().flatten();
        let declared: BTreeSet<&str> = params
            .map(resolved)
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{name}: path parameter {p}"))
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(declared, in_template, "{name}: path parameters");
        for requirement in op["security"].as_array().into_iter().flatten() {
            for scheme in requirement.as_object().unwrap().keys() {
                assert!(
                    schemes.get(scheme).is_some(),
                    "{name}: security scheme {scheme:?} is not in components.securitySchemes"
                );
            }
        }
    }

    // Each component schema compiles as JSON Schema once `nullable` is translated (`misfit`
    // panics otherwise); none is nullable, so null must not fit any.
    for (name, schema) in DOC["components"]["schemas"].as_object().unwrap() {
        let checked = misfit(schema, &Value::Null, false);
        assert!(checked.is_some(), "schema {name} accepts null");
    }
}

#[test]
fn openapi_describes_every_route() {
    let served = served();
    let routes: BTreeSet<(String, String)> = served
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    assert_eq!(routes.len(), served.len(), "a route is in the tables twice");
    let documented = documented();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&routes).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in openapi.json: {undocumented:?}; \
         in openapi.json but not served: {unserved:?}"
    );
    // A bearer token is documented exactly where `require_token` asks for one.
    for (method, path, bearer) in &served {
        let op = operation(method, path).unwrap();
        let says_bearer = op["security"]
            .as_array()
            .is_some_and(|s| s.iter().any(|r| r.get("bearer").is_some()));
        assert_eq!(says_bearer, *bearer, "{method} {path}: bearer security");
    }
}

/// Copies the route template axum matched into a header, so a probe sees which route answered.
async fn echo_matched(request: axum::extract::Request, next: Next) -> Response {
    let matched = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let mut response = next.run(request).await;
    if let Some(m) = matched {
        let value = HeaderValue::from_str(&m).unwrap();
        response.headers_mut().insert("x-matched-path", value);
    }
    response
}

/// Which route of `app` answers `method` at an instance of `template`, and with what status.
async fn probe(app: &axum::Router, method: &Method, template: &str) -> (StatusCode, String) {
    let uri: Vec<String> = template
        .split('/')
        .map(|s| match s.starts_with('{') {
            true => "probe".to_string(),
            false => s.to_string(),
        })
        .collect();
    let request = Request::builder()
        .method(method)
        .uri(uri.join("/"))
        .body(AxumBody::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let matched = response
        .headers()
        .get("x-matched-path")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (response.status(), matched)
}

/// The tables are what the routers serve: each documented operation is answered by the real
/// routers at its template, on the listener it belongs to, and a documented path refuses every
/// method the document does not give it (which also catches a method added to a path outside
/// the tables).
#[tokio::test]
async fn every_documented_operation_is_answered_by_the_real_router_and_no_other_method() {
    let (state, _, _d) = setup_state();
    let echo = middleware::from_fn(echo_matched);
    let all = router(state.clone()).layer(echo.clone());
    let api = api_router(state.clone()).layer(echo.clone());
    let owner = owner_router(state).layer(echo);
    let owner_paths: BTreeSet<String> = owner_table()
        .into_iter()
        .map(|r| r.path.to_string())
        .collect();
    let documented = documented();
    let paths: BTreeSet<&String> = documented.iter().map(|(_, p)| p).collect();
    let candidates = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ];
    for path in paths {
        for method in &candidates {
            let (status, matched) = probe(&all, method, path).await;
            if documented.contains(&(method.to_string(), path.clone())) {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
                assert_eq!(
                    &matched, path,
                    "{method} {path} is answered by another route"
                );
                let on_owner = owner_paths.contains(path);
                for (app, name, serves) in [(&api, "api", !on_owner), (&owner, "owner", on_owner)] {
                    let (status, matched) = probe(app, method, path).await;
                    assert_eq!(
                        (
                            status != StatusCode::NOT_FOUND || !matched.is_empty(),
                            &matched == path
                        ),
                        (serves, serves),
                        "{method} {path} on the {name} listener: {status} {matched:?}"
                    );
                }
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{method} {path} is served but not in openapi.json"
                );
            }
        }
    }
}

/// The field names `T`'s `Deserialize` asks for, read from the struct it asks the deserializer
/// for (what serde-reflection does).
fn fields_of<T: DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor, value::Error};
    struct Fields(Option<&'static [&'static str]>);
    impl<'de> serde::Deserializer<'de> for &mut Fields {
        type Error = Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            self.0 = Some(fields);
            Err(Error::custom("fields read"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }
    let mut f = Fields(None);
    let _ = T::deserialize(&mut f);
    f.0.expect("a struct with named fields")
}

/// The type an operation's handler reads its JSON body into.
struct BodyType {
    operation: &'static str,
    fields: &'static [&'static str],
    reads: fn(&Value) -> Result<(), String>,
}

fn body_type<T: DeserializeOwned>(operation: &'static str) -> BodyType {
    BodyType {
        operation,
        fields: fields_of::<T>(),
        reads: |v| {
            serde_json::from_value::<T>(v.clone())
                .map(drop)
                .map_err(|e| e.to_string())
        },
    }
}

/// A value `schema` (one property's) accepts, of the kind a client would send.
fn sample(schema: &'static Value) -> Value {
    let schema = resolved(schema);
    if let Some(first) = schema["enum"].as_array().and_then(|e| e.first()) {
        return first.clone();
    }
    match (schema["type"].as_str(), schema["format"].as_str()) {
        (Some("string"), Some("date-time")) => json!("2026-03-01T09:30:00+08:00"),
        (Some("string"), Some("date")) => json!("2026-12-31"),
        (Some("string"), _) => json!("1-1-101"),
        (Some("integer"), _) => schema.get("minimum").cloned().unwrap_or(json!(1)),
        (Some("number"), _) => json!(1.5),
        (Some("boolean"), _) => json!(true),
        (Some("array"), _) => json!([]),
        (Some("object"), _) => json!({}),
        (t, _) => panic!("no sample for a schema of type {t:?}: {schema}"),
    }
}

/// Each JSON request body is documented with the fields of the Rust type its handler reads,
/// of types that type takes, required exactly when the type cannot do without them, and closed
/// exactly as the type refuses unknown fields.
#[test]
fn request_schemas_match_the_types_the_handlers_read() {
    use super::super::community_events::{PlanEvent, RecordRsvp, RecordSummary};
    use super::super::payment_plans::AgreePlan;
    use super::super::{AnswerSurvey, CloseTicket, OpenTicket, PostPayment, RecordCallback};
    let types = [
        body_type::<OpenTicket>("openTicket"),
        body_type::<CloseTicket>("closeTicket"),
        body_type::<RecordCallback>("recordCallback"),
        body_type::<PostPayment>("postPayment"),
        body_type::<super::super::ReversePayment>("reversePayment"),
        body_type::<AnswerSurvey>("answerSurvey"),
        body_type::<PlanEvent>("planEvent"),
        body_type::<RecordRsvp>("recordRsvp"),
        body_type::<RecordSummary>("recordEventSummary"),
        body_type::<AgreePlan>("agreePaymentPlan"),
    ];
    let mut with_json_body = BTreeMap::new();
    for (method, path) in documented() {
        let op = operation(&method, &path).unwrap();
        let schema = op
            .get("requestBody")
            .map(resolved)
            .and_then(|b| b.pointer("/content/application~1json/schema"));
        if let Some(schema) = schema {
            with_json_body.insert(op["operationId"].as_str().unwrap(), resolved(schema));
        }
    }
    let named: BTreeSet<&str> = types.iter().map(|t| t.operation).collect();
    assert_eq!(
        named,
        with_json_body.keys().copied().collect(),
        "every operation with a JSON body, and only those, has its type here"
    );
    for t in &types {
        let op = t.operation;
        let schema = with_json_body[op];
        let props = schema["properties"].as_object().unwrap();
        let documented: BTreeSet<&str> = props.keys().map(String::as_str).collect();
        let fields: BTreeSet<&str> = t.fields.iter().copied().collect();
        assert_eq!(
            documented, fields,
            "{op}: documented properties vs the type's fields"
        );
        let full: serde_json::Map<String, Value> = props
            .iter()
            .map(|(name, s)| (name.clone(), sample(s)))
            .collect();
        let full = Value::Object(full);
        assert_eq!(misfit(schema, &full, false), None, "{op}: sample {full}");
        (t.reads)(&full).unwrap_or_else(|e| panic!("{op}: {full} is refused: {e}"));
        let required: BTreeSet<&str> = schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| r.as_str().unwrap())
            .collect();
        for name in props.keys() {
            let mut without = full.clone();
            without.as_object_mut().unwrap().remove(name);
            assert_eq!(
                (t.reads)(&without).is_err(),
                required.contains(name.as_str()),
                "{op}: is {name} required? openapi.json says {}",
                required.contains(name.as_str())
            );
        }
        let mut extra = full.clone();
        extra["unknown_field"] = json!(1);
        assert_eq!(
            (t.reads)(&extra).is_err(),
            schema["additionalProperties"] == json!(false),
            "{op}: unknown fields refused by the type vs additionalProperties in openapi.json"
        );
    }
}
