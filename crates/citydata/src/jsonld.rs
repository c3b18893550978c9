//! The JSON-LD that NGSI-LD needs, and no more (as the peers do: Orion-LD
//! and the Rust broker Antares write their own subset): a request's
//! `@context` resolved to a term map, names expanded to IRIs on the way
//! in and compacted on the way out.
//!
//! The ETSI core context is built in: every core URL (v1.3 to v1.9)
//! resolves to it without the network, and it is merged last, so that no
//! user context redefines a core term (CIM 009 §4.4). So are the contexts
//! of the shipped Smart Data Models' subjects (`models`). User contexts are
//! fetched once and cached; one that cannot be fetched is
//! `LdContextNotAvailable`, never a hang (the fetch has a deadline).

use crate::problem::{NgsiError, Result};
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The core context this broker serves and answers with.
pub const CORE_CONTEXT_URL: &str =
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld";
/// The core context document (ETSI, v1.8).
pub const CORE_CONTEXT_DOCUMENT: &str =
    include_str!("../contexts/ngsi-ld-core-context-v1.8.jsonld");
/// Where unknown short names land.
pub const DEFAULT_VOCAB: &str = "https://uri.etsi.org/ngsi-ld/default-context/";
pub const NGSI_LD: &str = "https://uri.etsi.org/ngsi-ld/";

/// Is this URL one of the ETSI core contexts (resolved without fetching)?
pub fn is_core_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context")
        .or_else(|| url.strip_prefix("http://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context"))
    else {
        return false;
    };
    matches!(
        rest,
        ".jsonld"
            | "-v1.3.jsonld"
            | "-v1.4.jsonld"
            | "-v1.5.jsonld"
            | "-v1.6.jsonld"
            | "-v1.7.jsonld"
            | "-v1.8.jsonld"
            | "-v1.9.jsonld"
    )
}

/// How a term's values are read (only what NGSI-LD output depends on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub iri: String,
    /// `@type: @vocab`: string values are themselves terms.
    pub vocab_valued: bool,
}

/// A resolved @context: user terms, then the core's over them.
#[derive(Debug)]
pub struct Context {
    terms: HashMap<String, Term>,
    vocab: String,
    /// IRI → the term that compacts it (shortest, then least).
    inverse: HashMap<String, String>,
    /// Terms usable as prefixes (their IRI ends in `/`, `#` or `:`),
    /// longest IRI first.
    prefixes: Vec<(String, String)>,
    /// The @context as the request gave it (or the core URL), for answers.
    pub original: Value,
}

impl Context {
    fn build(terms: HashMap<String, Term>, vocab: String, original: Value) -> Self {
        let mut inverse: HashMap<String, String> = HashMap::new();
        let mut prefixes = Vec::new();
        for (name, term) in &terms {
            if term.iri.starts_with('@') {
                continue;
            }
            let better = match inverse.get(&term.iri) {
                None => true,
                Some(old) => (name.len(), name.as_str()) < (old.len(), old.as_str()),
            };
            if better {
                inverse.insert(term.iri.clone(), name.clone());
            }
            if term.iri.ends_with(['/', '#', ':']) && !name.contains(':') {
                prefixes.push((term.iri.clone(), name.clone()));
            }
        }
        prefixes.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.1.cmp(&b.1)));
        Self {
            terms,
            vocab,
            inverse,
            prefixes,
            original,
        }
    }

    /// The core context alone.
    pub fn core() -> Arc<Context> {
        static CORE: std::sync::OnceLock<Arc<Context>> = std::sync::OnceLock::new();
        CORE.get_or_init(|| {
            let doc: Value =
                serde_json::from_str(CORE_CONTEXT_DOCUMENT).expect("the core context is JSON");
            let mut terms = HashMap::new();
            let mut vocab = DEFAULT_VOCAB.to_owned();
            define(
                &mut terms,
                &mut vocab,
                doc["@context"].as_object().expect("an object"),
            )
            .expect("the core context is valid");
            Arc::new(Context::build(
                terms,
                vocab,
                Value::String(CORE_CONTEXT_URL.into()),
            ))
        })
        .clone()
    }

    /// A short name (attribute, type) to its IRI.
    pub fn expand(&self, name: &str) -> String {
        if let Some(t) = self.terms.get(name) {
            return t.iri.clone();
        }
        if let Some((prefix, suffix)) = name.split_once(':') {
            if !suffix.starts_with("//") {
                if let Some(t) = self.terms.get(prefix) {
                    return format!("{}{}", t.iri, suffix);
                }
            }
            // An absolute IRI (urn:…, http://…) stays as it is.
            return name.to_owned();
        }
        format!("{}{}", self.vocab, name)
    }

    /// An IRI to the shortest name this context gives it.
    pub fn compact(&self, iri: &str) -> String {
        if let Some(t) = self.inverse.get(iri) {
            return t.clone();
        }
        if let Some(rest) = iri.strip_prefix(self.vocab.as_str()) {
            if !rest.is_empty() && !rest.contains(':') && !self.terms.contains_key(rest) {
                return rest.to_owned();
            }
        }
        for (prefix_iri, name) in &self.prefixes {
            if let Some(rest) = iri.strip_prefix(prefix_iri.as_str()) {
                if !rest.is_empty() && !rest.starts_with("//") {
                    return format!("{name}:{rest}");
                }
            }
        }
        iri.to_owned()
    }

    /// Whether a term's string values are terms (`@type: @vocab`).
    pub fn is_vocab_valued(&self, iri: &str) -> bool {
        self.inverse
            .get(iri)
            .and_then(|t| self.terms.get(t))
            .is_some_and(|t| t.vocab_valued)
    }

    /// Is this the core context alone (answers then need no `Link`)?
    pub fn is_core(&self) -> bool {
        self.original.as_str().is_some_and(is_core_url)
    }
}

/// Adds an object's term definitions to `terms` (later definitions win).
fn define(
    terms: &mut HashMap<String, Term>,
    vocab: &mut String,
    obj: &Map<String, Value>,
) -> Result<()> {
    // Values may use prefixes defined anywhere in the same object, so the
    // raw definitions are read first and expanded against all of them.
    let mut raw: Vec<(&str, Option<&str>, bool)> = Vec::new();
    for (name, def) in obj {
        match name.as_str() {
            "@vocab" => {
                let v = def
                    .as_str()
                    .ok_or_else(|| NgsiError::bad_data("@vocab must be a string"))?;
                *vocab = v.to_owned();
                continue;
            }
            "@version" | "@protected" | "@language" | "@base" | "@direction" | "@propagate"
            | "@import" => continue,
            _ => {}
        }
        match def {
            Value::Null => {
                terms.remove(name);
            }
            Value::String(iri) => raw.push((name, Some(iri), false)),
            Value::Object(o) => {
                let iri = match o.get("@id") {
                    Some(Value::String(s)) => Some(s.as_str()),
                    None | Some(Value::Null) => None,
                    Some(_) => {
                        return Err(NgsiError::bad_data(format!(
                            "term {name}: @id must be a string"
                        )))
                    }
                };
                let vocab_valued = o.get("@type").and_then(Value::as_str) == Some("@vocab");
                raw.push((name, iri, vocab_valued));
            }
            _ => {
                return Err(NgsiError::bad_data(format!(
                    "term {name} must be defined by a string or an object"
                )))
            }
        }
    }
    let prefixes: HashMap<&str, &str> = raw
        .iter()
        .filter_map(|(n, iri, _)| iri.map(|i| (*n, i)))
        .collect();
    let resolve = |iri: &str| -> String {
        let mut iri = iri.to_owned();
        // Prefix chains are short; a bound stops a cycle.
        for _ in 0..4 {
            let Some((p, rest)) = iri.split_once(':') else {
                break;
            };
            if rest.starts_with("//") {
                break;
            }
            let target = prefixes
                .get(p)
                .map(|s| s.to_string())
                .or_else(|| terms.get(p).map(|t| t.iri.clone()));
            match target {
                Some(t) if t != iri => iri = format!("{t}{rest}"),
                _ => break,
            }
        }
        iri
    };
    let resolved: Vec<(String, Term)> = raw
        .iter()
        .map(|(name, iri, vocab_valued)| {
            let iri = match iri {
                Some(i) => resolve(i),
                None => format!("{vocab}{name}"),
            };
            (
                name.to_string(),
                Term {
                    iri,
                    vocab_valued: *vocab_valued,
                },
            )
        })
        .collect();
    terms.extend(resolved);
    Ok(())
}

/// A context document fetched from its URL, and what it has been used for.
#[derive(Debug, Clone)]
pub struct Cached {
    pub url: String,
    pub local_id: String,
    pub document: Arc<Value>,
    pub created_at: i64,
    /// Fetched, given, or made by the broker.
    pub kind: ContextKind,
    pub hits: u64,
    pub last_usage: i64,
}

/// Where a stored context came from (CIM 009 §5.13.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContextKind {
    /// Fetched from its URL; refetched on `reload`.
    Cached,
    /// Given to the broker through `POST /jsonldContexts`; never
    /// refetched nor evicted.
    Hosted,
    /// Made by the broker for a subscription whose `@context` is not a
    /// single URL, so that it has one (its `jsonldContext`).
    ImplicitlyCreated,
}

impl ContextKind {
    pub fn name(self) -> &'static str {
        match self {
            ContextKind::Cached => "Cached",
            ContextKind::Hosted => "Hosted",
            ContextKind::ImplicitlyCreated => "ImplicitlyCreated",
        }
    }

    /// Whether it has a URL elsewhere to fetch it again from.
    pub fn fetched(self) -> bool {
        self == ContextKind::Cached
    }
}

/// Resolves request contexts: built-in core, fetched and cached user
/// documents, merged contexts cached by their JSON.
pub struct Contexts {
    http: reqwest::Client,
    documents: Mutex<HashMap<String, Cached>>,
    merged: Mutex<HashMap<String, Arc<Context>>>,
    fetch_timeout: Duration,
    /// Whether loopback and private addresses may be fetched (`egress`).
    allow_private: bool,
}

const MERGED_CACHE: usize = 4096;
const MAX_DOCUMENT: usize = 1 << 20;
const MAX_DEPTH: usize = 8;

impl Default for Contexts {
    fn default() -> Self {
        Self::new(Duration::from_secs(5), false)
    }
}

impl Contexts {
    pub fn new(fetch_timeout: Duration, allow_private: bool) -> Self {
        let http = reqwest::Client::builder()
            .timeout(fetch_timeout)
            .connect_timeout(fetch_timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .expect("the HTTP client builds");
        Self {
            http,
            documents: Mutex::new(HashMap::new()),
            merged: Mutex::new(HashMap::new()),
            fetch_timeout,
            allow_private,
        }
    }

    /// The context of a request: its `@context` (from the body or the
    /// `Link` header), or the core alone.
    pub async fn resolve(&self, context: Option<&Value>) -> Result<Arc<Context>> {
        let Some(context) = context else {
            return Ok(Context::core());
        };
        let key = context.to_string();
        let hit = self.merged.lock().expect("not poisoned").get(&key).cloned();
        if let Some(hit) = hit {
            self.touch(context);
            return Ok(hit);
        }
        let mut terms = HashMap::new();
        let mut vocab = DEFAULT_VOCAB.to_owned();
        self.apply(&mut terms, &mut vocab, context, 0).await?;
        // The core last: its terms are protected.
        let core = Context::core();
        terms.extend(core.terms.iter().map(|(k, t)| (k.clone(), t.clone())));
        vocab = core.vocab.clone();
        let original = match context {
            Value::String(s) if is_core_url(s) => Value::String(CORE_CONTEXT_URL.into()),
            other => other.clone(),
        };
        let ctx = Arc::new(Context::build(terms, vocab, original));
        let mut merged = self.merged.lock().expect("not poisoned");
        if merged.len() >= MERGED_CACHE {
            merged.clear();
        }
        merged.insert(key, ctx.clone());
        Ok(ctx)
    }

    fn apply<'a>(
        &'a self,
        terms: &'a mut HashMap<String, Term>,
        vocab: &'a mut String,
        context: &'a Value,
        depth: usize,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send + 'a>> {
        Box::pin(async move {
            if depth > MAX_DEPTH {
                return Err(NgsiError::bad_data("the @context nests too deeply"));
            }
            match context {
                Value::Null => {}
                Value::String(url) => {
                    if is_core_url(url) {
                        return Ok(());
                    }
                    let doc = self.document(url).await?;
                    let inner = doc
                        .get("@context")
                        .ok_or_else(|| NgsiError::bad_data(format!("{url} holds no @context")))?
                        .clone();
                    self.apply(terms, vocab, &inner, depth + 1).await?;
                }
                Value::Array(items) => {
                    for item in items {
                        self.apply(terms, vocab, item, depth + 1).await?;
                    }
                }
                Value::Object(obj) => define(terms, vocab, obj)?,
                _ => {
                    return Err(NgsiError::bad_data(
                        "an @context is a URL, an object or an array",
                    ))
                }
            }
            Ok(())
        })
    }

    /// Counts a use of every cached document a context names.
    fn touch(&self, context: &Value) {
        let now = now_ms();
        let mut docs = self.documents.lock().expect("not poisoned");
        let mut bump = |url: &str| {
            if let Some(c) = docs.get_mut(url) {
                c.hits += 1;
                c.last_usage = now;
            }
        };
        match context {
            Value::String(u) => bump(u),
            Value::Array(items) => items.iter().filter_map(Value::as_str).for_each(bump),
            _ => {}
        }
    }

    /// Counts a use of one cached document (serving it counts).
    pub fn touch_url(&self, url: &str) {
        self.touch(&Value::String(url.to_owned()));
    }

    /// A context document by URL: cached, else fetched once.
    pub async fn document(&self, url: &str) -> Result<Arc<Value>> {
        // The shipped Smart Data Models' contexts are built in, as the
        // core is: never fetched.
        if let Some(doc) = crate::models::context_document(url) {
            return Ok(doc);
        }
        let now = now_ms();
        if let Some(c) = self.documents.lock().expect("not poisoned").get_mut(url) {
            c.hits += 1;
            c.last_usage = now;
            return Ok(c.document.clone());
        }
        let parsed = url::parse_http(url).ok_or_else(|| {
            NgsiError::bad_data(format!("the @context {url} is not an http(s) URL"))
        })?;
        crate::egress::check_url(&parsed, self.allow_private)
            .await
            .map_err(|why| NgsiError::bad_data(format!("the @context {parsed}: {why}")))?;
        let unavailable = |why: String| {
            NgsiError::context_unavailable(format!(
                "the @context {parsed} could not be retrieved: {why}"
            ))
        };
        let response = self
            .http
            .get(parsed.as_str())
            .header("accept", "application/ld+json, application/json")
            .send()
            .await
            .map_err(|e| {
                unavailable(if e.is_timeout() {
                    format!("no answer within {:?}", self.fetch_timeout)
                } else {
                    "it cannot be reached".into()
                })
            })?;
        if !response.status().is_success() {
            return Err(unavailable(format!(
                "the server answered {}",
                response.status()
            )));
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|_| unavailable("the answer broke off".into()))?;
        if bytes.len() > MAX_DOCUMENT {
            return Err(unavailable("it is larger than 1 MiB".into()));
        }
        let doc: Value = serde_json::from_slice(&bytes)
            .map_err(|_| NgsiError::bad_data(format!("the @context {parsed} is not JSON")))?;
        if !doc.is_object() || doc.get("@context").is_none() {
            return Err(NgsiError::bad_data(format!(
                "the @context {parsed} holds no @context member"
            )));
        }
        let doc = Arc::new(doc);
        self.documents.lock().expect("not poisoned").insert(
            url.to_owned(),
            Cached {
                url: url.to_owned(),
                local_id: local_id(url),
                document: doc.clone(),
                created_at: now,
                kind: ContextKind::Cached,
                hits: 1,
                last_usage: now,
            },
        );
        Ok(doc)
    }

    /// Keeps a context given by a user (`POST /jsonldContexts`) or made
    /// by the broker under its local id and a URL of the broker.
    pub fn host(&self, id: String, url: String, document: Value, kind: ContextKind) {
        let now = now_ms();
        self.documents.lock().expect("not poisoned").insert(
            url.clone(),
            Cached {
                url,
                local_id: id.clone(),
                document: Arc::new(document),
                created_at: now,
                kind,
                hits: 0,
                last_usage: now,
            },
        );
        self.merged.lock().expect("not poisoned").clear();
    }

    /// The cached and hosted contexts.
    pub fn list(&self) -> Vec<Cached> {
        let mut all: Vec<Cached> = self
            .documents
            .lock()
            .expect("not poisoned")
            .values()
            .cloned()
            .collect();
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.url.cmp(&b.url)));
        all
    }

    /// A cached context by its local id or URL.
    pub fn find(&self, id: &str) -> Option<Cached> {
        self.documents
            .lock()
            .expect("not poisoned")
            .values()
            .find(|c| c.local_id == id || c.url == id)
            .cloned()
    }

    /// Forgets a cached context (reloaded on next use when `reload`).
    pub fn forget(&self, id: &str) -> Option<Cached> {
        let mut docs = self.documents.lock().expect("not poisoned");
        let url = docs
            .values()
            .find(|c| c.local_id == id || c.url == id)?
            .url
            .clone();
        let gone = docs.remove(&url);
        self.merged.lock().expect("not poisoned").clear();
        gone
    }
}

/// A stable local id for a context URL.
fn local_id(url: &str) -> String {
    // FNV-1a: stable across restarts and processes, no dependency.
    let mut h: u64 = 0xcbf29ce484222325;
    for b in url.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    format!("{h:016x}")
}

pub fn now_ms() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

mod url {
    /// An http(s) URL with a host, as given (no normalisation beyond a check).
    pub fn parse_http(s: &str) -> Option<String> {
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))?;
        let host = rest.split(['/', '?', '#']).next()?;
        if host.is_empty() || s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return None;
        }
        Some(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_core_context_expands_and_compacts_its_own_terms() {
        let core = Context::core();
        assert_eq!(
            core.expand("location"),
            "https://uri.etsi.org/ngsi-ld/location"
        );
        assert_eq!(
            core.compact("https://uri.etsi.org/ngsi-ld/location"),
            "location"
        );
        assert_eq!(
            core.expand("speed"),
            "https://uri.etsi.org/ngsi-ld/default-context/speed"
        );
        assert_eq!(
            core.compact("https://uri.etsi.org/ngsi-ld/default-context/speed"),
            "speed"
        );
        assert_eq!(core.expand("urn:ngsi-ld:Thing:1"), "urn:ngsi-ld:Thing:1");
        assert_eq!(core.compact("http://example.org/x"), "http://example.org/x");
        assert_eq!(
            core.compact("https://uri.etsi.org/ngsi-ld/Other"),
            "ngsi-ld:Other"
        );
    }

    #[tokio::test]
    async fn user_terms_apply_but_never_over_the_core() {
        let contexts = Contexts::default();
        let ctx = contexts
            .resolve(Some(&serde_json::json!({
                "ex": "http://example.org/",
                "Vehicle": "ex:Vehicle",
                "location": "ex:notTheCoreLocation",
                "speed": {"@id": "ex:speed"}
            })))
            .await
            .unwrap();
        assert_eq!(ctx.expand("Vehicle"), "http://example.org/Vehicle");
        assert_eq!(ctx.expand("speed"), "http://example.org/speed");
        assert_eq!(ctx.compact("http://example.org/speed"), "speed");
        assert_eq!(
            ctx.expand("location"),
            "https://uri.etsi.org/ngsi-ld/location"
        );
        assert_eq!(ctx.compact("http://example.org/other"), "ex:other");
    }

    #[tokio::test]
    async fn a_context_that_cannot_be_fetched_is_unavailable_not_a_hang() {
        let contexts = Contexts::new(Duration::from_secs(2), true);
        // A port nothing listens on.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = contexts
            .resolve(Some(&Value::String(format!(
                "http://127.0.0.1:{port}/ctx.jsonld"
            ))))
            .await
            .unwrap_err();
        assert_eq!(err.kind, crate::problem::ErrorKind::LdContextNotAvailable);
        assert!(contexts
            .resolve(Some(&Value::String(
                "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld".into()
            )))
            .await
            .is_ok());
    }
}
