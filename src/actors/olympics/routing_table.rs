//! What the Dispatcher publishes when the front-ends change, read without a lock by the ingress
//! (to reach a tablet's front-end) and by the front-ends (to reach each other: it is their
//! group's membership); and beside it the tablets' directory, which registrations change in
//! place.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use actix::Addr;
use arc_swap::ArcSwap;
use uuid::Uuid;

use crate::actors::olympics::frontend::Frontend;
use crate::actors::server_group::Members;
use crate::actors::supervisor::ActorCell;

/// One front-end as the router sees it.
#[derive(Debug)]
pub struct FrontendSlot {
    /// Its numeric id in the group (the highest live one leads).
    pub id: u64,
    pub addr: Addr<Frontend>,
    pub cell: Arc<ActorCell>,
    /// Requests sent and not yet answered: the load for anonymous least-loaded balancing.
    pub in_flight: AtomicUsize,
    /// Tablets assigned to it (and being registered with it), kept by the Dispatcher: the load
    /// for placing tablets, counted as they come and go rather than over all tablets.
    pub tablets: AtomicUsize,
}

impl FrontendSlot {
    pub fn new(id: u64, addr: Addr<Frontend>, cell: Arc<ActorCell>) -> Arc<Self> {
        Arc::new(Self {
            id,
            addr,
            cell,
            in_flight: AtomicUsize::new(0),
            tablets: AtomicUsize::new(0),
        })
    }
}

/// Every registered tablet: the id of its front-end, and its public label (for logs: the id
/// itself is the tablet's secret). One map, shared by the Dispatcher (its only writer) and the
/// ingress (which reads it on every tablet request): a registration is one insert, not a new
/// copy of every tablet.
#[derive(Debug, Default)]
pub struct TabletDirectory {
    homes: RwLock<HashMap<Uuid, Home>>,
}

/// Where a tablet is served, and how it is named in public.
#[derive(Debug, Clone)]
pub struct Home {
    pub frontend: u64,
    pub label: Arc<str>,
    /// When the tablet was last heard from ([`now_ms`]): any lookup of its home or label (a
    /// read with its id, a push stream opened or kept alive) counts.
    pub heard: Arc<AtomicU64>,
}

impl Home {
    /// A tablet at `frontend`, heard from now.
    pub fn new(frontend: u64, label: Arc<str>) -> Home {
        Home {
            frontend,
            label,
            heard: Arc::new(AtomicU64::new(now_ms())),
        }
    }

    fn touch(&self) {
        self.heard.store(now_ms(), Ordering::Relaxed);
    }
}

pub use crate::actors::clock::now_ms;

impl TabletDirectory {
    /// The front-end id of tablet `id`, if it is registered.
    pub fn home(&self, id: &Uuid) -> Option<u64> {
        self.read().get(id).map(|h| {
            h.touch();
            h.frontend
        })
    }

    /// The label of tablet `id`, if it is registered.
    pub fn label(&self, id: &Uuid) -> Option<Arc<str>> {
        self.read().get(id).map(|h| {
            h.touch();
            h.label.clone()
        })
    }

    pub fn contains(&self, id: &Uuid) -> bool {
        self.read().contains_key(id)
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub(super) fn insert(&self, id: Uuid, home: Home) {
        self.write().insert(id, home);
    }

    pub(super) fn remove(&self, id: &Uuid) -> Option<u64> {
        self.write().remove(id).map(|h| h.frontend)
    }

    /// Puts `homes` in place of everything (a reload).
    /// Tablets last heard from before `cutoff_ms` ([`now_ms`]).
    pub(super) fn silent_since(&self, cutoff_ms: u64) -> Vec<Uuid> {
        self.read()
            .iter()
            .filter(|(_, h)| h.heard.load(Ordering::Relaxed) < cutoff_ms)
            .map(|(&id, _)| id)
            .collect()
    }

    pub(super) fn replace(&self, homes: HashMap<Uuid, Home>) {
        *self.write() = homes;
    }

    /// Moves every tablet of front-end `from` to the front-end `to` picks for it.
    pub(super) fn rehome(&self, from: u64, mut to: impl FnMut(Uuid) -> Option<u64>) {
        let mut homes = self.write();
        for (&id, home) in homes.iter_mut().filter(|(_, home)| home.frontend == from) {
            if let Some(next) = to(id) {
                home.frontend = next;
            }
        }
    }

    // A panic never leaves the map half-changed (each change is one call on it), so a
    // poisoned lock still guards a whole map.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<Uuid, Home>> {
        self.homes.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<Uuid, Home>> {
        self.homes.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the dispatcher publishes when the front-ends change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(super) frontends: Vec<Arc<FrontendSlot>>,
    pub(super) tablets: Arc<TabletDirectory>,
}

impl RoutingTable {
    pub fn new(frontends: Vec<Arc<FrontendSlot>>, tablets: Arc<TabletDirectory>) -> Self {
        Self { frontends, tablets }
    }

    pub fn frontends(&self) -> &[Arc<FrontendSlot>] {
        &self.frontends
    }

    /// The front-end with group id `id`.
    pub fn frontend(&self, id: u64) -> Option<&Arc<FrontendSlot>> {
        self.frontends.iter().find(|s| s.id == id)
    }

    /// The index in `frontends()` of tablet `id`'s front-end: `Ok(None)` when that front-end is
    /// gone (the tablet is being moved), an error when the tablet is not registered.
    pub fn home_of(&self, id: Uuid) -> Result<Option<usize>, crate::olympics::OlympicsError> {
        let home = self
            .tablets
            .home(&id)
            .ok_or(crate::olympics::OlympicsError::UnknownTablet(id))?;
        Ok(self.frontends.iter().position(|s| s.id == home))
    }
}

/// The front-end group's membership is the table's list of front-ends.
impl Members<Frontend> for ArcSwap<RoutingTable> {
    fn members(&self) -> Vec<(u64, Addr<Frontend>)> {
        let table = self.load();
        table
            .frontends()
            .iter()
            .map(|s| (s.id, s.addr.clone()))
            .collect()
    }

    fn member(&self, id: u64) -> Option<Addr<Frontend>> {
        self.load().frontend(id).map(|s| s.addr.clone())
    }
}
