//! The stored shape of a definition: the text the macros' descriptions become in
//! `__netabase/meta` (key `shape/<Definition>`), written at every writable open, and
//! read back by [`super::dynamic::DynamicStore`].
//!
//! Version 2 (written now) describes fields, keys, declarative validation rules, links
//! and the structs and enums of the definition module:
//!
//! ```text
//! netabase shape 2
//! definition BlogDefinition
//! struct Address named
//!   member street String
//! enum Status
//!   variant Active unit
//!   variant Moved named
//!     member to Address
//! model User v1 table BlogDefinition/User custom-validator
//!   field id u64 primary
//!   field name String
//!     rule len 1 40
//!     rule range 0161 -
//!   field email String unique BlogDefinition/User/email
//!   field status Status
//! model Post v0 table BlogDefinition/Post
//!   field id u64 primary
//!   field author u64
//!     link User restrict BlogDefinition/Post/author
//! ```
//!
//! `rule len MIN MAX` and `rule range MIN MAX` write `-` for an absent bound; a range
//! bound is the hex of the bound's postcard encoding as a value of the field's type.
//! Version 1 (the first one written) has the `model` and `field` lines only; it is
//! still read, and says nothing of rules and links ([`DynModel::rules_described`]).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;

use crate::codec::dynamic::{Fields, NamedType, ShapeMismatch, TypeDef, TypeShape, Value};
use crate::rules::{FieldRuleInfo, LinkInfo, OnDelete, RuleInfo};
use crate::schema::ModelVisitor;
use crate::schema::{
    FieldsKind, ModelInfo, NetabaseDefinitionTrait, NetabaseModelTrait, SecondaryKeyInfo,
};

use super::dynamic::{DynField, DynModel};

const HEADER_V1: &str = "netabase shape 1";
const HEADER: &str = "netabase shape 2";

/// The shape text of definition `D`, or `None` when its models are not described.
pub(crate) fn shape_text<D: NetabaseDefinitionTrait>() -> Option<String> {
    if D::SHAPES.len() != D::MODELS.len() {
        return None;
    }
    struct Rules(Vec<ModelRules>);
    type ModelRules = (
        &'static str,
        &'static [LinkInfo],
        &'static [FieldRuleInfo],
        bool,
    );
    impl<D: NetabaseDefinitionTrait> ModelVisitor<D> for &mut Rules {
        type Output = crate::Result<()>;

        fn visit<M: NetabaseModelTrait<D>>(self) -> crate::Result<()> {
            self.0
                .push((M::INFO.name, M::LINKS, M::FIELD_RULES, M::CUSTOM_VALIDATOR));
            Ok(())
        }
    }
    let mut rules = Rules(Vec::new());
    // The visitor itself never fails.
    let _ = D::visit_models(&mut rules);

    let mut out = format!("{HEADER}\ndefinition {}\n", D::NAME);
    for decl in D::TYPES {
        let undescribed = if decl.described { "" } else { " undescribed" };
        let members = |out: &mut String, fields: &[crate::schema::FieldShape], indent: &str| {
            for f in fields {
                let mark = if f.described { "" } else { " undescribed" };
                let _ = writeln!(out, "{indent}member {} {}{mark}", f.name, f.ty);
            }
        };
        if decl.is_enum {
            let _ = writeln!(out, "enum {}{undescribed}", decl.name);
            for v in decl.variants {
                let _ = writeln!(out, "  variant {} {}", v.name, kind_word(v.kind));
                members(&mut out, v.fields, "    ");
            }
        } else if let Some(v) = decl.variants.first() {
            let _ = writeln!(
                out,
                "struct {} {}{undescribed}",
                decl.name,
                kind_word(v.kind)
            );
            members(&mut out, v.fields, "  ");
        }
    }
    for (model, shape) in D::MODELS.iter().zip(D::SHAPES) {
        let (links, field_rules, custom) = rules
            .0
            .iter()
            .find(|r| r.0 == model.name)
            .map_or((&[][..], &[][..], false), |r| (r.1, r.2, r.3));
        let custom = if custom { " custom-validator" } else { "" };
        let _ = writeln!(
            out,
            "model {} v{} table {}{custom}",
            model.name, model.version, model.table
        );
        for field in shape.fields {
            let mut line = format!("  field {} {}", field.name, field.ty);
            if field.name == shape.primary_key {
                line.push_str(" primary");
            } else if let Some(key) = model.secondary_keys.iter().find(|k| k.field == field.name) {
                let kind = if key.unique { "unique" } else { "index" };
                let _ = write!(line, " {kind} {}", key.table);
            }
            if !field.described {
                line.push_str(" undescribed");
            }
            out.push_str(&line);
            out.push('\n');
            for rule in field_rules.iter().filter(|r| r.field == field.name) {
                let bound = |b: Option<usize>| b.map_or("-".to_owned(), |n| n.to_string());
                let code = |b: Option<fn() -> Vec<u8>>| b.map_or("-".to_owned(), |f| hex(&f()));
                let _ = match rule.rule {
                    RuleInfo::NonEmpty => writeln!(out, "    rule non_empty"),
                    RuleInfo::Len { min, max } => {
                        writeln!(out, "    rule len {} {}", bound(min), bound(max))
                    }
                    RuleInfo::Range { min, max } => {
                        writeln!(out, "    rule range {} {}", code(min), code(max))
                    }
                };
            }
            for link in links.iter().filter(|l| l.field == field.name) {
                let policy = match link.on_delete {
                    OnDelete::Restrict => "restrict",
                    OnDelete::Cascade => "cascade",
                    OnDelete::SetNull => "set_null",
                };
                // A link into another definition names its target by table.
                let target = if D::MODELS.iter().any(|m| m.table == link.target_table) {
                    link.target
                } else {
                    link.target_table
                };
                let _ = writeln!(out, "    link {target} {policy} {}", link.table);
            }
        }
    }
    Some(out)
}

fn kind_word(kind: FieldsKind) -> &'static str {
    match kind {
        FieldsKind::Unit => "unit",
        FieldsKind::Newtype => "newtype",
        FieldsKind::Tuple => "tuple",
        FieldsKind::Named => "named",
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut out, b| {
        let _ = write!(out, "{b:02x}");
        out
    })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A declarative validation rule of a field, as the stored shape describes it.
#[derive(Debug, Clone, PartialEq)]
pub enum DynRule {
    /// `len(min, max)`.
    Len {
        /// The smallest length allowed.
        min: Option<usize>,
        /// The largest length allowed.
        max: Option<usize>,
    },
    /// `non_empty`.
    NonEmpty,
    /// `range(min, max)`, the bounds decoded as values of the field's type.
    Range {
        /// The smallest value allowed.
        min: Option<Value>,
        /// The largest value allowed.
        max: Option<Value>,
    },
}

/// How many links a link field holds: the target's primary key `K`, `Option<K>` or
/// `Vec<K>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkArity {
    /// `K`: one link.
    One,
    /// `Option<K>`: none or one.
    Optional,
    /// `Vec<K>`: any number.
    Many,
}

/// A `#[link(..)]` field, as the stored shape describes it.
#[derive(Debug, Clone)]
pub struct DynLink {
    /// The link field.
    pub field: &'static str,
    /// The link index table (`<Definition>/<Model>/<field>`).
    pub table: &'static str,
    /// The linked model's name.
    pub target: &'static str,
    /// The linked model's primary table.
    pub target_table: &'static str,
    /// What removing a target does (kept by the program's own removals).
    pub on_delete: OnDelete,
    /// How the field holds the target's key, and that key's shape; an error when the
    /// field's type does not hold the target's primary key.
    pub holds: Result<(LinkArity, TypeShape), ShapeMismatch>,
}

/// A `field` line before its model is assembled.
struct FieldLine {
    field: DynField,
    rules: Vec<Result<DynRule, ShapeMismatch>>,
    links: Vec<(String, OnDelete, String)>,
}

/// A `struct` or `enum` line with its members, before the types are resolved.
struct TypeLines {
    name: String,
    is_enum: bool,
    undescribed: bool,
    variants: Vec<VariantLines>,
}

/// A `variant` line (or a struct's own fields) with its `member` lines.
struct VariantLines {
    name: String,
    kind: String,
    /// (name, type, described)
    members: Vec<(String, String, bool)>,
}

/// A `model` line with its fields.
struct ModelLines {
    name: String,
    version: u16,
    table: String,
    custom: bool,
    fields: Vec<FieldLine>,
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

/// Parses the shape text of one definition (version 1 or 2).
pub(crate) fn parse_shape(text: &str) -> Option<Vec<DynModel>> {
    let mut lines = text.lines();
    let version2 = match lines.next()? {
        HEADER => true,
        HEADER_V1 => false,
        _ => return None,
    };
    let mut definition = String::new();
    let mut types: Vec<TypeLines> = Vec::new();
    let mut models: Vec<ModelLines> = Vec::new();
    // The lines of the types are read first: a field's type may name any of them.
    let all: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    for words in &all {
        match words.as_slice() {
            ["struct", name, kind, rest @ ..] => types.push(TypeLines {
                name: (*name).to_owned(),
                is_enum: false,
                undescribed: rest.contains(&"undescribed"),
                variants: vec![VariantLines {
                    name: (*name).to_owned(),
                    kind: (*kind).to_owned(),
                    members: Vec::new(),
                }],
            }),
            ["enum", name, rest @ ..] => types.push(TypeLines {
                name: (*name).to_owned(),
                is_enum: true,
                undescribed: rest.contains(&"undescribed"),
                variants: Vec::new(),
            }),
            ["variant", name, kind] => types.last_mut()?.variants.push(VariantLines {
                name: (*name).to_owned(),
                kind: (*kind).to_owned(),
                members: Vec::new(),
            }),
            ["member", name, ty, rest @ ..] => {
                types.last_mut()?.variants.last_mut()?.members.push((
                    (*name).to_owned(),
                    (*ty).to_owned(),
                    !rest.contains(&"undescribed"),
                ));
            }
            _ => {}
        }
    }
    let named: BTreeMap<String, Arc<NamedType>> = types
        .iter()
        .map(|t| (t.name.clone(), NamedType::new(t.name.clone())))
        .collect();
    let resolve = |name: &str| named.get(name).map(|t| TypeShape::Named(t.clone()));
    for t in &types {
        if let Some(target) = named.get(&t.name) {
            target.define(type_def(t, &resolve));
        }
    }
    for words in &all {
        match words.as_slice() {
            ["definition", name] => definition = (*name).to_owned(),
            ["model", name, version, "table", table, rest @ ..] => models.push(ModelLines {
                name: (*name).to_owned(),
                version: version.trim_start_matches('v').parse().ok()?,
                table: (*table).to_owned(),
                custom: rest.contains(&"custom-validator"),
                fields: Vec::new(),
            }),
            ["field", name, ty, rest @ ..] => {
                let fields = &mut models.last_mut()?.fields;
                fields.push(FieldLine {
                    field: field_line(name, ty, rest, &resolve),
                    rules: Vec::new(),
                    links: Vec::new(),
                });
            }
            ["rule", rest @ ..] => {
                let line = models.last_mut()?.fields.last_mut()?;
                line.rules.push(rule_line(rest, &line.field));
            }
            ["link", target, policy, table] => {
                let line = models.last_mut()?.fields.last_mut()?;
                let on_delete = match *policy {
                    "cascade" => OnDelete::Cascade,
                    "set_null" => OnDelete::SetNull,
                    _ => OnDelete::Restrict,
                };
                line.links
                    .push(((*target).to_owned(), on_delete, (*table).to_owned()));
            }
            _ => {}
        }
    }
    let def: &'static str = leak(&definition);
    let mut out: Vec<DynModel> = models
        .into_iter()
        .map(|model| {
            let mut fields = Vec::new();
            let mut rules = Vec::new();
            let mut links = Vec::new();
            for line in model.fields {
                for rule in line.rules {
                    rules.push((line.field.name.clone(), rule));
                }
                for (target, on_delete, link_table) in line.links {
                    // `Definition/Model` for a link into another definition.
                    let (target_table, target) = match target.split_once('/') {
                        Some((_, name)) => (target.clone(), name.to_owned()),
                        None => (format!("{definition}/{target}"), target),
                    };
                    links.push(DynLink {
                        field: leak(&line.field.name),
                        table: leak(&link_table),
                        target_table: leak(&target_table),
                        target: leak(&target),
                        on_delete,
                        holds: Err(ShapeMismatch("the linked model is not described".into())),
                    });
                }
                fields.push(line.field);
            }
            DynModel::assemble(
                def,
                model.name,
                model.table,
                model.version,
                fields,
                rules,
                links,
                model.custom,
                version2,
            )
        })
        .collect();
    resolve_links(&mut out);
    Some(out)
}

/// Resolves how each link of `models` holds its target's key: the target's primary key
/// shape, known once every model is. Run per definition, and again by
/// [`super::dynamic::DynamicStore`] over the models of every definition of a database,
/// so that a link into another definition resolves too.
pub(crate) fn resolve_links(models: &mut [DynModel]) {
    let primaries: Vec<(String, Option<TypeShape>)> = models
        .iter()
        .map(|m| {
            (
                m.table.clone(),
                m.primary().and_then(|f| f.shape.clone().ok()),
            )
        })
        .collect();
    for model in models.iter_mut() {
        let fields = model.fields.clone();
        for link in &mut model.links {
            let field = fields.iter().find(|f| f.name == link.field);
            let key = primaries
                .iter()
                .find(|(table, _)| table == link.target_table)
                .and_then(|(_, k)| k.clone());
            link.holds = match (field.map(|f| &f.shape), key) {
                (Some(Ok(shape)), Some(key)) => link_arity(shape, &key).map(|a| (a, key)),
                (Some(Err(e)), _) => Err(e.clone()),
                _ => Err(ShapeMismatch(format!(
                    "the linked model `{}` or its primary key is not described",
                    link.target
                ))),
            };
        }
    }
}

/// How a field of shape `field` holds keys of shape `key`.
fn link_arity(field: &TypeShape, key: &TypeShape) -> Result<LinkArity, ShapeMismatch> {
    match field {
        f if f == key => Ok(LinkArity::One),
        TypeShape::Option(inner) if **inner == *key => Ok(LinkArity::Optional),
        TypeShape::Seq(inner) if **inner == *key => Ok(LinkArity::Many),
        _ => Err(ShapeMismatch(format!(
            "a link field of {} cannot hold the linked model's primary key ({})",
            field.describe(),
            key.describe()
        ))),
    }
}

fn field_line(
    name: &str,
    ty: &str,
    rest: &[&str],
    resolve: &dyn Fn(&str) -> Option<TypeShape>,
) -> DynField {
    let mut field = DynField {
        name: name.to_owned(),
        type_name: ty.to_owned(),
        shape: TypeShape::parse_with(ty, resolve)
            .and_then(|shape| shape.check_described().map(|()| shape)),
        primary: false,
        index: None,
    };
    let mut rest = rest;
    while let Some((word, tail)) = rest.split_first() {
        match (*word, tail) {
            ("primary", _) => field.primary = true,
            ("unique" | "index", [table, ..]) => {
                field.index = Some(((*table).to_owned(), *word == "unique"));
                rest = tail;
            }
            ("undescribed", _) => {
                field.shape = Err(ShapeMismatch(
                    "a #[serde(..)] attribute may change how the field is serialized, so its \
                     shape is not described"
                        .into(),
                ));
            }
            _ => {}
        }
        rest = &rest[1..];
    }
    field
}

/// A `rule` line of `field`; a range bound is decoded with the field's shape.
fn rule_line(words: &[&str], field: &DynField) -> Result<DynRule, ShapeMismatch> {
    let number = |w: &str| -> Result<Option<usize>, ShapeMismatch> {
        if w == "-" {
            return Ok(None);
        }
        w.parse()
            .map(Some)
            .map_err(|_| ShapeMismatch(format!("`{w}` is not a length")))
    };
    let value = |w: &str| -> Result<Option<Value>, ShapeMismatch> {
        if w == "-" {
            return Ok(None);
        }
        let bytes = unhex(w).ok_or_else(|| ShapeMismatch(format!("`{w}` is not hex")))?;
        let shape = field.shape.as_ref().map_err(Clone::clone)?;
        let mut input = bytes.as_slice();
        let v = shape.decode(&mut input)?;
        if !input.is_empty() {
            return Err(ShapeMismatch("a range bound has bytes left over".into()));
        }
        Ok(Some(v))
    };
    let rule = match words {
        ["non_empty"] => DynRule::NonEmpty,
        ["len", min, max] => DynRule::Len {
            min: number(min)?,
            max: number(max)?,
        },
        ["range", min, max] => DynRule::Range {
            min: value(min)?,
            max: value(max)?,
        },
        other => {
            return Err(ShapeMismatch(format!(
                "the rule `{}` is not known to this version",
                other.join(" ")
            )));
        }
    };
    Ok(rule)
}

/// The description of a struct or an enum from its lines.
fn type_def(t: &TypeLines, resolve: &dyn Fn(&str) -> Option<TypeShape>) -> TypeDef {
    if t.undescribed {
        return TypeDef::Undescribed(
            "a #[serde(..)] attribute or generic parameters may change how it is serialized".into(),
        );
    }
    let mut variants = Vec::new();
    for VariantLines {
        name,
        kind,
        members,
    } in &t.variants
    {
        let mut shapes = Vec::new();
        for (member, ty, described) in members {
            if !described {
                return TypeDef::Undescribed(format!(
                    "a #[serde(..)] attribute on `{member}` may change how it is serialized"
                ));
            }
            match TypeShape::parse_with(ty, resolve) {
                Ok(shape) => shapes.push((member.clone(), shape)),
                Err(e) => return TypeDef::Undescribed(format!("member `{member}`: {e}")),
            }
        }
        let fields = match (kind.as_str(), shapes.len()) {
            ("unit", 0) => Fields::Unit,
            ("newtype", 1) => Fields::Newtype(shapes.remove(0).1),
            ("tuple", _) => Fields::Tuple(shapes.into_iter().map(|(_, s)| s).collect()),
            ("named", _) => Fields::Named(shapes),
            (other, n) => {
                return TypeDef::Undescribed(format!(
                    "`{name}` is of kind `{other}` with {n} members, which this version does \
                     not read"
                ));
            }
        };
        variants.push((name.clone(), fields));
    }
    if t.is_enum {
        TypeDef::Enum(variants)
    } else {
        match variants.pop() {
            Some((_, fields)) => TypeDef::Struct(fields),
            None => TypeDef::Undescribed("the struct has no description".into()),
        }
    }
}

/// The static model description the write pipeline works with, for a model read from
/// its shape.
pub(crate) fn model_info(
    name: &str,
    table: &str,
    version: u16,
    fields: &[DynField],
) -> &'static ModelInfo {
    let secondary: Vec<SecondaryKeyInfo> = fields
        .iter()
        .filter_map(|f| {
            let (table, unique) = f.index.as_ref()?;
            Some(SecondaryKeyInfo {
                field: leak(&f.name),
                table: leak(table),
                unique: *unique,
                key_type: leak(&f.type_name),
            })
        })
        .collect();
    Box::leak(Box::new(ModelInfo {
        name: leak(name),
        table: leak(table),
        version,
        primary_key_type: leak(
            fields
                .iter()
                .find(|f| f.primary)
                .map_or("", |f| f.type_name.as_str()),
        ),
        secondary_keys: Box::leak(secondary.into_boxed_slice()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "netabase shape 2
definition Lib
struct Address named
  member street String
  member zip Option<u32>
enum Status
  variant Active unit
  variant Moved named
    member to Address
struct Opaque named undescribed
  member x u8
model Author v3 table Lib/Author custom-validator
  field id u64 primary
  field name String unique Lib/Author/name
    rule non_empty
    rule len - 20
  field born i32
    rule range 00 -
  field status Status
model Book v0 table Lib/Book
  field isbn String primary
  field author u64
    link Author cascade Lib/Book/author
  field editors Vec<u64>
    link Author set_null Lib/Book/editors
  field wrong String
    link Author restrict Lib/Book/wrong
  field hidden Opaque
";

    #[test]
    fn a_shape_of_version_2_describes_types_rules_and_links() -> Result<(), ShapeMismatch> {
        let models = parse_shape(TEXT).ok_or_else(|| ShapeMismatch("no shape".into()))?;
        let [author, book] = models.as_slice() else {
            return Err(ShapeMismatch("two models expected".into()));
        };
        assert_eq!((author.version, author.custom_validator), (3, true));
        assert!(author.rules_described);
        assert_eq!(
            author.rules,
            vec![
                ("name".into(), Ok(DynRule::NonEmpty)),
                (
                    "name".into(),
                    Ok(DynRule::Len {
                        min: None,
                        max: Some(20)
                    })
                ),
                (
                    "born".into(),
                    Ok(DynRule::Range {
                        min: Some(Value::UInt(0)),
                        max: None
                    })
                ),
            ]
        );
        assert_eq!(author.secondary_keys_info()[0].table, "Lib/Author/name");
        let status = author.fields[3].shape.as_ref().map_err(Clone::clone)?;
        assert_eq!(status.describe(), "a variant of `Status`");
        assert_eq!(author.undescribed(), None);
        let holds: Vec<_> = book
            .links
            .iter()
            .map(|l| (l.field, l.target_table, l.on_delete, l.holds.clone()))
            .collect();
        assert_eq!(holds[0].0, "author");
        assert_eq!(holds[0].1, "Lib/Author");
        assert_eq!(holds[0].2, OnDelete::Cascade);
        assert_eq!(holds[0].3, Ok((LinkArity::One, TypeShape::U64)));
        assert_eq!(holds[1].3, Ok((LinkArity::Many, TypeShape::U64)));
        let wrong = holds[2].3.clone().err().map(|e| e.0).unwrap_or_default();
        assert!(
            wrong.contains("cannot hold the linked model's primary key"),
            "{wrong}"
        );
        let hidden = book.undescribed().unwrap_or_default();
        assert!(
            hidden.contains("field `Book.hidden`: the type `Opaque` is not described"),
            "{hidden}"
        );
        Ok(())
    }

    #[test]
    fn a_shape_of_version_1_reads_without_rules_and_an_unknown_header_does_not() {
        let v1 = "netabase shape 1\ndefinition D\nmodel M v0 table D/M\n  field id u64 primary\n";
        let models = parse_shape(v1).unwrap_or_default();
        assert_eq!(models.len(), 1);
        assert!(!models[0].rules_described);
        assert!(parse_shape("netabase shape 9\ndefinition D\n").is_none());
    }

    #[test]
    fn hex_round_trips() {
        assert_eq!(
            unhex(&hex(&[0, 1, 0xab, 0xff])),
            Some(vec![0, 1, 0xab, 0xff])
        );
        assert_eq!(unhex("abc"), None);
        assert_eq!(unhex("zz"), None);
    }
}
