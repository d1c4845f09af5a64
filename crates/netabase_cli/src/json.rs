//! Records as JSON, guided by the model's shape: the form of `dump --json`, `export`
//! and `import`. A record is the JSON object serde_json would make of the model's Rust
//! struct (options as `null` or the value, tuples and arrays as lists, nested structs
//! as objects, enum variants externally tagged — `"Active"`, `{"Moved": {..}}` —, maps
//! with string or integer keys as objects and other maps as lists of `[key, value]`).

use netabase_store::codec::dynamic::{Fields, TypeDef, TypeShape, Value};
use netabase_store::typed::dynamic::{DynModel, DynRule};
use serde_json::{Map, Number, Value as Json};

use crate::failure::Failure;

/// A decoded value as JSON.
pub fn to_json(value: &Value) -> Json {
    match value {
        Value::Unit | Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::UInt(u) => match u64::try_from(*u) {
            Ok(u) => Json::Number(u.into()),
            // Beyond JSON's usual integers: a string of digits keeps the value exact.
            Err(_) => Json::String(u.to_string()),
        },
        Value::Int(i) => match i64::try_from(*i) {
            Ok(i) => Json::Number(i.into()),
            Err(_) => Json::String(i.to_string()),
        },
        Value::Float(f) => Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Char(c) => Json::String(c.to_string()),
        Value::Text(s) => Json::String(s.clone()),
        Value::Some(v) => to_json(v),
        Value::Seq(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Record(fields) => Json::Object(
            fields
                .iter()
                .map(|(name, v)| (name.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
        Value::Map(entries) => {
            let key = |k: &Value| match k {
                Value::Text(s) => Some(s.clone()),
                Value::Char(c) => Some(c.to_string()),
                Value::UInt(u) => Some(u.to_string()),
                Value::Int(i) => Some(i.to_string()),
                _ => None,
            };
            match entries
                .iter()
                .map(|(k, v)| Some((key(k)?, to_json(v))))
                .collect::<Option<Map<_, _>>>()
            {
                Some(object) if object.len() == entries.len() => Json::Object(object),
                _ => Json::Array(
                    entries
                        .iter()
                        .map(|(k, v)| Json::Array(vec![to_json(k), to_json(v)]))
                        .collect(),
                ),
            }
        }
        Value::Variant(name, inner) => match &**inner {
            Value::Unit => Json::String(name.clone()),
            inner => Json::Object(std::iter::once((name.clone(), to_json(inner))).collect()),
        },
    }
}

/// A JSON value read as the fields `fields` of a struct or an enum variant.
fn fields_from_json(json: &Json, fields: &Fields) -> Result<Value, String> {
    Ok(match (fields, json) {
        (Fields::Unit, Json::Null) => Value::Unit,
        (Fields::Newtype(t), j) => from_json(j, t)?,
        (Fields::Tuple(types), Json::Array(items)) if types.len() == items.len() => Value::Seq(
            types
                .iter()
                .zip(items)
                .map(|(t, j)| from_json(j, t))
                .collect::<Result<_, _>>()?,
        ),
        (Fields::Named(members), Json::Object(object)) => {
            if let Some(unknown) = object
                .keys()
                .find(|k| !members.iter().any(|(n, _)| n == *k))
            {
                return Err(format!("no member `{unknown}`"));
            }
            Value::Record(
                members
                    .iter()
                    .map(|(name, t)| {
                        let value = match (object.get(name), t) {
                            (None, TypeShape::Option(_)) => Value::None,
                            (None, _) => return Err(format!("the member `{name}` is missing")),
                            (Some(j), t) => {
                                from_json(j, t).map_err(|e| format!("member `{name}`: {e}"))?
                            }
                        };
                        Ok((name.clone(), value))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        (_, json) => return Err(format!("{json} does not fit the declared fields")),
    })
}

/// A JSON object key read as a map key of `shape`.
fn key_from_json(key: &str, shape: &TypeShape) -> Result<Value, String> {
    match shape {
        TypeShape::Text | TypeShape::Char => Ok(Value::Text(key.to_owned())),
        _ => from_json(&Json::String(key.to_owned()), shape)
            .or_else(|_| {
                let parsed: Json =
                    serde_json::from_str(key).map_err(|_| format!("bad key {key:?}"))?;
                from_json(&parsed, shape)
            })
            .map_err(|e| format!("key {key:?}: {e}")),
    }
}

/// A JSON value read as `shape`.
fn from_json(json: &Json, shape: &TypeShape) -> Result<Value, String> {
    Ok(match (shape, json) {
        (TypeShape::Option(_), Json::Null) => Value::None,
        (TypeShape::Option(inner), j) => Value::Some(Box::new(from_json(j, inner)?)),
        (TypeShape::Unit, Json::Null) => Value::Unit,
        (TypeShape::Bool, Json::Bool(b)) => Value::Bool(*b),
        (TypeShape::F32 | TypeShape::F64, Json::Number(n)) => {
            Value::Float(n.as_f64().ok_or("not a number")?)
        }
        (
            TypeShape::U8
            | TypeShape::U16
            | TypeShape::U32
            | TypeShape::U64
            | TypeShape::U128
            | TypeShape::Usize
            | TypeShape::I8
            | TypeShape::I16
            | TypeShape::I32
            | TypeShape::I64
            | TypeShape::I128
            | TypeShape::Isize,
            Json::Number(n),
        ) => {
            if let Some(u) = n.as_u64() {
                Value::UInt(u.into())
            } else if let Some(i) = n.as_i64() {
                Value::Int(i.into())
            } else {
                return Err(format!(
                    "{n} is not an integer ({} expected)",
                    shape.describe()
                ));
            }
        }
        (TypeShape::U128 | TypeShape::I128 | TypeShape::U64 | TypeShape::I64, Json::String(s)) => {
            if let Ok(u) = s.parse::<u128>() {
                Value::UInt(u)
            } else {
                Value::Int(
                    s.parse::<i128>()
                        .map_err(|_| format!("{s:?} is not an integer"))?,
                )
            }
        }
        (TypeShape::Char, Json::String(s)) => {
            let mut chars = s.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) => Value::Char(c),
                _ => return Err(format!("expected one character, found {s:?}")),
            }
        }
        (TypeShape::Text, Json::String(s)) => Value::Text(s.clone()),
        (TypeShape::Seq(inner) | TypeShape::Array(inner, _), Json::Array(items)) => Value::Seq(
            items
                .iter()
                .map(|j| from_json(j, inner))
                .collect::<Result<_, _>>()?,
        ),
        (TypeShape::Tuple(types), Json::Array(items)) if types.len() == items.len() => Value::Seq(
            types
                .iter()
                .zip(items)
                .map(|(t, j)| from_json(j, t))
                .collect::<Result<_, _>>()?,
        ),
        (TypeShape::Map(k, v), Json::Object(object)) => Value::Map(
            object
                .iter()
                .map(|(key, j)| Ok((key_from_json(key, k)?, from_json(j, v)?)))
                .collect::<Result<_, String>>()?,
        ),
        (TypeShape::Map(k, v), Json::Array(pairs)) => Value::Map(
            pairs
                .iter()
                .map(|pair| match pair {
                    Json::Array(kv) if kv.len() == 2 => {
                        Ok((from_json(&kv[0], k)?, from_json(&kv[1], v)?))
                    }
                    other => Err(format!("expected a [key, value] pair, found {other}")),
                })
                .collect::<Result<_, String>>()?,
        ),
        (TypeShape::Named(named), json) => match named.def() {
            Some(TypeDef::Struct(fields)) => {
                fields_from_json(json, fields).map_err(|e| format!("`{}`: {e}", named.name()))?
            }
            Some(TypeDef::Enum(variants)) => {
                let (name, inner) = match json {
                    Json::String(name) => (name.as_str(), &Json::Null),
                    Json::Object(object) if object.len() == 1 => match object.iter().next() {
                        Some((name, inner)) => (name.as_str(), inner),
                        None => return Err("an empty object is not a variant".into()),
                    },
                    other => {
                        return Err(format!(
                            "expected a variant of `{}` (\"Name\" or {{\"Name\": ..}}), found {other}",
                            named.name()
                        ));
                    }
                };
                let (_, fields) = variants
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| format!("`{}` has no variant `{name}`", named.name()))?;
                Value::Variant(
                    name.to_owned(),
                    Box::new(
                        fields_from_json(inner, fields)
                            .map_err(|e| format!("`{}::{name}`: {e}", named.name()))?,
                    ),
                )
            }
            Some(TypeDef::Undescribed(why)) => {
                return Err(format!(
                    "the type `{}` is not described: {why}",
                    named.name()
                ));
            }
            None => return Err(format!("the type `{}` is not described", named.name())),
        },
        (shape, json) => {
            return Err(format!("expected {}, found {json}", shape.describe()));
        }
    })
}

/// A JSON object read as a record of `model`: every field by name (a missing
/// `Option` field is `null`); unknown fields are refused.
pub fn record(model: &DynModel, json: &Json) -> Result<Value, Failure> {
    let fail = |what: String| Failure(format!("a record of {}: {what}", model.table));
    let Json::Object(object) = json else {
        return Err(fail(format!("expected an object, found {json}")));
    };
    if let Some(unknown) = object
        .keys()
        .find(|k| !model.fields.iter().any(|f| &f.name == *k))
    {
        return Err(fail(format!("the model has no field `{unknown}`")));
    }
    let mut fields = Vec::with_capacity(model.fields.len());
    for field in &model.fields {
        let shape = field
            .shape
            .as_ref()
            .map_err(|e| fail(format!("field `{}`: {e}", field.name)))?;
        let value = match (object.get(&field.name), shape) {
            (None, TypeShape::Option(_)) => Value::None,
            (None, _) => return Err(fail(format!("the field `{}` is missing", field.name))),
            (Some(j), shape) => {
                from_json(j, shape).map_err(|e| fail(format!("field `{}`: {e}", field.name)))?
            }
        };
        fields.push((field.name.clone(), value));
    }
    Ok(Value::Record(fields))
}

/// A decoded value in the readable form of `dump`: JSON for its parts, `name: value`
/// for the fields of a record.
pub fn readable(value: &Value) -> String {
    match value {
        Value::Record(fields) => fields
            .iter()
            .map(|(n, v)| format!("{n}: {}", to_json(v)))
            .collect::<Vec<_>>()
            .join(", "),
        other => to_json(other).to_string(),
    }
}

/// A validation rule as the model declares it (`non_empty`, `len(max = 20)`,
/// `range(min = 1900, max = 2100)`).
pub fn rule_text(rule: &Result<DynRule, netabase_store::codec::dynamic::ShapeMismatch>) -> String {
    let bounds = |min: Option<String>, max: Option<String>| {
        [
            min.map(|m| format!("min = {m}")),
            max.map(|m| format!("max = {m}")),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join(", ")
    };
    match rule {
        Ok(DynRule::NonEmpty) => "non_empty".into(),
        Ok(DynRule::Len { min, max }) => format!(
            "len({})",
            bounds(min.map(|m| m.to_string()), max.map(|m| m.to_string()))
        ),
        Ok(DynRule::Range { min, max }) => format!(
            "range({})",
            bounds(min.as_ref().map(Value::show), max.as_ref().map(Value::show))
        ),
        Err(e) => format!("(a rule this version cannot read: {e})"),
    }
}
