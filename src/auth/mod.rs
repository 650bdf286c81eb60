//! Authentication: JWT verification, key sets, verified-token cache, revocation, API keys.
