//! Problem details (RFC 9457) for requests tollgate cannot answer.
