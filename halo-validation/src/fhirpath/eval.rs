//! FHIRPath evaluation over `serde_json::Value`.
//!
//! JSON carries no types, so type tests work only where the type is known: values reached through a
//! choice element (`valueQuantity` is a `Quantity`), resources (`resourceType`) and JSON booleans
//! and numbers. Anything else makes the evaluation [`Unsupported`], which the validator reports as
//! "not evaluated" rather than guessing.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::parse::{BinOp, Expr};

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unsupported(pub(crate) String);

type Eval<T> = Result<T, Unsupported>;

fn unsupported<T>(why: impl Into<String>) -> Eval<T> {
    Err(Unsupported(why.into()))
}

/// One item of a FHIRPath collection.
#[derive(Debug, Clone)]
pub(crate) enum Item<'a> {
    /// A JSON value from the resource, with its FHIR type when known.
    Node(&'a Value, Option<&'a str>),
    /// A JSON object held as a map (the resource being validated).
    Object(&'a Map<String, Value>),
    /// A computed string.
    Str(String),
    /// A computed boolean.
    Bool(bool),
    /// A computed integer.
    Int(i64),
    /// A computed decimal.
    Dec(f64),
}

impl<'a> Item<'a> {
    /// The item as a JSON object, if it is one.
    fn object(&self) -> Option<&'a Map<String, Value>> {
        match *self {
            Item::Object(object) | Item::Node(Value::Object(object), _) => Some(object),
            _ => None,
        }
    }
}

/// The environment of an evaluation.
pub(crate) struct Env<'a, 'd> {
    /// `%resource`: the resource that holds the focus.
    pub(crate) resource: &'a Map<String, Value>,
    /// `%rootResource`: the outermost resource (differs for contained and Bundle resources).
    pub(crate) root: &'a Map<String, Value>,
    /// Whether a name is a FHIR type name (used to read choice elements: `valueQuantity`).
    pub(crate) is_type: &'d dyn Fn(&str) -> bool,
}

/// Evaluates `expr` with `focus` as input and returns the resulting collection.
pub(crate) fn evaluate<'a>(expr: &Expr, focus: Item<'a>, env: &Env<'a, '_>) -> Eval<Vec<Item<'a>>> {
    eval(expr, &[focus], env)
}

/// The boolean value of a collection (empty is `None`).
pub(crate) fn to_bool(items: &[Item<'_>]) -> Eval<Option<bool>> {
    match items {
        [] => Ok(None),
        [Item::Bool(b)] | [Item::Node(Value::Bool(b), _)] => Ok(Some(*b)),
        [_] => Ok(Some(true)),
        _ => unsupported("a collection of several items used as a boolean"),
    }
}

fn eval<'a>(expr: &Expr, input: &[Item<'a>], env: &Env<'a, '_>) -> Eval<Vec<Item<'a>>> {
    Ok(match expr {
        Expr::Str(s) => vec![Item::Str(s.clone())],
        Expr::Bool(b) => vec![Item::Bool(*b)],
        Expr::Int(i) => vec![Item::Int(*i)],
        Expr::Dec(d) => vec![Item::Dec(*d)],
        Expr::DateTime(text) => vec![Item::Str(text.clone())],
        Expr::EmptySet => Vec::new(),
        Expr::This => input.to_vec(),
        Expr::Env(name) => match name.as_str() {
            "resource" | "context" => vec![Item::Object(env.resource)],
            "rootResource" => vec![Item::Object(env.root)],
            "ucum" => vec![Item::Str("http://unitsofmeasure.org".into())],
            "sct" => vec![Item::Str("http://snomed.info/sct".into())],
            "loinc" => vec![Item::Str("http://loinc.org".into())],
            other => return unsupported(format!("unknown environment variable %{other}")),
        },
        Expr::Ident(name) => {
            // A type name at the start of a path names the resource itself (`Patient.name`).
            if name.starts_with(char::is_uppercase)
                && let [item] = input
                && item
                    .object()
                    .and_then(|o| o.get("resourceType"))
                    .and_then(Value::as_str)
                    == Some(name)
            {
                return Ok(input.to_vec());
            }
            members(input, name, env)
        }
        Expr::Member(target, name) => members(&eval(target, input, env)?, name, env),
        Expr::Index(target, index) => {
            let items = eval(target, input, env)?;
            match to_integer(&eval(index, input, env)?)? {
                Some(i) => usize::try_from(i)
                    .ok()
                    .and_then(|i| items.get(i).cloned())
                    .into_iter()
                    .collect(),
                None => Vec::new(),
            }
        }
        Expr::Negate(inner) => match eval(inner, input, env)?.as_slice() {
            [] => Vec::new(),
            [item] => match number(item) {
                Some(Num::Int(i)) => vec![Item::Int(i.saturating_neg())],
                Some(Num::Dec(d)) => vec![Item::Dec(-d)],
                None => return unsupported("negation of a non-number"),
            },
            _ => return unsupported("negation of several items"),
        },
        Expr::TypeOp(is, target, type_name) => {
            let items = eval(target, input, env)?;
            if *is {
                match items.as_slice() {
                    [] => Vec::new(),
                    [item] => vec![Item::Bool(has_type(item, type_name)?)],
                    _ => return unsupported("`is` on several items"),
                }
            } else {
                filter_type(items, type_name)?
            }
        }
        Expr::Binary(op, left, right) => binary(*op, left, right, input, env)?,
        Expr::Call(target, name, args) => {
            let items = match target {
                Some(target) => eval(target, input, env)?,
                None => input.to_vec(),
            };
            call(name, items, args, input, env)?
        }
    })
}

/// `name` on every object of the collection, reading choice elements (`value` finds
/// `valueQuantity`) and flattening arrays.
fn members<'a>(input: &[Item<'a>], name: &str, env: &Env<'a, '_>) -> Vec<Item<'a>> {
    let mut out = Vec::new();
    for item in input {
        let Some(object) = item.object() else {
            continue;
        };
        if let Some(value) = object.get(name) {
            push_flat(&mut out, value, None);
            continue;
        }
        for (key, value) in object {
            if let Some(suffix) = key.strip_prefix(name)
                && suffix.starts_with(char::is_uppercase)
                && (env.is_type)(suffix)
            {
                push_flat(&mut out, value, Some(suffix));
            }
        }
    }
    out
}

fn push_flat<'a>(out: &mut Vec<Item<'a>>, value: &'a Value, hint: Option<&'a str>) {
    match value {
        Value::Array(items) => {
            for item in items {
                if !item.is_null() {
                    out.push(Item::Node(item, hint));
                }
            }
        }
        Value::Null => {}
        other => out.push(Item::Node(other, hint)),
    }
}

fn has_type(item: &Item<'_>, type_name: &str) -> Eval<bool> {
    let name = type_name
        .strip_prefix("FHIR.")
        .or_else(|| type_name.strip_prefix("System."))
        .unwrap_or(type_name);
    let same = |other: &str| other.eq_ignore_ascii_case(name);
    Ok(match item {
        Item::Str(_) => same("string"),
        Item::Bool(_) => same("boolean"),
        Item::Int(_) => same("integer"),
        Item::Dec(_) => same("decimal"),
        Item::Node(value, Some(hint)) => {
            same(hint)
                || (matches!(name, "string" | "uri")
                    && matches!(value, Value::String(_))
                    && string_subtype(hint, name))
        }
        Item::Object(_) | Item::Node(Value::Object(_), None) => {
            match item.object().and_then(|o| o.get("resourceType")) {
                Some(Value::String(resource_type)) => {
                    resource_type == name || matches!(name, "Resource" | "DomainResource")
                }
                _ => return unsupported(format!("the type of an element is unknown (is {name})")),
            }
        }
        Item::Node(Value::Bool(_), None) => same("boolean"),
        Item::Node(Value::Number(n), None) if name == "decimal" => {
            n.is_f64() || n.is_i64() || n.is_u64()
        }
        Item::Node(Value::Number(n), None) if name == "integer" => n.is_i64() || n.is_u64(),
        Item::Node(_, None) => {
            return unsupported(format!(
                "the FHIR type of a JSON value is unknown (is {name})"
            ));
        }
    })
}

/// Whether primitive `hint` is derived from `base` (`code` is a `string`, `url` a `uri`).
fn string_subtype(hint: &str, base: &str) -> bool {
    let hint = hint.to_ascii_lowercase();
    match base {
        "string" => matches!(hint.as_str(), "code" | "id" | "markdown"),
        "uri" => matches!(hint.as_str(), "url" | "canonical" | "oid" | "uuid"),
        _ => false,
    }
}

fn filter_type<'a>(items: Vec<Item<'a>>, type_name: &str) -> Eval<Vec<Item<'a>>> {
    let mut out = Vec::new();
    for item in items {
        if has_type(&item, type_name)? {
            out.push(item);
        }
    }
    Ok(out)
}

fn binary<'a>(
    op: BinOp,
    left: &Expr,
    right: &Expr,
    input: &[Item<'a>],
    env: &Env<'a, '_>,
) -> Eval<Vec<Item<'a>>> {
    let l = eval(left, input, env)?;
    // `implies`, `and` and `or` short-circuit where the result is settled, as FHIRPath allows.
    match op {
        BinOp::And | BinOp::Or | BinOp::Xor | BinOp::Implies => {
            let a = to_bool(&l)?;
            let settled = match (op, a) {
                (BinOp::And, Some(false)) => Some(false),
                (BinOp::Or, Some(true)) => Some(true),
                (BinOp::Implies, Some(false)) => Some(true),
                _ => None,
            };
            if let Some(result) = settled {
                return Ok(vec![Item::Bool(result)]);
            }
            let b = to_bool(&eval(right, input, env)?)?;
            let result = match op {
                BinOp::And => match (a, b) {
                    (Some(true), Some(true)) => Some(true),
                    (_, Some(false)) => Some(false),
                    _ => None,
                },
                BinOp::Or => match (a, b) {
                    (_, Some(true)) => Some(true),
                    (Some(false), Some(false)) => Some(false),
                    _ => None,
                },
                BinOp::Xor => match (a, b) {
                    (Some(x), Some(y)) => Some(x != y),
                    _ => None,
                },
                _ => match (a, b) {
                    (Some(true), Some(y)) => Some(y),
                    (None, Some(true)) => Some(true),
                    _ => None,
                },
            };
            return Ok(result.map(Item::Bool).into_iter().collect());
        }
        _ => {}
    }
    let r = eval(right, input, env)?;
    Ok(match op {
        BinOp::Union => {
            let mut out = Vec::new();
            for item in l.into_iter().chain(r) {
                if !contains_item(&out, &item) {
                    out.push(item);
                }
            }
            out
        }
        BinOp::In | BinOp::Contains => {
            let (needle, haystack) = if op == BinOp::In { (l, r) } else { (r, l) };
            match needle.as_slice() {
                [] => Vec::new(),
                [item] => vec![Item::Bool(contains_item(&haystack, item))],
                _ => return unsupported("membership test of several items"),
            }
        }
        BinOp::Eq | BinOp::NotEq | BinOp::Equiv | BinOp::NotEquiv => {
            let equivalent = matches!(op, BinOp::Equiv | BinOp::NotEquiv);
            if (l.is_empty() || r.is_empty()) && !equivalent {
                return Ok(Vec::new());
            }
            let same = l.len() == r.len() && l.iter().zip(&r).all(|(a, b)| equal(a, b));
            vec![Item::Bool(if matches!(op, BinOp::Eq | BinOp::Equiv) {
                same
            } else {
                !same
            })]
        }
        BinOp::Lt | BinOp::Gt | BinOp::Le | BinOp::Ge => match (l.as_slice(), r.as_slice()) {
            ([a], [b]) => match compare(a, b)? {
                Some(ordering) => vec![Item::Bool(match op {
                    BinOp::Lt => ordering == Ordering::Less,
                    BinOp::Gt => ordering == Ordering::Greater,
                    BinOp::Le => ordering != Ordering::Greater,
                    _ => ordering != Ordering::Less,
                })],
                None => Vec::new(),
            },
            ([], _) | (_, []) => Vec::new(),
            _ => return unsupported("comparison of several items"),
        },
        BinOp::Concat => {
            let text = |items: &[Item<'_>]| -> Eval<String> {
                match items {
                    [] => Ok(String::new()),
                    [item] => Ok(to_text(item).unwrap_or_default()),
                    _ => unsupported("`&` on several items"),
                }
            };
            vec![Item::Str(text(&l)? + &text(&r)?)]
        }
        BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div | BinOp::IntDiv | BinOp::Mod => {
            match (l.as_slice(), r.as_slice()) {
                ([a], [b]) => arithmetic(op, a, b)?,
                ([], _) | (_, []) => Vec::new(),
                _ => return unsupported("arithmetic on several items"),
            }
        }
        _ => Vec::new(),
    })
}

fn arithmetic<'a>(op: BinOp, a: &Item<'a>, b: &Item<'a>) -> Eval<Vec<Item<'a>>> {
    if op == BinOp::Add
        && let (Some(x), Some(y)) = (string(a), string(b))
    {
        return Ok(vec![Item::Str(format!("{x}{y}"))]);
    }
    let (Some(x), Some(y)) = (number(a), number(b)) else {
        return unsupported("arithmetic on values that are not numbers");
    };
    Ok(match (x, y) {
        (Num::Int(x), Num::Int(y)) => match op {
            BinOp::Add => vec![Item::Int(x.saturating_add(y))],
            BinOp::Sub => vec![Item::Int(x.saturating_sub(y))],
            BinOp::Mul => vec![Item::Int(x.saturating_mul(y))],
            // Saturating like the other operators: only i64::MIN by -1 overflows, and its
            // remainder is 0.
            BinOp::IntDiv if y != 0 => vec![Item::Int(x.checked_div_euclid(y).unwrap_or(i64::MAX))],
            BinOp::Mod if y != 0 => vec![Item::Int(x.checked_rem_euclid(y).unwrap_or(0))],
            BinOp::Div if y != 0 => vec![Item::Dec(x as f64 / y as f64)],
            _ => Vec::new(),
        },
        (x, y) => {
            let (x, y) = (x.as_f64(), y.as_f64());
            match op {
                BinOp::Add => vec![Item::Dec(x + y)],
                BinOp::Sub => vec![Item::Dec(x - y)],
                BinOp::Mul => vec![Item::Dec(x * y)],
                BinOp::Div if y != 0.0 => vec![Item::Dec(x / y)],
                _ => Vec::new(),
            }
        }
    })
}

#[derive(Debug, Clone, Copy)]
enum Num {
    Int(i64),
    Dec(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Dec(d) => d,
        }
    }
}

fn number(item: &Item<'_>) -> Option<Num> {
    match item {
        Item::Int(i) => Some(Num::Int(*i)),
        Item::Dec(d) => Some(Num::Dec(*d)),
        Item::Node(Value::Number(n), _) => n
            .as_i64()
            .map(Num::Int)
            .or_else(|| n.as_f64().map(Num::Dec)),
        _ => None,
    }
}

fn string<'i>(item: &'i Item<'_>) -> Option<&'i str> {
    match item {
        Item::Str(s) => Some(s),
        Item::Node(Value::String(s), _) => Some(s),
        _ => None,
    }
}

fn to_text(item: &Item<'_>) -> Option<String> {
    match item {
        Item::Str(s) => Some(s.clone()),
        Item::Bool(b) => Some(b.to_string()),
        Item::Int(i) => Some(i.to_string()),
        Item::Dec(d) => Some(d.to_string()),
        Item::Node(Value::String(s), _) => Some(s.clone()),
        Item::Node(Value::Bool(b), _) => Some(b.to_string()),
        Item::Node(Value::Number(n), _) => Some(n.to_string()),
        Item::Node(_, _) | Item::Object(_) => None,
    }
}

fn equal(a: &Item<'_>, b: &Item<'_>) -> bool {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return (x.as_f64() - y.as_f64()).abs() < f64::EPSILON;
    }
    if let (Some(x), Some(y)) = (string(a), string(b)) {
        return x == y;
    }
    match (a, b) {
        (Item::Bool(x), Item::Bool(y)) => x == y,
        (Item::Bool(x), Item::Node(Value::Bool(y), _))
        | (Item::Node(Value::Bool(y), _), Item::Bool(x)) => x == y,
        (Item::Node(x, _), Item::Node(y, _)) => x == y,
        _ => match (a.object(), b.object()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

fn contains_item(items: &[Item<'_>], needle: &Item<'_>) -> bool {
    items.iter().any(|item| equal(item, needle))
}

/// Orders two values: numbers, strings, date/times (by their common precision; `None` when one is
/// more precise and they agree on the common part, as FHIRPath says), and Quantities of the same
/// unit.
fn compare(a: &Item<'_>, b: &Item<'_>) -> Eval<Option<Ordering>> {
    if let (Some(x), Some(y)) = (number(a), number(b)) {
        return Ok(x.as_f64().partial_cmp(&y.as_f64()));
    }
    if let (Some(x), Some(y)) = (string(a), string(b)) {
        if looks_temporal(x) && looks_temporal(y) {
            let (x, y) = (strip_zone(x), strip_zone(y));
            // Compared as bytes: a byte offset into text that came over the network may fall
            // inside a multi-byte character, and UTF-8 bytes order as their characters do.
            let (x, y) = (x.as_bytes(), y.as_bytes());
            let common = x.len().min(y.len());
            let ordering = x[..common].cmp(&y[..common]);
            return Ok(if ordering == Ordering::Equal && x.len() != y.len() {
                None
            } else {
                Some(ordering)
            });
        }
        return Ok(Some(x.cmp(y)));
    }
    if let (Some(x), Some(y)) = (a.object(), b.object()) {
        let unit = |o: &serde_json::Map<String, Value>| {
            o.get("code")
                .or_else(|| o.get("unit"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        if unit(x) != unit(y) {
            return unsupported("comparison of quantities in different units");
        }
        let (Some(vx), Some(vy)) = (x.get("value"), y.get("value")) else {
            return Ok(None);
        };
        return compare(&Item::Node(vx, None), &Item::Node(vy, None));
    }
    unsupported("comparison of values of different kinds")
}

fn looks_temporal(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() >= 4 && bytes[..4].iter().all(u8::is_ascii_digit)
}

/// Drops a time-zone suffix; values compared here are assumed to share one zone.
fn strip_zone(text: &str) -> &str {
    let text = text.trim_end_matches('Z');
    match text.find('T') {
        Some(t) => match text[t..].rfind(['+', '-']) {
            Some(zone) => &text[..t + zone],
            None => text,
        },
        None => text,
    }
}

fn to_integer(items: &[Item<'_>]) -> Eval<Option<i64>> {
    match items {
        [] => Ok(None),
        [item] => match number(item) {
            Some(Num::Int(i)) => Ok(Some(i)),
            _ => unsupported("an index that is not an integer"),
        },
        _ => unsupported("an index of several items"),
    }
}

fn single_string(items: &[Item<'_>], function: &str) -> Eval<Option<String>> {
    match items {
        [] => Ok(None),
        [item] => Ok(to_text(item)),
        _ => unsupported(format!("{function}() on several items")),
    }
}

fn each<'a>(
    items: &[Item<'a>],
    arg: &Expr,
    env: &Env<'a, '_>,
) -> impl Iterator<Item = Eval<Vec<Item<'a>>>> {
    items
        .iter()
        .map(move |item| eval(arg, std::slice::from_ref(item), env))
}

fn call<'a>(
    name: &str,
    items: Vec<Item<'a>>,
    args: &[Expr],
    input: &[Item<'a>],
    env: &Env<'a, '_>,
) -> Eval<Vec<Item<'a>>> {
    let arg = |i: usize| {
        args.get(i)
            .ok_or_else(|| Unsupported(format!("{name}() needs more arguments")))
    };
    let one = |b: bool| vec![Item::Bool(b)];
    Ok(match name {
        "empty" => one(items.is_empty()),
        "exists" => {
            if let Some(criteria) = args.first() {
                let mut found = false;
                for result in each(&items, criteria, env) {
                    if to_bool(&result?)? == Some(true) {
                        found = true;
                        break;
                    }
                }
                one(found)
            } else {
                one(!items.is_empty())
            }
        }
        "not" => match to_bool(&items)? {
            Some(b) => one(!b),
            None => Vec::new(),
        },
        "where" => {
            let criteria = arg(0)?;
            let mut out = Vec::new();
            for item in items {
                if to_bool(&eval(criteria, std::slice::from_ref(&item), env)?)? == Some(true) {
                    out.push(item);
                }
            }
            out
        }
        "select" => {
            let projection = arg(0)?;
            let mut out = Vec::new();
            for result in each(&items, projection, env) {
                out.extend(result?);
            }
            out
        }
        "all" => {
            let criteria = arg(0)?;
            let mut all = true;
            for result in each(&items, criteria, env) {
                if to_bool(&result?)? != Some(true) {
                    all = false;
                    break;
                }
            }
            one(all)
        }
        "allTrue" | "allFalse" | "anyTrue" | "anyFalse" => {
            let mut values = Vec::new();
            for item in &items {
                values.push(to_bool(std::slice::from_ref(item))? == Some(true));
            }
            one(match name {
                "allTrue" => values.iter().all(|v| *v),
                "allFalse" => values.iter().all(|v| !*v),
                "anyTrue" => values.iter().any(|v| *v),
                _ => values.iter().any(|v| !*v),
            })
        }
        "count" => vec![Item::Int(i64::try_from(items.len()).unwrap_or(i64::MAX))],
        "first" => items.into_iter().take(1).collect(),
        "last" => items.into_iter().last().into_iter().collect(),
        "tail" => items.into_iter().skip(1).collect(),
        "distinct" => {
            let mut out: Vec<Item<'a>> = Vec::new();
            for item in items {
                if !contains_item(&out, &item) {
                    out.push(item);
                }
            }
            out
        }
        "isDistinct" => {
            let distinct = items
                .iter()
                .enumerate()
                .all(|(i, item)| !contains_item(&items[..i], item));
            one(distinct)
        }
        "intersect" => {
            let other = eval(arg(0)?, input, env)?;
            let mut out: Vec<Item<'a>> = Vec::new();
            for item in items {
                if contains_item(&other, &item) && !contains_item(&out, &item) {
                    out.push(item);
                }
            }
            out
        }
        "union" | "combine" => {
            let other = eval(arg(0)?, input, env)?;
            let mut out = items;
            for item in other {
                if name == "combine" || !contains_item(&out, &item) {
                    out.push(item);
                }
            }
            out
        }
        "iif" => {
            let condition = to_bool(&eval(arg(0)?, &items, env)?)?;
            if condition == Some(true) {
                eval(arg(1)?, input, env)?
            } else if let Some(otherwise) = args.get(2) {
                eval(otherwise, input, env)?
            } else {
                Vec::new()
            }
        }
        "ofType" => filter_type(items, &type_argument(arg(0)?)?)?,
        "as" => filter_type(items, &type_argument(arg(0)?)?)?,
        "is" => match items.as_slice() {
            [] => Vec::new(),
            [item] => one(has_type(item, &type_argument(arg(0)?)?)?),
            _ => return unsupported("is() on several items"),
        },
        "hasValue" => one(matches!(
            items.as_slice(),
            [
                Item::Node(Value::String(_) | Value::Bool(_) | Value::Number(_), _)
                    | Item::Str(_)
                    | Item::Bool(_)
                    | Item::Int(_)
                    | Item::Dec(_)
            ]
        )),
        "children" => {
            let mut out = Vec::new();
            for item in &items {
                if let Some(object) = item.object() {
                    for value in object.values() {
                        push_flat(&mut out, value, None);
                    }
                }
            }
            out
        }
        "descendants" => {
            let mut out = Vec::new();
            let mut stack: Vec<&'a Map<String, Value>> =
                items.iter().filter_map(Item::object).collect();
            while let Some(object) = stack.pop() {
                for child in object.values() {
                    let mut children = Vec::new();
                    push_flat(&mut children, child, None);
                    for child in children {
                        if let Some(o) = child.object() {
                            stack.push(o);
                        }
                        out.push(child);
                    }
                }
            }
            out
        }
        "trace" => items,
        "extension" => {
            let url = single_string(&eval(arg(0)?, input, env)?, "extension")?;
            members(&items, "extension", env)
                .into_iter()
                .filter(|ext| match ext {
                    Item::Node(value, _) => {
                        value.get("url").and_then(Value::as_str) == url.as_deref()
                    }
                    _ => false,
                })
                .collect()
        }
        "toString" => single_string(&items, name)?
            .map(Item::Str)
            .into_iter()
            .collect(),
        "length" => single_string(&items, name)?
            .map(|s| Item::Int(i64::try_from(s.chars().count()).unwrap_or(i64::MAX)))
            .into_iter()
            .collect(),
        "lower" | "upper" => single_string(&items, name)?
            .map(|s| {
                Item::Str(if name == "lower" {
                    s.to_lowercase()
                } else {
                    s.to_uppercase()
                })
            })
            .into_iter()
            .collect(),
        "startsWith" | "endsWith" | "contains" => {
            let Some(text) = single_string(&items, name)? else {
                return Ok(Vec::new());
            };
            let Some(other) = single_string(&eval(arg(0)?, input, env)?, name)? else {
                return Ok(Vec::new());
            };
            one(match name {
                "startsWith" => text.starts_with(&other),
                "endsWith" => text.ends_with(&other),
                _ => text.contains(&other),
            })
        }
        "substring" => {
            let Some(text) = single_string(&items, name)? else {
                return Ok(Vec::new());
            };
            let chars: Vec<char> = text.chars().collect();
            let start = to_integer(&eval(arg(0)?, input, env)?)?;
            let length = match args.get(1) {
                Some(expr) => to_integer(&eval(expr, input, env)?)?,
                None => None,
            };
            match start.and_then(|s| usize::try_from(s).ok()) {
                Some(start) if start < chars.len() => {
                    let end = length
                        .and_then(|l| usize::try_from(l).ok())
                        .map_or(chars.len(), |l| (start + l).min(chars.len()));
                    vec![Item::Str(chars[start..end].iter().collect())]
                }
                _ => Vec::new(),
            }
        }
        "toInteger" => match items.as_slice() {
            [] => Vec::new(),
            [item] => match number(item) {
                Some(Num::Int(i)) => vec![Item::Int(i)],
                _ => string(item)
                    .and_then(|s| s.parse().ok())
                    .map(Item::Int)
                    .into_iter()
                    .collect(),
            },
            _ => return unsupported("toInteger() on several items"),
        },
        other => return unsupported(format!("the function {other}() is not supported")),
    })
}

/// Functions [`call`] implements.
const FUNCTIONS: &[&str] = &[
    "empty",
    "exists",
    "not",
    "where",
    "select",
    "all",
    "allTrue",
    "allFalse",
    "anyTrue",
    "anyFalse",
    "count",
    "first",
    "last",
    "tail",
    "distinct",
    "isDistinct",
    "intersect",
    "union",
    "combine",
    "iif",
    "ofType",
    "as",
    "is",
    "hasValue",
    "children",
    "descendants",
    "trace",
    "extension",
    "toString",
    "length",
    "lower",
    "upper",
    "startsWith",
    "endsWith",
    "contains",
    "substring",
    "toInteger",
];

/// What in an expression is outside the subset, found without evaluating it: unknown functions
/// always fail; a type test on a FHIR primitive (`as(canonical)`) fails whenever the value's type
/// is not known from a choice element.
pub(crate) fn unsupported_features(expr: &Expr) -> Vec<String> {
    let mut found = Vec::new();
    visit(expr, &mut found);
    found.sort();
    found.dedup();
    found
}

fn visit(expr: &Expr, found: &mut Vec<String>) {
    let type_test = |name: &str, found: &mut Vec<String>| {
        let primitive = name.starts_with(char::is_lowercase)
            && !matches!(name, "boolean" | "integer" | "decimal");
        if primitive {
            found.push(format!(
                "type test on `{name}` (needs the FHIR type of a JSON string)"
            ));
        }
    };
    match expr {
        Expr::Member(target, _) | Expr::Negate(target) => visit(target, found),
        Expr::Index(a, b) | Expr::Binary(_, a, b) => {
            visit(a, found);
            visit(b, found);
        }
        Expr::TypeOp(_, target, name) => {
            visit(target, found);
            type_test(name, found);
        }
        Expr::Call(target, name, args) => {
            if let Some(target) = target {
                visit(target, found);
            }
            if !FUNCTIONS.contains(&name.as_str()) {
                found.push(format!("function {name}()"));
            }
            if matches!(name.as_str(), "as" | "ofType" | "is")
                && let Some(Ok(arg)) = args.first().map(type_argument)
            {
                type_test(&arg, found);
            }
            for arg in args {
                visit(arg, found);
            }
        }
        _ => {}
    }
}

fn type_argument(expr: &Expr) -> Eval<String> {
    match expr {
        Expr::Ident(name) => Ok(name.clone()),
        Expr::Member(target, name) => Ok(format!("{}.{name}", type_argument(target)?)),
        _ => unsupported("a type argument that is not a type name"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::fhirpath::parse;

    fn check(expression: &str, focus: &Value) -> Eval<Option<bool>> {
        let expr = parse(expression).unwrap();
        let is_type = |name: &str| matches!(name, "Quantity" | "String" | "DateTime" | "Period");
        let object = focus.as_object().unwrap();
        let env = Env {
            resource: object,
            root: object,
            is_type: &is_type,
        };
        to_bool(&evaluate(&expr, Item::Node(focus, None), &env)?)
    }

    #[test]
    fn choice_elements_are_read_through_their_base_name() {
        let obs = json!({"resourceType": "Observation", "valueQuantity": {"value": 1}, "dataAbsentReason": {"text": "x"}});
        assert_eq!(
            check("dataAbsentReason.empty() or value.empty()", &obs),
            Ok(Some(false))
        );
        assert_eq!(
            check("value.ofType(Quantity).exists()", &obs),
            Ok(Some(true))
        );
        // `periodMax` is not a choice of `period`: `Max` is no type.
        let repeat = json!({"periodMax": 2});
        assert_eq!(
            check("periodMax.empty() or period.exists()", &repeat),
            Ok(Some(false))
        );
    }

    #[test]
    fn three_valued_logic_and_implies() {
        let v = json!({"a": true});
        assert_eq!(check("b.exists() implies c.exists()", &v), Ok(Some(true)));
        assert_eq!(check("a implies b", &v), Ok(None));
        assert_eq!(check("a xor b.exists()", &v), Ok(Some(true)));
    }

    #[test]
    fn dates_compare_by_common_precision() {
        let p = json!({"start": "2024-01-15", "end": "2024-01-14T10:00:00Z"});
        assert_eq!(check("start <= end", &p), Ok(Some(false)));
        let q = json!({"start": "2024-01", "end": "2024-01-14"});
        assert_eq!(check("start <= end", &q), Ok(None));
    }

    // REQ: HARD-02
    #[test]
    fn integer_overflow_saturates_instead_of_panicking() {
        // Found with the `fhirpath` fuzz target: i64::MIN div -1, mod -1 and negated panicked.
        let v = json!({});
        let min = "(-9223372036854775807 - 1)";
        assert_eq!(
            check(&format!("{min} div -1 = 9223372036854775807"), &v),
            Ok(Some(true))
        );
        assert_eq!(check(&format!("{min} mod -1 = 0"), &v), Ok(Some(true)));
        assert_eq!(
            check(&format!("-{min} = 9223372036854775807"), &v),
            Ok(Some(true))
        );
        assert_eq!(check("7 div 0", &v), Ok(None));
        assert_eq!(check("-7 mod 3 = 2", &v), Ok(Some(true)));
    }

    // REQ: HARD-02
    #[test]
    fn temporal_comparison_with_a_multi_byte_character_is_no_panic() {
        // The common prefix of `2024é` and `20245` ends inside the `é`.
        let p = json!({"start": "2024é", "end": "20245"});
        assert_eq!(check("start <= end", &p), Ok(Some(false)));
        let q = json!({"start": "2024-01-15T10:00:00+0é:00", "end": "2024-01-15T10:00:00Z"});
        assert!(check("start <= end", &q).is_ok());
    }

    #[test]
    fn unknown_types_and_functions_are_unsupported_not_true() {
        let v = json!({"a": "x"});
        assert!(check("a.as(canonical).exists()", &v).is_err());
        assert!(check("htmlChecks()", &v).is_err());
    }

    #[test]
    fn strings_functions_and_membership() {
        let v = json!({"reference": "#p1", "contained": [{"id": "p1"}], "when": ["C", "AC"]});
        assert_eq!(
            check(
                "reference.startsWith('#').not() or (reference.substring(1) in %rootResource.contained.id)",
                &v
            ),
            Ok(Some(true))
        );
        assert_eq!(
            check("when.select($this in ('C' | 'CM')).allFalse()", &v),
            Ok(Some(false))
        );
        assert_eq!(
            check("(a.count() + contained.count()) > 0", &v),
            Ok(Some(true))
        );
    }
}
