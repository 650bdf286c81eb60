//! Readiness: the list of conditions `GET /readyz` reports, each set by the component it
//! belongs to.
//!
//! The server registers `listeners` (true once every listener accepts) and `not_draining`
//! (false from the moment a graceful shutdown begins, so a load balancer stops sending new
//! work while in-flight requests finish). Later components register their own: the auth
//! module a condition per issuer key set, the cluster a condition for the revocation
//! snapshot. tollgate is ready when every registered condition holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

/// The set of readiness conditions. Cloning shares the set.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Arc<RwLock<Vec<(String, ReadinessFlag)>>>,
}

/// One condition; its owner sets it. Cloning shares the flag.
#[derive(Clone, Default, Debug)]
pub struct ReadinessFlag(Arc<AtomicBool>);

impl ReadinessFlag {
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    pub fn get(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }
}

impl Readiness {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a condition named `name`, initially `ready`, and returns its flag. Registering a
    /// name twice returns the existing flag, so a component restarted in place keeps one entry.
    pub fn register(&self, name: &str, ready: bool) -> ReadinessFlag {
        let mut checks = self.checks.write();
        if let Some((_, f)) = checks.iter().find(|(n, _)| n == name) {
            f.set(ready);
            return f.clone();
        }
        let flag = ReadinessFlag::default();
        flag.set(ready);
        checks.push((name.to_string(), flag.clone()));
        flag
    }

    /// Drops the conditions whose names `unwanted` picks (a component that is gone, such as
    /// an issuer a reload removed).
    pub fn remove_where(&self, unwanted: impl Fn(&str) -> bool) {
        self.checks.write().retain(|(n, _)| !unwanted(n));
    }

    /// Whether every condition holds.
    pub fn is_ready(&self) -> bool {
        self.checks.read().iter().all(|(_, f)| f.get())
    }

    /// Every condition and its state, in registration order.
    pub fn report(&self) -> Vec<(String, bool)> {
        self.checks
            .read()
            .iter()
            .map(|(n, f)| (n.clone(), f.get()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_condition_holds() {
        let r = Readiness::new();
        assert!(r.is_ready(), "no conditions: nothing to wait for");
        let a = r.register("listeners", false);
        let b = r.register("keys", true);
        assert!(!r.is_ready());
        a.set(true);
        assert!(r.is_ready());
        b.set(false);
        assert_eq!(
            r.report(),
            vec![("listeners".to_string(), true), ("keys".to_string(), false)]
        );
        let again = r.register("keys", true);
        assert!(b.get(), "same flag returned for the same name");
        assert!(again.get());
        assert_eq!(r.report().len(), 2);
    }
}
