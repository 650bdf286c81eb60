//! Route policy: rules, path normalisation, client IP.
