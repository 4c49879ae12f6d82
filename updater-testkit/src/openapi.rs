//! Checks a JSON value against a schema of an OpenAPI 3.1 document — the
//! subset the workspace's documents use (`$ref`, `allOf`, `oneOf`, `anyOf`,
//! `type` with `null`, `enum`, `properties`, `required`, `items`,
//! `minimum`, `format: date-time`) — and refuses properties the schema does
//! not document, so a response and its document cannot drift apart.

use serde_json::Value;

/// The schema of the JSON answer of `method path` with `status` in `document`.
pub fn response_schema<'a>(
    document: &'a Value,
    method: &str,
    path: &str,
    status: u16,
) -> Option<&'a Value> {
    document["paths"][path][method.to_ascii_lowercase()]["responses"][status.to_string()]
        ["content"]["application/json"]["schema"]
        .as_object()
        .map(|_| {
            &document["paths"][path][method.to_ascii_lowercase()]["responses"][status.to_string()]
                ["content"]["application/json"]["schema"]
        })
}

/// Every violation of `schema` by `value` (empty: valid), each with its JSON pointer.
pub fn violations(document: &Value, schema: &Value, value: &Value) -> Vec<String> {
    let mut found = Vec::new();
    check(document, schema, value, "", &mut found);
    found
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(document, document.pointer(pointer).unwrap_or(&Value::Null))
        }
        None => schema,
    }
}

fn type_matches(name: &str, value: &Value) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        _ => false,
    }
}

/// The properties an object schema documents, through `allOf` and `$ref`.
fn documented(document: &Value, schema: &Value, names: &mut Vec<String>) -> bool {
    let schema = resolve(document, schema);
    let mut open = schema
        .get("additionalProperties")
        .is_some_and(|a| a != &Value::Bool(false));
    if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
        names.extend(properties.keys().cloned());
    }
    for part in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        open |= documented(document, part, names);
    }
    open
}

fn check(document: &Value, schema: &Value, value: &Value, at: &str, found: &mut Vec<String>) {
    let schema = resolve(document, schema);
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array) {
            let fits = options.iter().any(|option| {
                let mut inner = Vec::new();
                check(document, option, value, at, &mut inner);
                inner.is_empty()
            });
            if !fits {
                found.push(format!("{at}: {value} fits none of {key}"));
            }
        }
    }
    check_without_extra(document, schema, value, at, found);
    if value.is_object() && (schema.get("properties").is_some() || schema.get("allOf").is_some()) {
        let mut names = Vec::new();
        if !documented(document, schema, &mut names) {
            for key in value.as_object().into_iter().flat_map(|o| o.keys()) {
                if !names.contains(key) {
                    found.push(format!("{at}/{key}: not in the schema"));
                }
            }
        }
    }
}

fn check_without_extra(
    document: &Value,
    schema: &Value,
    value: &Value,
    at: &str,
    found: &mut Vec<String>,
) {
    let schema = resolve(document, schema);
    if schema.get("allOf").is_some() && schema.get("properties").is_none() {
        for part in schema["allOf"].as_array().into_iter().flatten() {
            check_without_extra(document, part, value, at, found);
        }
    }
    match schema.get("type") {
        Some(Value::String(name)) if !type_matches(name, value) => {
            found.push(format!("{at}: {value} is not {name}"));
            return;
        }
        Some(Value::Array(names))
            if !names
                .iter()
                .filter_map(Value::as_str)
                .any(|n| type_matches(n, value)) =>
        {
            found.push(format!("{at}: {value} is none of {names:?}"));
            return;
        }
        _ => {}
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array)
        && !options.contains(value)
    {
        found.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(minimum), Some(number)) = (
        schema.get("minimum").and_then(Value::as_f64),
        value.as_f64(),
    ) && number < minimum
    {
        found.push(format!("{at}: {number} is below {minimum}"));
    }
    if schema.get("format").and_then(Value::as_str) == Some("date-time")
        && let Some(text) = value.as_str()
        && chrono::DateTime::parse_from_rfc3339(text).is_err()
    {
        found.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
    }
    if let Some(object) = value.as_object() {
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str()
                && !object.contains_key(name)
            {
                found.push(format!("{at}: required property {name} is missing"));
            }
        }
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if let Some(inner) = object.get(name) {
                    check(document, property, inner, &format!("{at}/{name}"), found);
                }
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(document, items, item, &format!("{at}/{index}"), found);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_undocumented_property_and_a_wrong_type_are_violations() {
        let doc = json!({"components": {"schemas": {"A": {"type": "object", "required": ["n"],
            "properties": {"n": {"type": "integer", "minimum": 0}, "s": {"type": ["string", "null"]}}}}}});
        let schema = json!({"$ref": "#/components/schemas/A"});
        assert!(violations(&doc, &schema, &json!({"n": 1, "s": null})).is_empty());
        assert_eq!(
            violations(&doc, &schema, &json!({"n": -1})),
            vec!["/n: -1 is below 0"]
        );
        assert_eq!(
            violations(&doc, &schema, &json!({"n": 1, "x": 2})),
            vec!["/x: not in the schema"]
        );
        assert_eq!(violations(&doc, &schema, &json!({"s": 3})).len(), 2);
    }
}
