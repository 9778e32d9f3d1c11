//! JSON with duplicate keys rejected. serde_json::Value keeps the last of two equal keys, which would let
//! `{"Effect":"Deny","Effect":"Allow"}` through as an Allow while a human reading it sees a Deny.
//!
//! A rendered policy is parsed once, into a [`Document`]: the renderer's checks (JSON, Version), the lint and
//! the canonical form sent to AWS all read that one parse.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::findings::quoted;

/// A policy document, parsed once: see the module docs.
#[derive(Debug)]
pub struct Document {
    /// The text's length in bytes.
    pub(super) bytes: usize,
    pub(super) root: Root,
}

#[derive(Debug)]
pub(super) enum Root {
    Parsed(Json),
    /// Not JSON, or an object with a repeated key (serde_json's error category `Data`, which only the
    /// duplicate-key check raises: every JSON value is accepted).
    Invalid(serde_json::Error),
    /// Over [`super::MAX_DOCUMENT_BYTES`]: the lint alone does not read it.
    Unread,
}

impl Document {
    /// Parse `text`, whatever its size (the renderer has bounded it: at most 2048 characters besides
    /// whitespace).
    pub fn parse(text: &str) -> Self {
        let root = match serde_json::from_str::<Json>(text) {
            Ok(json) => Root::Parsed(json),
            Err(e) => Root::Invalid(e),
        };
        Self { bytes: text.len(), root }
    }

    /// What the lint reads of `text`: nothing past its size when that is over the limit, so that hostile input
    /// costs no parse.
    pub(super) fn parse_bounded(text: &str, limit: usize) -> Self {
        if text.len() > limit { Self { bytes: text.len(), root: Root::Unread } } else { Self::parse(text) }
    }

    /// Why the text is not a usable JSON document, if it is not.
    pub fn error(&self) -> Option<&serde_json::Error> {
        match &self.root {
            Root::Invalid(e) => Some(e),
            Root::Parsed(_) | Root::Unread => None,
        }
    }

    /// The text is JSON, but an object in it repeats a key (which `serde_json::Value` would read, keeping the
    /// last): the lint refuses it, as an invalid document.
    pub fn repeats_a_key(&self) -> bool {
        self.error().is_some_and(|e| e.classify() == serde_json::error::Category::Data)
    }

    /// The top-level `Version`, when the document parsed, is an object and has a string there.
    pub fn version(&self) -> Option<&str> {
        let Root::Parsed(Json::Object(top)) = &self.root else { return None };
        top.iter().find(|(k, _)| k == "Version").and_then(|(_, v)| match v {
            Json::String(s) => Some(s.as_str()),
            _ => None,
        })
    }

    /// The canonical form: compact JSON, keys in the document's order, exactly as `serde_json` writes a
    /// `Value` (with `preserve_order`) read from the same text. `None` when the document did not parse.
    pub fn canonical(&self) -> Option<String> {
        match &self.root {
            Root::Parsed(json) => serde_json::to_string(json).ok(),
            Root::Invalid(_) | Root::Unread => None,
        }
    }
}

/// One JSON value, every object's keys unique and in document order.
#[derive(Debug)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    fn type_name(&self) -> &'static str {
        match self {
            Json::Null => "null",
            Json::Bool(_) => "boolean",
            Json::Number(_) => "number",
            Json::String(_) => "string",
            Json::Array(_) => "array",
            Json::Object(_) => "object",
        }
    }

    /// How a message names the value: strings quoted, anything else by type.
    pub(super) fn describe(&self) -> String {
        match self {
            Json::String(s) => quoted(s),
            other => format!("a JSON {}", other.type_name()),
        }
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Json, E> {
        Ok(Json::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Json, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Json, E> {
        Ok(Json::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Json, E> {
        // As serde_json::Value reads it (a float JSON can spell is always finite).
        Ok(serde_json::Number::from_f64(v).map_or(Json::Null, Json::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Json, E> {
        Ok(Json::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Json, E> {
        Ok(Json::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Json::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        let mut entries: Vec<(String, Json)> = Vec::new();
        // Keys are compared after unescaping, so `"Eff\u0065ct"` is a duplicate of `"Effect"` too.
        // Linear search: a rendered document has at most 2048 characters besides whitespace.
        while let Some(key) = map.next_key::<String>()? {
            if entries.iter().any(|(k, _)| *k == key) {
                return Err(de::Error::custom(format_args!("duplicate key {}", quoted(&key))));
            }
            let value = map.next_value()?;
            entries.push((key, value));
        }
        Ok(Json::Object(entries))
    }
}
