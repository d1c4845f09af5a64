//! Records as JSON, guided by the model's shape: the form of `dump --json`, `export`
//! and `import`. A record is the JSON object serde_json would make of the model's Rust
//! struct (options as `null` or the value, tuples and arrays as lists).

use netabase_store::codec::dynamic::{TypeShape, Value};
use netabase_store::typed::dynamic::DynModel;
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
        (TypeShape::Char, Json::String(s)) => Value::Text(s.clone()),
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
