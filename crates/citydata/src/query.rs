//! The selection languages of NGSI-LD: the `q` query language (§4.9),
//! entity type expressions (§4.17), `scopeQ` (§4.19) and the projection
//! of `pick`/`omit` (§4.21). Each is parsed once into a tree (a bad
//! expression is `InvalidRequest` before anything is read) and evaluated
//! against stored entities; the same evaluator serves queries and
//! subscriptions.

use crate::entity::{parse_datetime, Entity, Instance};
use crate::jsonld::Context;
use crate::problem::{NgsiError, Result};
use serde_json::Value;

/// A parsed `q`.
#[derive(Debug, Clone)]
pub enum Q {
    And(Vec<Q>),
    Or(Vec<Q>),
    Term(Term),
}

#[derive(Debug, Clone)]
pub struct Term {
    pub path: Path,
    pub test: Option<(Op, Operand)>,
}

/// `attr.sub.sub[compound.path]`.
#[derive(Debug, Clone)]
pub struct Path {
    pub attr: String,
    /// `attr` expanded, once per query (a query has one context).
    pub iri: std::sync::OnceLock<String>,
    pub subs: Vec<String>,
    pub inner: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Ge,
    Gt,
    Le,
    Lt,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
pub enum Operand {
    One(Lit),
    List(Vec<Lit>),
    Range(Lit, Lit),
    Regex(regex::Regex),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Lit {
    Num(f64),
    Str(String),
    Bool(bool),
    /// Unquoted: a URI, a date or time, or a bare word.
    Bare(String),
}

struct Cursor<'a> {
    s: &'a str,
    i: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<char> {
        self.s[self.i..].chars().next()
    }
    fn eat(&mut self, t: &str) -> bool {
        if self.s[self.i..].starts_with(t) {
            self.i += t.len();
            true
        } else {
            false
        }
    }
    fn err(&self, what: &str) -> NgsiError {
        NgsiError::invalid(format!("q: {what} at position {}", self.i))
    }
    fn rest(&self) -> &'a str {
        &self.s[self.i..]
    }
}

/// `%XX` decoded (never `+`); the text as given if the result is not
/// UTF-8, and a `%` without two hex digits after it kept as it is.
pub fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_owned();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

/// Parses a `q` expression.
pub fn parse_q(s: &str) -> Result<Q> {
    let mut c = Cursor { s: s.trim(), i: 0 };
    if c.s.is_empty() {
        return Err(NgsiError::invalid("q is empty"));
    }
    let q = or_expr(&mut c)?;
    if c.i != c.s.len() {
        return Err(c.err("unexpected text"));
    }
    Ok(q)
}

fn or_expr(c: &mut Cursor) -> Result<Q> {
    let mut parts = vec![and_expr(c)?];
    while c.eat("|") {
        parts.push(and_expr(c)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Q::Or(parts)
    })
}

fn and_expr(c: &mut Cursor) -> Result<Q> {
    let mut parts = vec![primary(c)?];
    while c.eat(";") {
        parts.push(primary(c)?);
    }
    Ok(if parts.len() == 1 {
        parts.pop().expect("one")
    } else {
        Q::And(parts)
    })
}

fn primary(c: &mut Cursor) -> Result<Q> {
    if c.eat("(") {
        let q = or_expr(c)?;
        if !c.eat(")") {
            return Err(c.err("a ( is not closed"));
        }
        return Ok(q);
    }
    term(c).map(Q::Term)
}

fn name(c: &mut Cursor) -> Result<String> {
    let start = c.i;
    while let Some(ch) = c.peek() {
        if ch.is_alphanumeric() || matches!(ch, '_' | ':' | '/' | '#' | '-' | '@') {
            c.i += ch.len_utf8();
        } else {
            break;
        }
    }
    if c.i == start {
        return Err(c.err("an attribute name is expected"));
    }
    Ok(c.s[start..c.i].to_owned())
}

fn term(c: &mut Cursor) -> Result<Term> {
    let attr = name(c)?;
    let mut subs = Vec::new();
    while c.eat(".") {
        subs.push(name(c)?);
    }
    let mut inner = Vec::new();
    if c.eat("[") {
        inner.push(name_or_star(c)?);
        while c.eat(".") {
            inner.push(name_or_star(c)?);
        }
        if !c.eat("]") {
            return Err(c.err("a [ is not closed"));
        }
    }
    let path = Path {
        attr,
        subs,
        inner,
        iri: std::sync::OnceLock::new(),
    };
    let op = if c.eat("==") {
        Op::Eq
    } else if c.eat("!=") {
        Op::Ne
    } else if c.eat(">=") {
        Op::Ge
    } else if c.eat("<=") {
        Op::Le
    } else if c.eat(">") {
        Op::Gt
    } else if c.eat("<") {
        Op::Lt
    } else if c.eat("~=") {
        Op::Matches
    } else if c.eat("!~=") {
        Op::NotMatches
    } else {
        return match c.peek() {
            None | Some(';' | '|' | ')') => Ok(Term { path, test: None }),
            _ => Err(c.err("an operator is expected")),
        };
    };
    let operand = match op {
        Op::Matches | Op::NotMatches => {
            let raw = value_text(c)?;
            let pattern = raw.trim_matches('"');
            Operand::Regex(
                regex::Regex::new(pattern)
                    .map_err(|_| NgsiError::invalid("q: an invalid regular expression"))?,
            )
        }
        _ => {
            let first = literal(c)?;
            if c.eat("..") {
                let second = literal(c)?;
                Operand::Range(first, second)
            } else if c.peek() == Some(',') {
                let mut list = vec![first];
                while c.eat(",") {
                    list.push(literal(c)?);
                }
                Operand::List(list)
            } else {
                Operand::One(first)
            }
        }
    };
    if matches!(operand, Operand::List(_) | Operand::Range(..)) && !matches!(op, Op::Eq | Op::Ne) {
        return Err(c.err("a list or range needs == or !="));
    }
    Ok(Term {
        path,
        test: Some((op, operand)),
    })
}

fn name_or_star(c: &mut Cursor) -> Result<String> {
    if c.eat("*") {
        return Ok("*".into());
    }
    name(c)
}

/// The text of a value up to the next operator of the language.
fn value_text(c: &mut Cursor) -> Result<String> {
    let start = c.i;
    if c.peek() == Some('"') {
        quoted(c)?;
        return Ok(c.s[start..c.i].to_owned());
    }
    while let Some(ch) = c.peek() {
        if matches!(ch, ';' | '|' | ')') {
            break;
        }
        c.i += ch.len_utf8();
    }
    Ok(c.s[start..c.i].to_owned())
}

fn quoted(c: &mut Cursor) -> Result<String> {
    // A JSON string, escapes and all.
    let rest = c.rest();
    let mut escaped = false;
    for (i, ch) in rest.char_indices().skip(1) {
        if escaped {
            escaped = false;
        } else if ch == '\\' {
            escaped = true;
        } else if ch == '"' {
            let text = &rest[..=i];
            c.i += i + 1;
            return serde_json::from_str(text)
                .map_err(|_| NgsiError::invalid("q: a malformed string"));
        }
    }
    Err(c.err("a string is not closed"))
}

fn literal(c: &mut Cursor) -> Result<Lit> {
    if c.peek() == Some('"') {
        return Ok(Lit::Str(quoted(c)?));
    }
    let start = c.i;
    while let Some(ch) = c.peek() {
        if matches!(ch, ';' | '|' | ')' | ',') || c.rest().starts_with("..") {
            break;
        }
        c.i += ch.len_utf8();
    }
    let text = c.s[start..c.i].trim();
    if text.is_empty() {
        return Err(c.err("a value is expected"));
    }
    if text.contains('"') || text.contains('(') {
        return Err(c.err("an unquoted value cannot hold \" or ("));
    }
    Ok(match text {
        "true" => Lit::Bool(true),
        "false" => Lit::Bool(false),
        t => match t.parse::<f64>() {
            Ok(n) if n.is_finite() => Lit::Num(n),
            _ => Lit::Bare(t.to_owned()),
        },
    })
}

/// What a term compares: values reached through the path.
fn targets(e: &Entity, path: &Path, ctx: &Context) -> Vec<Value> {
    let iri = path.iri.get_or_init(|| ctx.expand(&path.attr));
    let Some(instances) = e.attrs.get(iri) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for inst in instances {
        let mut cur: &Instance = inst;
        let mut member: Option<Value> = None;
        let mut ok = true;
        for (n, step) in path.subs.iter().enumerate() {
            let last = n + 1 == path.subs.len();
            match step.as_str() {
                "observedAt" | "unitCode" | "datasetId" | "createdAt" | "modifiedAt" if last => {
                    member = cur.get(step.as_str()).map(|v| match v {
                        Value::Number(n) if step.ends_with("At") => {
                            Value::String(crate::entity::format_datetime(n.as_i64().unwrap_or(0)))
                        }
                        other => other.clone(),
                    });
                    if member.is_none() {
                        ok = false;
                    }
                }
                _ => match cur.get(&ctx.expand(step)).and_then(Value::as_object) {
                    Some(sub) => cur = sub,
                    None => ok = false,
                },
            }
            if !ok {
                break;
            }
        }
        if !ok {
            continue;
        }
        let base = match member {
            Some(m) => m,
            None => match cur
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or("Property")
            {
                "Relationship" => cur.get("object").cloned().unwrap_or(Value::Null),
                "LanguageProperty" => cur.get("languageMap").cloned().unwrap_or(Value::Null),
                "VocabProperty" => match cur.get("vocab") {
                    Some(Value::String(s)) => Value::String(ctx.compact(s)),
                    Some(Value::Array(a)) => Value::Array(
                        a.iter()
                            .map(|v| {
                                v.as_str()
                                    .map(|s| Value::String(ctx.compact(s)))
                                    .unwrap_or(Value::Null)
                            })
                            .collect(),
                    ),
                    _ => Value::Null,
                },
                "ListProperty" => cur.get("valueList").cloned().unwrap_or(Value::Null),
                "ListRelationship" => Value::Array(
                    cur.get("objectList")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(|o| o.get("object").cloned()).collect())
                        .unwrap_or_default(),
                ),
                "JsonProperty" => cur.get("json").cloned().unwrap_or(Value::Null),
                _ => cur.get("value").cloned().unwrap_or(Value::Null),
            },
        };
        let is_language = cur.get("type").and_then(Value::as_str) == Some("LanguageProperty");
        if path.inner.is_empty() {
            if is_language {
                // Without [lang], any language's string matches.
                if let Some(m) = base.as_object() {
                    out.extend(m.values().cloned());
                    continue;
                }
            }
            out.push(base);
            continue;
        }
        let mut v = vec![base];
        for key in &path.inner {
            v = v
                .into_iter()
                .flat_map(|x| match (key.as_str(), x) {
                    ("*", Value::Object(m)) => m.into_values().collect::<Vec<_>>(),
                    (k, Value::Object(m)) => m.get(k).cloned().into_iter().collect(),
                    _ => Vec::new(),
                })
                .collect();
        }
        out.extend(v);
    }
    out
}

fn cmp_lit(v: &Value, lit: &Lit) -> Option<std::cmp::Ordering> {
    match (v, lit) {
        (Value::Number(n), Lit::Num(l)) => n.as_f64()?.partial_cmp(l),
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::String(s), Lit::Str(l) | Lit::Bare(l)) => {
            match (parse_datetime(s), parse_datetime(l)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(s.as_str().cmp(l.as_str())),
            }
        }
        (Value::Object(o), _) if o.get("@type").is_some() => cmp_lit(o.get("@value")?, lit),
        _ => None,
    }
}

fn equal(v: &Value, operand: &Operand) -> bool {
    let eq = |v: &Value, l: &Lit| cmp_lit(v, l) == Some(std::cmp::Ordering::Equal);
    let one = |v: &Value| match operand {
        Operand::One(l) => eq(v, l),
        Operand::List(ls) => ls.iter().any(|l| eq(v, l)),
        Operand::Range(a, b) => {
            matches!(
                cmp_lit(v, a),
                Some(std::cmp::Ordering::Greater | std::cmp::Ordering::Equal)
            ) && matches!(
                cmp_lit(v, b),
                Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
            )
        }
        Operand::Regex(_) => false,
    };
    match v {
        Value::Array(items) => items.iter().any(one) || one(v),
        _ => one(v),
    }
}

fn test(v: &Value, op: Op, operand: &Operand) -> bool {
    use std::cmp::Ordering::*;
    match (op, operand) {
        (Op::Eq, _) => equal(v, operand),
        (Op::Ne, _) => !equal(v, operand),
        (Op::Matches, Operand::Regex(r)) => v.as_str().is_some_and(|s| r.is_match(s)),
        (Op::NotMatches, Operand::Regex(r)) => v.as_str().is_some_and(|s| !r.is_match(s)),
        (_, Operand::One(l)) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                other => vec![other],
            };
            items.into_iter().any(|x| {
                let o = cmp_lit(x, l);
                match op {
                    Op::Gt => o == Some(Greater),
                    Op::Ge => matches!(o, Some(Greater | Equal)),
                    Op::Lt => o == Some(Less),
                    Op::Le => matches!(o, Some(Less | Equal)),
                    _ => false,
                }
            })
        }
        _ => false,
    }
}

/// What a numeric comparison of an attribute (`attr>=20`: no
/// sub-attribute, no member) can see in one of its instances.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum NumKey {
    /// A plain number.
    Num(f64),
    /// Nothing such a comparison could match: a string, a boolean, null,
    /// an object that is not a typed literal.
    Never,
    /// What only the evaluator can tell (arrays, typed literals, lists,
    /// JSON, languages).
    Unknown,
}

/// An instance's `NumKey`, as `targets` reads it.
pub fn num_key(inst: &Instance) -> NumKey {
    let plain = |v: Option<&Value>| match v {
        Some(Value::Number(n)) => n.as_f64().map_or(NumKey::Unknown, NumKey::Num),
        None | Some(Value::String(_) | Value::Bool(_) | Value::Null) => NumKey::Never,
        Some(Value::Object(o)) if !o.contains_key("@type") => NumKey::Never,
        Some(_) => NumKey::Unknown,
    };
    match inst
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("Property")
    {
        "Property" | "GeoProperty" => plain(inst.get("value")),
        "Relationship" => match inst.get("object") {
            None | Some(Value::String(_)) => NumKey::Never,
            Some(_) => NumKey::Unknown,
        },
        "VocabProperty" => match inst.get("vocab") {
            None | Some(Value::String(_)) => NumKey::Never,
            Some(_) => NumKey::Unknown,
        },
        _ => NumKey::Unknown,
    }
}

/// Bounds on a plain number: (lower, upper).
pub type NumRange = (std::ops::Bound<f64>, std::ops::Bound<f64>);

impl Q {
    /// The numeric ranges the query requires of attributes (IRIs): from
    /// its top-level conjuncts `attr>=x`, `attr<x`, `attr==x`,
    /// `attr==a..b` (a number each, no sub-attribute or member). An
    /// entity that matches the query has, for each, an instance whose
    /// `NumKey` is in the range or `Unknown`.
    pub fn numeric_ranges(&self, ctx: &Context) -> Vec<(String, NumRange)> {
        use std::ops::Bound::{self, *};
        fn tighter(a: Bound<f64>, b: Bound<f64>, lower: bool) -> Bound<f64> {
            let v = |x: &Bound<f64>| match x {
                Included(v) | Excluded(v) => Some(*v),
                Unbounded => None,
            };
            match (v(&a), v(&b)) {
                (None, _) => b,
                (_, None) => a,
                (Some(x), Some(y)) if x == y => {
                    if matches!(a, Excluded(_)) {
                        a
                    } else {
                        b
                    }
                }
                (Some(x), Some(y)) => {
                    if (x > y) == lower {
                        a
                    } else {
                        b
                    }
                }
            }
        }
        let mut terms = Vec::new();
        let mut stack = vec![self];
        while let Some(q) = stack.pop() {
            match q {
                Q::And(qs) => stack.extend(qs),
                Q::Or(_) => {}
                Q::Term(t) => terms.push(t),
            }
        }
        let mut out: Vec<(String, NumRange)> = Vec::new();
        for t in terms {
            if !t.path.subs.is_empty() || !t.path.inner.is_empty() {
                continue;
            }
            let range = match &t.test {
                Some((Op::Ge, Operand::One(Lit::Num(x)))) => (Included(*x), Unbounded),
                Some((Op::Gt, Operand::One(Lit::Num(x)))) => (Excluded(*x), Unbounded),
                Some((Op::Le, Operand::One(Lit::Num(x)))) => (Unbounded, Included(*x)),
                Some((Op::Lt, Operand::One(Lit::Num(x)))) => (Unbounded, Excluded(*x)),
                Some((Op::Eq, Operand::One(Lit::Num(x)))) => (Included(*x), Included(*x)),
                Some((Op::Eq, Operand::Range(Lit::Num(a), Lit::Num(b)))) => {
                    (Included(*a), Included(*b))
                }
                _ => continue,
            };
            let iri = t.path.iri.get_or_init(|| ctx.expand(&t.path.attr));
            match out.iter_mut().find(|(a, _)| a == iri) {
                Some((_, (lo, hi))) => {
                    *lo = tighter(*lo, range.0, true);
                    *hi = tighter(*hi, range.1, false);
                }
                None => out.push((iri.clone(), range)),
            }
        }
        out
    }

    /// Does the entity satisfy the query?
    pub fn matches(&self, e: &Entity, ctx: &Context) -> bool {
        match self {
            Q::And(qs) => qs.iter().all(|q| q.matches(e, ctx)),
            Q::Or(qs) => qs.iter().any(|q| q.matches(e, ctx)),
            Q::Term(t) => {
                let values = targets(e, &t.path, ctx);
                match &t.test {
                    None => !values.is_empty(),
                    Some((Op::Ne, operand)) => {
                        !values.is_empty() && values.iter().all(|v| test(v, Op::Ne, operand))
                    }
                    Some((op, operand)) => values.iter().any(|v| test(v, *op, operand)),
                }
            }
        }
    }

    /// The attributes the query names (for a subscription's triggers).
    pub fn attributes(&self, out: &mut Vec<String>) {
        match self {
            Q::And(qs) | Q::Or(qs) => qs.iter().for_each(|q| q.attributes(out)),
            Q::Term(t) => out.push(t.path.attr.clone()),
        }
    }
}

/// An entity type expression: an OR of ANDs of type IRIs.
#[derive(Debug, Clone)]
pub struct TypeExpr(pub Vec<Vec<String>>);

/// More alternatives than this in a type selection's disjunctive form is
/// a query too complex to answer.
const MAX_TYPE_TERMS: usize = 256;

struct TypeParser<'a> {
    chars: Vec<char>,
    at: usize,
    ctx: &'a Context,
}

impl TypeParser<'_> {
    fn peek(&self) -> Option<char> {
        self.chars[self.at..]
            .iter()
            .copied()
            .find(|c| !c.is_whitespace())
    }

    fn skip_space(&mut self) {
        while self.chars.get(self.at).is_some_and(|c| c.is_whitespace()) {
            self.at += 1;
        }
    }

    /// term (( `,` | `|` ) term)*
    fn or(&mut self) -> Result<Vec<Vec<String>>> {
        let mut out = self.and()?;
        while matches!(self.peek(), Some(',' | '|')) {
            self.skip_space();
            self.at += 1;
            out.extend(self.and()?);
            if out.len() > MAX_TYPE_TERMS {
                return Err(NgsiError::invalid("type: the selection is too complex"));
            }
        }
        Ok(out)
    }

    /// factor (`;` factor)*, multiplied out.
    fn and(&mut self) -> Result<Vec<Vec<String>>> {
        let mut out = self.factor()?;
        while self.peek() == Some(';') {
            self.skip_space();
            self.at += 1;
            let right = self.factor()?;
            if out.len().saturating_mul(right.len()) > MAX_TYPE_TERMS {
                return Err(NgsiError::invalid("type: the selection is too complex"));
            }
            out = out
                .iter()
                .flat_map(|l| {
                    right.iter().map(move |r| {
                        let mut both = l.clone();
                        both.extend(r.iter().cloned());
                        both
                    })
                })
                .collect();
        }
        Ok(out)
    }

    /// `(` or `)` | a name.
    fn factor(&mut self) -> Result<Vec<Vec<String>>> {
        self.skip_space();
        if self.chars.get(self.at) == Some(&'(') {
            self.at += 1;
            let inner = self.or()?;
            self.skip_space();
            if self.chars.get(self.at) != Some(&')') {
                return Err(NgsiError::invalid("type: unbalanced parentheses"));
            }
            self.at += 1;
            return Ok(inner);
        }
        let start = self.at;
        while self
            .chars
            .get(self.at)
            .is_some_and(|c| !matches!(c, '(' | ')' | ',' | '|' | ';'))
        {
            self.at += 1;
        }
        let name: String = self.chars[start..self.at].iter().collect();
        let name = name.trim();
        if name.is_empty() && self.chars.get(self.at) == Some(&')') {
            return Err(NgsiError::invalid("type: unbalanced parentheses"));
        }
        if !crate::entity::is_valid_name(name) {
            return Err(NgsiError::invalid(format!(
                "type: {name:?} is not a type name"
            )));
        }
        Ok(vec![vec![self.ctx.expand(name)]])
    }
}

impl TypeExpr {
    /// Parses a type selection (§4.17): `,` and `|` are or, `;` is and
    /// (binding tighter), parentheses nest; each name expanded. Kept in
    /// disjunctive form: `(A|B);C` is `[[A, C], [B, C]]`.
    pub fn parse(s: &str, ctx: &Context) -> Result<TypeExpr> {
        if s.trim() == "*" {
            return Ok(TypeExpr(Vec::new()));
        }
        let mut p = TypeParser {
            chars: s.chars().collect(),
            at: 0,
            ctx,
        };
        let dnf = p.or()?;
        p.skip_space();
        if p.at != p.chars.len() {
            return Err(NgsiError::invalid("type: unbalanced parentheses"));
        }
        Ok(TypeExpr(dnf))
    }

    /// `*`: any type.
    pub fn any(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, types: &[String]) -> bool {
        self.any()
            || self
                .0
                .iter()
                .any(|and| and.iter().all(|t| types.contains(t)))
    }

    /// Every type named (for indexes).
    pub fn names(&self) -> impl Iterator<Item = &String> {
        self.0.iter().flatten()
    }
}

/// A `scopeQ`: an OR of ANDs of scope patterns.
#[derive(Debug, Clone)]
pub struct ScopeQ(Vec<Vec<String>>);

impl ScopeQ {
    pub fn parse(s: &str) -> Result<ScopeQ> {
        let mut ors = Vec::new();
        for part in s.split([',', '|']) {
            let p = part.trim();
            let inner = p
                .strip_prefix('(')
                .and_then(|x| x.strip_suffix(')'))
                .unwrap_or(p);
            let ands: Vec<String> = inner.split(';').map(|x| x.trim().to_owned()).collect();
            for a in &ands {
                let ok = a.starts_with('/')
                    && (a == "/#"
                        || a[1..].split('/').enumerate().all(|(i, seg)| {
                            !seg.is_empty()
                                && (seg == "+"
                                    || (seg == "#" && i == a[1..].split('/').count() - 1)
                                    || seg.chars().all(|c| c.is_alphanumeric() || c == '_'))
                        }));
                if !ok {
                    return Err(NgsiError::invalid(format!(
                        "scopeQ: {a:?} is not a scope pattern"
                    )));
                }
            }
            ors.push(ands);
        }
        Ok(ScopeQ(ors))
    }

    pub fn matches(&self, scopes: &[String]) -> bool {
        self.0.iter().any(|and| {
            and.iter()
                .all(|p| scopes.iter().any(|s| scope_matches(p, s)))
        })
    }
}

fn scope_matches(pattern: &str, scope: &str) -> bool {
    if pattern == "/#" {
        return true;
    }
    let pat: Vec<&str> = pattern[1..].split('/').collect();
    let sc: Vec<&str> = scope.get(1..).unwrap_or("").split('/').collect();
    for (i, p) in pat.iter().enumerate() {
        if *p == "#" {
            return true;
        }
        match sc.get(i) {
            Some(s) if *p == "+" || p == s => {}
            _ => return false,
        }
    }
    pat.len() == sc.len()
}

/// A member of a `pick` or `omit` list, with the projection of the
/// entity its relationship links to, if given (`locatedAt{id,name}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Projected {
    pub name: String,
    pub linked: Option<Vec<Projected>>,
}

/// A `pick` or `omit` list (§4.21): `name`, `rel{list}`, separated by
/// `,` or `|`.
pub fn parse_projection_tree(s: &str) -> Result<Vec<Projected>> {
    fn list(s: &[u8], i: &mut usize) -> Option<Vec<Projected>> {
        let mut out = Vec::new();
        loop {
            let start = *i;
            while *i < s.len() && !matches!(s[*i], b',' | b'|' | b'{' | b'}') {
                if s[*i].is_ascii_whitespace() {
                    return None;
                }
                *i += 1;
            }
            if *i == start {
                return None;
            }
            let name = std::str::from_utf8(&s[start..*i]).ok()?.to_owned();
            if !crate::entity::is_valid_name(&name) {
                return None;
            }
            let linked = if s.get(*i) == Some(&b'{') {
                *i += 1;
                let inner = list(s, i)?;
                if s.get(*i) != Some(&b'}') {
                    return None;
                }
                *i += 1;
                Some(inner)
            } else {
                None
            };
            out.push(Projected { name, linked });
            match s.get(*i) {
                Some(b',' | b'|') => *i += 1,
                _ => return Some(out),
            }
        }
    }
    let mut i = 0;
    match list(s.as_bytes(), &mut i) {
        Some(out) if i == s.len() => Ok(out),
        _ => Err(NgsiError::invalid(format!(
            "{s:?} is not a valid projection"
        ))),
    }
}

/// A `pick` or `omit` list's own member names (what it says of the
/// linked entities aside).
pub fn parse_projection(s: &str) -> Result<Vec<String>> {
    Ok(parse_projection_tree(s)?
        .into_iter()
        .map(|p| p.name)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entity::parse_entity;
    use serde_json::json;

    fn entity() -> Entity {
        parse_entity(
            &json!({
                "id": "urn:ngsi-ld:Building:1", "type": "Building",
                "name": {"type": "Property", "value": "Eiffel Tower"},
                "almostFull": {"type": "Property", "value": false},
                "airQualityLevel": {"type": "Property", "value": 5, "observedAt": "2020-01-01T00:00:00Z"},
                "locatedIn": {"type": "Relationship", "object": "urn:ngsi-ld:City:Paris"},
                "address": {"type": "Property", "value": {"city": "Paris", "zip": 75007}},
                "tags": {"type": "Property", "value": ["a", "b"]}
            }),
            &Context::core(),
            0,
        )
        .unwrap()
    }

    fn q(s: &str) -> bool {
        parse_q(s).unwrap().matches(&entity(), &Context::core())
    }

    #[test]
    fn the_q_language_matches_as_the_standard_says() {
        assert!(q(r#"name=="Eiffel Tower""#));
        assert!(q(
            r#"(name=="Pisa Tower"|name=="Eiffel Tower");almostFull==false"#
        ));
        assert!(q("airQualityLevel>=4;airQualityLevel<7"));
        assert!(!q("airQualityLevel>5"));
        assert!(q("airQualityLevel==1..5"));
        assert!(q("airQualityLevel==3,5,9"));
        assert!(q(
            "locatedIn==urn:ngsi-ld:City:Pisa|locatedIn==urn:ngsi-ld:City:Paris"
        ));
        assert!(q("address[city]==\"Paris\""));
        assert!(q("address[zip]>75000"));
        assert!(!q("address[street]"));
        assert!(q("airQualityLevel.observedAt>2019-12-31T00:00:00Z"));
        assert!(q("tags==\"b\""));
        assert!(q("name~=Eiffel.*"));
        assert!(q("name!=\"Pisa\""));
        assert!(!q("missing"));
        assert!(q("name"));
        for bad in [
            "",
            "name==",
            "(name",
            "name=\"x\"",
            "name==a\"b",
            "a==1;",
            "a<1,2",
        ] {
            assert!(parse_q(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn type_and_scope_expressions_combine_and_and_or() {
        let ctx = Context::core();
        let t = TypeExpr::parse("(Building;Parking),TouristDestination", &ctx).unwrap();
        let e = |names: &[&str]| names.iter().map(|n| ctx.expand(n)).collect::<Vec<_>>();
        assert!(t.matches(&e(&["Building", "Parking"])));
        assert!(!t.matches(&e(&["Building"])));
        assert!(t.matches(&e(&["TouristDestination"])));
        assert!(TypeExpr::parse("(A;B", &ctx).is_err());
        // Parentheses nest, and `;` binds tighter than `|`.
        let t = TypeExpr::parse("(Building|Tower)", &ctx).unwrap();
        assert!(t.matches(&e(&["Tower"])) && t.matches(&e(&["Building"])));
        let t = TypeExpr::parse("(A|B);C", &ctx).unwrap();
        assert_eq!(t.0, vec![e(&["A", "C"]), e(&["B", "C"])]);
        let t = TypeExpr::parse("A;B|C", &ctx).unwrap();
        assert_eq!(t.0, vec![e(&["A", "B"]), e(&["C"])]);
        let t = TypeExpr::parse(" ((A)) ", &ctx).unwrap();
        assert_eq!(t.0, vec![e(&["A"])]);
        for bad in ["A)", "()", "A|", "(A|B))", "A;;B", ""] {
            assert!(TypeExpr::parse(bad, &ctx).is_err(), "{bad}");
        }
        let wide = ["(A|B|C|D)"; 5].join(";");
        assert!(TypeExpr::parse(&wide, &ctx).is_err(), "4^5 alternatives");
        let s = ScopeQ::parse("/Madrid/+/Floor1,/Berlin/#").unwrap();
        assert!(s.matches(&["/Madrid/Gran/Floor1".into()]));
        assert!(s.matches(&["/Berlin".into()]) && s.matches(&["/Berlin/a/b".into()]));
        assert!(!s.matches(&["/Madrid/Floor1".into()]));
        assert!(ScopeQ::parse("/a;/b")
            .unwrap()
            .matches(&["/a".into(), "/b".into()]));
    }

    #[test]
    fn projections_refuse_malformed_lists() {
        assert_eq!(
            parse_projection("name,locatedIn{name}").unwrap(),
            vec!["name", "locatedIn"]
        );
        for bad in [
            "a{{b}}", "a,,b", "{a}", ",a", "a{b", "a}", "a,", "a{}", "a b", "a{b}}", "", "id;name",
        ] {
            assert!(parse_projection(bad).is_err(), "{bad}");
        }
        let leaf = |n: &str| Projected {
            name: n.into(),
            linked: None,
        };
        assert_eq!(
            parse_projection_tree("id,locatedAt{id|name,isInCountry{description}}").unwrap(),
            vec![
                leaf("id"),
                Projected {
                    name: "locatedAt".into(),
                    linked: Some(vec![
                        leaf("id"),
                        leaf("name"),
                        Projected {
                            name: "isInCountry".into(),
                            linked: Some(vec![leaf("description")]),
                        },
                    ]),
                },
            ]
        );
    }
}
