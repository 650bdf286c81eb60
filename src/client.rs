//! An async client for tollgate's RESP protocol, with pipelining and a small pool.
