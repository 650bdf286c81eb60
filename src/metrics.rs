//! Prometheus metrics: one registry, the counters and histograms tollgate exports.
