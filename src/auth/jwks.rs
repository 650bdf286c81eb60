//! Key sets: parsing JWKS documents into verifying keys, and keeping a remote JWKS fresh.
//!
//! A [`KeySet`] is immutable; an issuer's current set is swapped atomically ([`IssuerKeys`]),
//! so verification never waits on a fetch. Rules for keys, from what Better Auth publishes
//! (`{kty:"OKP", crv:"Ed25519", x, kid, alg}`, no `use`):
//! - a JWK without `use` is accepted; `use` other than `sig` is skipped;
//! - `crv` is checked against `kty` and the key length; `alg`, when present, must fit the key
//!   type and then pins the key to that one algorithm;
//! - symmetric (`oct`) keys in a key set are skipped: HS256 only comes from a configured secret;
//! - keys tollgate cannot use are skipped, not fatal, so one odd key does not hide the others.
//!
//! Remote sets ([`IssuerKeys::remote`]) are fetched with a timeout and a body-size bound,
//! refreshed in the background (`Cache-Control: max-age` clamped to bounds), refetched on an
//! unknown `kid` at most once per cooldown with a negative cache of unknown kids, and on a
//! failed fetch the last good set stays.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P521_SHA512_FIXED};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::DecodingKey;
use parking_lot::Mutex;
use serde_json::Value;

use super::verify::{Alg, AlgSet};
use crate::clock::Clock;

/// Most keys read from one JWKS document.
pub const MAX_KEYS: usize = 64;
/// Most kids remembered as unknown per issuer.
const MAX_NEGATIVE_KIDS: usize = 4096;
/// Without a `kid`, at most this many keys of the right type are tried.
const MAX_KIDLESS_TRIES: usize = 4;

/// One public key (or the HS256 secret) and the algorithms it may verify.
pub struct VerifyingKey {
    pub kid: Option<String>,
    algs: AlgSet,
    material: KeyMaterial,
    /// SHA-256 of the key type, public key bytes and algorithms: tells whether a refreshed
    /// set still holds this exact key.
    ident: [u8; 32],
}

enum KeyMaterial {
    /// Verified through jsonwebtoken (EdDSA, ES256, RS256, PS256, HS256).
    Jwt(DecodingKey),
    /// P-521, parsed once by aws-lc.
    P521(ParsedPublicKey),
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print key material (the HS256 secret lives here too).
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

impl VerifyingKey {
    /// The HS256 key for a shared secret. The caller checked its length.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            kid: None,
            algs: AlgSet::of(&[Alg::HS256]),
            material: KeyMaterial::Jwt(DecodingKey::from_secret(secret)),
            // A secret set never changes; no need to derive anything from the secret.
            ident: [0; 32],
        }
    }

    /// Algorithms this key may verify.
    pub fn algs(&self) -> AlgSet {
        self.algs
    }

    /// Checks `signature_b64` over `message` with `alg`. `alg` must be one of [`Self::algs`];
    /// otherwise this returns false (the algorithm is pinned to the key type).
    pub fn verify(&self, alg: Alg, message: &[u8], signature_b64: &str) -> bool {
        if !self.algs.contains(alg) {
            return false;
        }
        match &self.material {
            KeyMaterial::Jwt(key) => {
                let jalg = match alg {
                    Alg::EdDSA => jsonwebtoken::Algorithm::EdDSA,
                    Alg::ES256 => jsonwebtoken::Algorithm::ES256,
                    Alg::RS256 => jsonwebtoken::Algorithm::RS256,
                    Alg::PS256 => jsonwebtoken::Algorithm::PS256,
                    Alg::HS256 => jsonwebtoken::Algorithm::HS256,
                    Alg::ES512 => return false,
                };
                jsonwebtoken::crypto::verify(signature_b64, message, key, jalg).unwrap_or(false)
            }
            KeyMaterial::P521(key) => {
                if alg != Alg::ES512 {
                    return false;
                }
                match URL_SAFE_NO_PAD.decode(signature_b64) {
                    // JWS ECDSA signatures are the fixed-width r‖s (RFC 7518 §3.4).
                    Ok(sig) if sig.len() == 132 => key.verify_sig(message, &sig).is_ok(),
                    _ => false,
                }
            }
        }
    }

    /// Parses one JWK. `Ok(None)`: a well-formed key tollgate does not use (skipped).
    pub fn from_jwk(jwk: &Value) -> Result<Option<Self>, String> {
        let obj = jwk.as_object().ok_or("a key is not a JSON object")?;
        let field = |name: &str| -> Result<Option<&str>, String> {
            match obj.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(format!("key field {name:?} is not a string")),
            }
        };
        let bytes = |name: &str| -> Result<Vec<u8>, String> {
            let s = field(name)?.ok_or_else(|| format!("key lacks {name:?}"))?;
            // Tolerate padding some publishers add; the bytes are what matter.
            URL_SAFE_NO_PAD
                .decode(s.trim_end_matches('='))
                .map_err(|_| format!("key field {name:?} is not base64url"))
        };
        if let Some(u) = field("use")? {
            if u != "sig" {
                return Ok(None);
            }
        }
        if let Some(Value::Array(ops)) = obj.get("key_ops") {
            if !ops.iter().any(|o| o == "verify") {
                return Ok(None);
            }
        }
        let kid = field("kid")?.map(str::to_string);
        if kid
            .as_ref()
            .is_some_and(|k| k.is_empty() || k.len() > super::verify::MAX_KID_BYTES)
        {
            return Err("kid is empty or too long".into());
        }
        let declared = match field("alg")? {
            None => None,
            Some(a) => match Alg::from_jose(a) {
                Ok(a) => Some(a),
                // An algorithm tollgate does not verify (RS512, ES384…): skip the key.
                Err(_) => return Ok(None),
            },
        };
        let kty = field("kty")?.ok_or("key lacks \"kty\"")?;
        let crv = field("crv")?;
        let (family, material, raw): (AlgSet, KeyMaterial, Vec<u8>) = match (kty, crv) {
            ("OKP", Some("Ed25519")) => {
                let x = bytes("x")?;
                if x.len() != 32 {
                    return Err("Ed25519 key is not 32 bytes".into());
                }
                (
                    AlgSet::of(&[Alg::EdDSA]),
                    KeyMaterial::Jwt(DecodingKey::from_ed_der(&x)),
                    x,
                )
            }
            ("EC", Some("P-256")) => {
                let point = ec_point(&bytes("x")?, &bytes("y")?, 32)?;
                // Parse once to refuse a point off the curve now rather than at every token.
                ParsedPublicKey::new(&aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED, &point)
                    .map_err(|_| "P-256 key is not a valid point")?;
                (
                    AlgSet::of(&[Alg::ES256]),
                    KeyMaterial::Jwt(DecodingKey::from_ec_der(&point)),
                    point,
                )
            }
            ("EC", Some("P-521")) => {
                let point = ec_point(&bytes("x")?, &bytes("y")?, 66)?;
                let key = ParsedPublicKey::new(&ECDSA_P521_SHA512_FIXED, &point)
                    .map_err(|_| "P-521 key is not a valid point")?;
                (AlgSet::of(&[Alg::ES512]), KeyMaterial::P521(key), point)
            }
            ("RSA", None) => {
                let n = bytes("n")?;
                let e = bytes("e")?;
                let n_bits = significant_bits(&n);
                if !(2048..=8192).contains(&n_bits) {
                    return Err("RSA modulus must be 2048 to 8192 bits".into());
                }
                if e.is_empty() || e.len() > 8 {
                    return Err("RSA exponent out of range".into());
                }
                let material = KeyMaterial::Jwt(DecodingKey::from_rsa_raw_components(&n, &e));
                let mut raw = n;
                raw.push(b'|');
                raw.extend_from_slice(&e);
                (AlgSet::of(&[Alg::RS256, Alg::PS256]), material, raw)
            }
            ("RSA", Some(_)) => return Err("RSA key with a crv".into()),
            ("OKP", _) | ("EC", _) => return Ok(None), // Ed448, X25519, P-384, secp256k1…
            ("oct", _) => return Ok(None),             // never trust a secret from a key set
            _ => return Ok(None),
        };
        let algs = match declared {
            None => family,
            Some(a) if family.contains(a) => AlgSet::of(&[a]),
            Some(_) => return Err("key alg does not fit its kty/crv".into()),
        };
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(kty.as_bytes());
        ctx.update(&[0, algs.bits()]);
        ctx.update(&raw);
        let mut ident = [0u8; 32];
        ident.copy_from_slice(ctx.finish().as_ref());
        Ok(Some(Self {
            kid,
            algs,
            material,
            ident,
        }))
    }
}

fn ec_point(x: &[u8], y: &[u8], len: usize) -> Result<Vec<u8>, String> {
    if x.len() != len || y.len() != len {
        return Err("EC coordinates have the wrong length for the curve".into());
    }
    let mut p = Vec::with_capacity(1 + 2 * len);
    p.push(0x04);
    p.extend_from_slice(x);
    p.extend_from_slice(y);
    Ok(p)
}

fn significant_bits(n: &[u8]) -> usize {
    match n.iter().position(|b| *b != 0) {
        None => 0,
        Some(i) => (n.len() - i) * 8 - n[i].leading_zeros() as usize,
    }
}

/// An immutable set of verifying keys.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<VerifyingKey>,
    by_kid: HashMap<String, usize>,
    /// A secret has no kid: any token kid is ignored.
    ignore_kid: bool,
    /// Keys present in the document but not usable.
    pub skipped: usize,
}

impl KeySet {
    /// The set holding one HS256 secret.
    pub fn hs256(secret: &[u8]) -> Self {
        Self {
            keys: vec![VerifyingKey::hs256(secret)],
            by_kid: HashMap::new(),
            ignore_kid: true,
            skipped: 0,
        }
    }

    /// Parses a JWKS document (`{"keys": [...]}`). Fails when no key is usable, so a broken
    /// document never replaces a working set.
    pub fn from_jwks(doc: &[u8]) -> Result<Self, String> {
        let v: Value = serde_json::from_slice(doc).map_err(|_| "key set is not JSON")?;
        let list = v
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("key set has no \"keys\" array")?;
        let mut set = KeySet::default();
        for jwk in list.iter() {
            if set.keys.len() >= MAX_KEYS {
                set.skipped += 1;
                continue;
            }
            match VerifyingKey::from_jwk(jwk) {
                Ok(Some(k)) => {
                    if let Some(kid) = &k.kid {
                        if set.by_kid.contains_key(kid) {
                            // Two keys, one kid: which one a token means is ambiguous.
                            set.skipped += 1;
                            continue;
                        }
                        set.by_kid.insert(kid.clone(), set.keys.len());
                    }
                    set.keys.push(k);
                }
                Ok(None) | Err(_) => set.skipped += 1,
            }
        }
        if set.keys.is_empty() {
            return Err("key set has no usable key".into());
        }
        Ok(set)
    }

    /// Reads a static JWKS file.
    pub fn from_file(path: &Path) -> Result<Self, String> {
        let doc = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        Self::from_jwks(&doc).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// True when every key of `old` (same kid, same key) is still here: a refresh that
    /// fails this removed or replaced a key.
    pub fn keeps_every_key_of(&self, old: &KeySet) -> bool {
        old.keys.iter().all(|k| match &k.kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .is_some_and(|&i| self.keys[i].ident == k.ident),
            None => self.keys.iter().any(|n| n.ident == k.ident),
        })
    }

    pub fn contains_kid(&self, kid: &str) -> bool {
        self.ignore_kid || self.by_kid.contains_key(kid)
    }

    /// The keys to try for a token: the one named by `kid`, or, without a kid, the first few
    /// whose type fits `alg`. `None` means the kid is unknown (worth a refetch).
    pub fn candidates(&self, kid: Option<&str>, alg: Alg) -> Option<Vec<&VerifyingKey>> {
        match kid {
            Some(k) if !self.ignore_kid => self.by_kid.get(k).map(|&i| vec![&self.keys[i]]),
            _ => Some(
                self.keys
                    .iter()
                    .filter(|k| k.algs.contains(alg))
                    .take(MAX_KIDLESS_TRIES)
                    .collect(),
            ),
        }
    }
}

/// Fetch counters for one issuer, exported by the metrics module.
#[derive(Debug, Default)]
pub struct KeySetStats {
    /// Fetches attempted (background and unknown-kid).
    pub fetches: AtomicU64,
    /// Fetches that failed (network, status, size, parse).
    pub failures: AtomicU64,
    /// Fetches triggered by an unknown kid.
    pub kid_refetches: AtomicU64,
    /// Unknown-kid lookups answered without a fetch (cooldown or negative cache).
    pub kid_refetches_suppressed: AtomicU64,
}

/// Settings of a remote key set.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    pub timeout: Duration,
    pub max_bytes: usize,
    pub refresh: Duration,
    pub min_refresh: Duration,
    pub max_refresh: Duration,
    pub kid_cooldown: Duration,
    /// PEM CA bundle for https. `None`: the system bundle, when one is found.
    pub ca_file: Option<std::path::PathBuf>,
}

impl Default for RemoteOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            max_bytes: 256 * 1024,
            refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(3600),
            kid_cooldown: Duration::from_secs(1),
            ca_file: None,
        }
    }
}

/// Where distributions keep their CA bundle.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

struct Remote {
    url: String,
    client: reqwest::Client,
    opts: RemoteOptions,
    clock: Arc<dyn Clock>,
    /// When the last fetch started (ms); `None` before the first.
    last_fetch_ms: Mutex<Option<u64>>,
    /// Unknown kid → until when (ms) it is answered as unknown without a fetch.
    negative: Mutex<HashMap<String, u64>>,
    /// One fetch at a time; waiters re-check the set after it.
    fetching: tokio::sync::Mutex<()>,
}

/// One issuer's key set: fixed (file, secret) or remote (JWKS URL).
pub struct IssuerKeys {
    name: String,
    current: ArcSwapOption<KeySet>,
    remote: Option<Remote>,
    /// Woken when a set is installed.
    loaded: tokio::sync::Notify,
    /// Bumped when a refresh removes or replaces a key, so cached tokens verified under the
    /// previous set are verified again.
    generation: AtomicU64,
    pub stats: KeySetStats,
}

impl std::fmt::Debug for IssuerKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeys")
            .field("name", &self.name)
            .field("url", &self.remote.as_ref().map(|r| &r.url))
            .field("loaded", &self.current.load().is_some())
            .finish()
    }
}

impl IssuerKeys {
    /// A key set that never changes (static file or HS256 secret).
    pub fn fixed(name: &str, set: KeySet) -> Self {
        Self {
            name: name.to_string(),
            current: ArcSwapOption::from_pointee(set),
            remote: None,
            loaded: tokio::sync::Notify::new(),
            generation: AtomicU64::new(0),
            stats: KeySetStats::default(),
        }
    }

    /// A key set fetched from `url`. Empty until the first successful fetch.
    pub fn remote(
        name: &str,
        url: &str,
        opts: RemoteOptions,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, String> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_root_certs(false)
            .timeout(opts.timeout)
            .connect_timeout(opts.timeout)
            // A JWKS endpoint that redirects is misconfigured; following it would let
            // whoever controls the redirect choose the keys.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("tollgate/", env!("CARGO_PKG_VERSION")));
        let ca = match &opts.ca_file {
            Some(p) => Some(std::fs::read(p).map_err(|e| format!("ca_file {}: {e}", p.display()))?),
            None => SYSTEM_CA_BUNDLES.iter().find_map(|p| std::fs::read(p).ok()),
        };
        if let Some(pem) = ca {
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("issuer {name:?}: CA bundle: {e}"))?;
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let client = b
            .build()
            .map_err(|e| format!("issuer {name:?}: HTTP client: {e}"))?;
        Ok(Self {
            name: name.to_string(),
            current: ArcSwapOption::empty(),
            remote: Some(Remote {
                url: url.to_string(),
                client,
                opts,
                clock,
                last_fetch_ms: Mutex::new(None),
                negative: Mutex::new(HashMap::new()),
                fetching: tokio::sync::Mutex::new(()),
            }),
            loaded: tokio::sync::Notify::new(),
            generation: AtomicU64::new(0),
            stats: KeySetStats::default(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The current set, if any has been loaded.
    pub fn current(&self) -> Option<Arc<KeySet>> {
        self.current.load_full()
    }

    /// Changes whenever a refresh removes or replaces a key.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// True once a set is loaded.
    pub fn is_ready(&self) -> bool {
        self.current.load().is_some()
    }

    /// Waits until a set is loaded or `deadline` passes; returns readiness.
    pub async fn wait_ready_until(&self, deadline: tokio::time::Instant) -> bool {
        loop {
            let notified = self.loaded.notified();
            tokio::pin!(notified);
            // Register before checking, so a store between the check and the await is seen.
            notified.as_mut().enable();
            if self.is_ready() {
                return true;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return self.is_ready();
            }
        }
    }

    pub fn is_remote(&self) -> bool {
        self.remote.is_some()
    }

    /// True when `kid` was recently looked up in vain: answer "unknown" without fetching.
    pub fn is_known_unknown(&self, kid: &str) -> bool {
        let Some(r) = &self.remote else { return false };
        let now = r.clock.now_millis();
        r.negative.lock().get(kid).is_some_and(|until| *until > now)
    }

    /// Counts an unknown-kid refetch that was not made because the kid was looked up in
    /// vain moments ago (the negative cache), as [`Self::resolve_unknown_kid`] counts those
    /// it suppresses itself.
    pub fn count_suppressed_refetch(&self) {
        self.stats
            .kid_refetches_suppressed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Fetches the set now and installs it on success. Returns the response's `max-age`.
    /// On failure the previous set stays.
    pub async fn fetch_now(&self) -> Result<Option<Duration>, String> {
        let Some(r) = &self.remote else {
            return Ok(None);
        };
        let _guard = r.fetching.lock().await;
        self.fetch_locked(r).await
    }

    async fn fetch_locked(&self, r: &Remote) -> Result<Option<Duration>, String> {
        *r.last_fetch_ms.lock() = Some(r.clock.now_millis());
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        match fetch_jwks(r).await {
            Ok((set, max_age)) => {
                if set.skipped > 0 {
                    tracing::info!(issuer = %self.name, skipped = set.skipped, "key set: skipped keys tollgate cannot use");
                }
                let removed = self
                    .current
                    .load()
                    .as_ref()
                    .is_some_and(|old| !set.keeps_every_key_of(old));
                self.current.store(Some(Arc::new(set)));
                // After the store: a verifier that read the old generation may have used
                // either set, and its cache entry is re-verified; one that read the new
                // generation surely loads the new set.
                if removed {
                    self.generation.fetch_add(1, Ordering::SeqCst);
                    tracing::info!(issuer = %self.name, "key set: a key was removed or replaced; cached tokens are verified again");
                }
                self.loaded.notify_waiters();
                Ok(max_age)
            }
            Err(e) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(issuer = %self.name, error = %e, "key set fetch failed; keeping the last good set");
                Err(e)
            }
        }
    }

    /// A token named `kid`, which the current set lacks. Refetches unless a fetch happened
    /// within the cooldown or the kid is negatively cached; returns whether the kid is known
    /// afterwards. Concurrent callers share one fetch.
    pub async fn resolve_unknown_kid(&self, kid: &str) -> bool {
        let Some(r) = &self.remote else {
            return false;
        };
        if self.is_known_unknown(kid) {
            self.stats
                .kid_refetches_suppressed
                .fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let _guard = r.fetching.lock().await;
        // Someone else's fetch may have brought it while we waited.
        if self.current().is_some_and(|s| s.contains_kid(kid)) {
            return true;
        }
        let now = r.clock.now_millis();
        let cooldown = r.opts.kid_cooldown.as_millis() as u64;
        let last = *r.last_fetch_ms.lock();
        if let Some(last) = last {
            if now < last.saturating_add(cooldown) {
                self.stats
                    .kid_refetches_suppressed
                    .fetch_add(1, Ordering::Relaxed);
                self.remember_unknown(r, kid, last.saturating_add(cooldown));
                return false;
            }
        }
        self.stats.kid_refetches.fetch_add(1, Ordering::Relaxed);
        let _ = self.fetch_locked(r).await;
        let known = self.current().is_some_and(|s| s.contains_kid(kid));
        if !known {
            self.remember_unknown(r, kid, now.saturating_add(cooldown));
        }
        known
    }

    fn remember_unknown(&self, r: &Remote, kid: &str, until: u64) {
        let mut neg = r.negative.lock();
        if neg.len() >= MAX_NEGATIVE_KIDS {
            let now = r.clock.now_millis();
            neg.retain(|_, u| *u > now);
            if neg.len() >= MAX_NEGATIVE_KIDS {
                // Still full of live entries (a flood of random kids): forget them all. The
                // cooldown still bounds fetches to one per period.
                neg.clear();
            }
        }
        neg.insert(kid.to_string(), until);
    }

    /// Starts the background refresh of a remote set: fetch now, then again after the
    /// response's `max-age` (clamped) or the refresh interval; after a failure, retry with
    /// a doubling delay. Stops when the `IssuerKeys` is dropped. Needs a Tokio runtime.
    pub fn spawn_refresh(self: &Arc<Self>) -> Option<tokio::task::JoinHandle<()>> {
        let opts = self.remote.as_ref()?.opts.clone();
        let weak: Weak<Self> = Arc::downgrade(self);
        Some(tokio::spawn(async move {
            let first_retry = opts.min_refresh.min(Duration::from_secs(1));
            let max_retry = opts.max_refresh.min(Duration::from_secs(60));
            let mut retry = first_retry;
            loop {
                let Some(keys) = weak.upgrade() else { return };
                let delay = match keys.fetch_now().await {
                    Ok(max_age) => {
                        retry = first_retry;
                        next_refresh(max_age, &opts)
                    }
                    Err(_) => {
                        let d = retry;
                        retry = (retry * 2).min(max_retry);
                        d
                    }
                };
                drop(keys);
                tokio::time::sleep(delay).await;
            }
        }))
    }
}

/// The delay before the next background fetch.
pub fn next_refresh(max_age: Option<Duration>, opts: &RemoteOptions) -> Duration {
    max_age
        .unwrap_or(opts.refresh)
        .clamp(opts.min_refresh, opts.max_refresh)
}

/// `max-age` from `Cache-Control`; `no-store`/`no-cache` count as 0 (the minimum applies).
pub fn cache_control_max_age(value: &str) -> Option<Duration> {
    let mut out = None;
    for d in value.split(',') {
        let d = d.trim();
        if d.eq_ignore_ascii_case("no-store") || d.eq_ignore_ascii_case("no-cache") {
            return Some(Duration::ZERO);
        }
        if let Some((k, v)) = d.split_once('=') {
            if k.trim().eq_ignore_ascii_case("max-age") {
                if let Ok(secs) = v.trim().trim_matches('"').parse::<u64>() {
                    out = Some(Duration::from_secs(secs));
                }
            }
        }
    }
    out
}

async fn fetch_jwks(r: &Remote) -> Result<(KeySet, Option<Duration>), String> {
    let mut resp = r
        .client
        .get(&r.url)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| format!("GET {}: {}", r.url, error_chain(&e)))?;
    if resp.status() != reqwest::StatusCode::OK {
        return Err(format!("GET {}: status {}", r.url, resp.status()));
    }
    let max = r.opts.max_bytes;
    if resp.content_length().is_some_and(|l| l > max as u64) {
        return Err(format!("GET {}: body larger than {max} bytes", r.url));
    }
    let max_age = resp
        .headers()
        .get(reqwest::header::CACHE_CONTROL)
        .and_then(|v| v.to_str().ok())
        .and_then(cache_control_max_age);
    let mut body = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| format!("GET {}: {}", r.url, error_chain(&e)))?
    {
        if body.len() + chunk.len() > max {
            return Err(format!("GET {}: body larger than {max} bytes", r.url));
        }
        body.extend_from_slice(&chunk);
    }
    let set = KeySet::from_jwks(&body).map_err(|e| format!("GET {}: {e}", r.url))?;
    Ok((set, max_age))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ED_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    #[test]
    fn better_auth_jwk_without_use_is_accepted() {
        let set = KeySet::from_jwks(
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "k1", "alg": "EdDSA"}]})
                .to_string()
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(set.len(), 1);
        let c = set.candidates(Some("k1"), Alg::EdDSA).unwrap();
        assert_eq!(c[0].algs(), AlgSet::of(&[Alg::EdDSA]));
        assert!(set.candidates(Some("k2"), Alg::EdDSA).is_none());
    }

    #[test]
    fn unusable_keys_are_skipped_and_bad_ones_checked() {
        let doc = json!({"keys": [
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "enc", "use": "enc"},
            {"kty": "oct", "k": "c2VjcmV0", "kid": "sym"},
            {"kty": "OKP", "crv": "X25519", "x": ED_X, "kid": "x"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "short"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "mismatch", "alg": "ES256"},
            {"kty": "RSA", "n": "AQAB", "e": "AQAB", "kid": "tiny-rsa"},
            {"kty": "EC", "crv": "P-256", "x": ED_X, "y": ED_X, "kid": "off-curve"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "good"},
            {"kty": "OKP", "crv": "Ed25519", "x": ED_X, "kid": "good"},
        ]});
        let set = KeySet::from_jwks(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set.skipped, 8);
        assert!(set.contains_kid("good") && !set.contains_kid("sym"));
        assert!(KeySet::from_jwks(b"{\"keys\": []}").is_err());
        assert!(KeySet::from_jwks(b"not json").is_err());
        assert!(KeySet::from_jwks(b"{\"keys\": 5}").is_err());
    }

    #[test]
    fn secret_sets_ignore_kid_and_pin_hs256() {
        let set = KeySet::hs256(&[7u8; 32]);
        let c = set.candidates(Some("whatever"), Alg::HS256).unwrap();
        assert_eq!(c.len(), 1);
        assert!(set.candidates(None, Alg::RS256).unwrap().is_empty());
        assert!(!c[0].verify(Alg::RS256, b"m", "c2ln"));
        assert!(format!("{:?}", c[0]).contains("VerifyingKey"));
    }

    #[test]
    fn cache_control() {
        let d = |s| cache_control_max_age(s);
        assert_eq!(d("public, max-age=600"), Some(Duration::from_secs(600)));
        assert_eq!(d("Max-Age = 5"), Some(Duration::from_secs(5)));
        assert_eq!(d("no-store"), Some(Duration::ZERO));
        assert_eq!(d("public"), None);
        assert_eq!(d("max-age=-5"), None);
        let o = RemoteOptions::default();
        assert_eq!(next_refresh(Some(Duration::ZERO), &o), o.min_refresh);
        assert_eq!(
            next_refresh(Some(Duration::from_secs(1 << 30)), &o),
            o.max_refresh
        );
        assert_eq!(next_refresh(None, &o), o.refresh);
        assert_eq!(
            next_refresh(Some(Duration::from_secs(120)), &o),
            Duration::from_secs(120)
        );
    }

    #[test]
    fn rsa_bit_count() {
        assert_eq!(significant_bits(&[0, 0, 1]), 1);
        assert_eq!(significant_bits(&[0x80, 0]), 16);
        assert_eq!(significant_bits(&[]), 0);
    }
}
