//! The broker's errors, as NGSI-LD names them (CIM 009 §5.5.2, error
//! types under `https://uri.etsi.org/ngsi-ld/errors/`). Each carries its
//! HTTP status here, once; `routes` turns them into ProblemDetails.

/// An NGSI-LD error: its kind and a detail for the caller (never a value
/// from the request body: logs see only the kind).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {detail}")]
pub struct NgsiError {
    pub kind: ErrorKind,
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidRequest,
    BadRequestData,
    AlreadyExists,
    OperationNotSupported,
    ResourceNotFound,
    InternalError,
    TooComplexQuery,
    TooManyResults,
    LdContextNotAvailable,
    NonexistentTenant,
    NotAcceptable,
    UnsupportedMediaType,
    Unauthorized,
    Forbidden,
    TooManyRequests,
    LoopDetected,
}

impl ErrorKind {
    /// The HTTP status the spec gives the error.
    pub fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            InvalidRequest | BadRequestData => 400,
            AlreadyExists => 409,
            OperationNotSupported => 422,
            ResourceNotFound | NonexistentTenant => 404,
            InternalError => 500,
            TooComplexQuery | TooManyResults => 403,
            LdContextNotAvailable => 503,
            NotAcceptable => 406,
            UnsupportedMediaType => 415,
            Unauthorized => 401,
            Forbidden => 403,
            TooManyRequests => 429,
            LoopDetected => 508,
        }
    }

    /// The ProblemDetails `type`.
    pub fn uri(self) -> String {
        format!("https://uri.etsi.org/ngsi-ld/errors/{}", self.name())
    }

    pub fn name(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidRequest => "InvalidRequest",
            BadRequestData => "BadRequestData",
            AlreadyExists => "AlreadyExists",
            OperationNotSupported => "OperationNotSupported",
            ResourceNotFound => "ResourceNotFound",
            InternalError => "InternalError",
            TooComplexQuery => "TooComplexQuery",
            TooManyResults => "TooManyResults",
            LdContextNotAvailable => "LdContextNotAvailable",
            NonexistentTenant => "NonexistentTenant",
            NotAcceptable => "NotAcceptable",
            UnsupportedMediaType => "UnsupportedMediaType",
            Unauthorized => "Unauthorized",
            Forbidden => "Forbidden",
            TooManyRequests => "TooManyRequests",
            LoopDetected => "LoopDetected",
        }
    }

    /// The ProblemDetails `title`: what went wrong, in general.
    pub fn title(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidRequest => "The request is not well formed",
            BadRequestData => "The request holds invalid data",
            AlreadyExists => "The resource already exists",
            OperationNotSupported => "The operation is not supported",
            ResourceNotFound => "The resource was not found",
            InternalError => "The broker failed",
            TooComplexQuery => "The query is too complex",
            TooManyResults => "The query has too many results",
            LdContextNotAvailable => "A JSON-LD @context could not be retrieved",
            NonexistentTenant => "No such tenant",
            NotAcceptable => "No acceptable representation",
            UnsupportedMediaType => "Unsupported media type",
            Unauthorized => "Authentication is required",
            Forbidden => "Not allowed",
            TooManyRequests => "Too many requests",
            LoopDetected => "A request came back to the broker that forwarded it",
        }
    }
}

pub type Result<T, E = NgsiError> = std::result::Result<T, E>;

macro_rules! constructors {
    ($($f:ident => $k:ident),* $(,)?) => {
        impl NgsiError {
            $(pub fn $f(detail: impl Into<String>) -> Self {
                Self { kind: ErrorKind::$k, detail: detail.into() }
            })*
        }
    };
}

constructors! {
    invalid => InvalidRequest,
    bad_data => BadRequestData,
    exists => AlreadyExists,
    unsupported => OperationNotSupported,
    not_found => ResourceNotFound,
    internal => InternalError,
    context_unavailable => LdContextNotAvailable,
    no_tenant => NonexistentTenant,
    not_acceptable => NotAcceptable,
    media_type => UnsupportedMediaType,
    unauthorized => Unauthorized,
    forbidden => Forbidden,
    too_many => TooManyRequests,
    loop_detected => LoopDetected,
}

impl From<civic_store::StoreError> for NgsiError {
    fn from(e: civic_store::StoreError) -> Self {
        // The store's message may name a value; it is logged by kind only.
        tracing::error!(error = %e, "city data storage failed");
        NgsiError::internal("the broker's storage failed; try again")
    }
}

impl NgsiError {
    /// The ProblemDetails document.
    pub fn body(&self) -> serde_json::Value {
        serde_json::json!({
            "type": self.kind.uri(),
            "title": self.kind.title(),
            "status": self.kind.status(),
            "detail": self.detail,
        })
    }
}
