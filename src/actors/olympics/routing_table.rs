//! What the Dispatcher publishes after every change, read without a lock by the ingress (to
//! reach a tablet's front-end) and by the front-ends (to reach each other: it is their group's
//! membership).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

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
}

impl FrontendSlot {
    pub fn new(id: u64, addr: Addr<Frontend>, cell: Arc<ActorCell>) -> Arc<Self> {
        Arc::new(Self {
            id,
            addr,
            cell,
            in_flight: AtomicUsize::new(0),
        })
    }
}

/// What the dispatcher publishes after every change.
#[derive(Debug, Default)]
pub struct RoutingTable {
    pub(super) frontends: Vec<Arc<FrontendSlot>>,
    pub(super) tablets: HashMap<Uuid, usize>,
}

impl RoutingTable {
    pub fn new(frontends: Vec<Arc<FrontendSlot>>, tablets: HashMap<Uuid, usize>) -> Self {
        Self { frontends, tablets }
    }

    pub fn frontends(&self) -> &[Arc<FrontendSlot>] {
        &self.frontends
    }

    /// The front-end with group id `id`.
    pub fn frontend(&self, id: u64) -> Option<&Arc<FrontendSlot>> {
        self.frontends.iter().find(|s| s.id == id)
    }

    /// How many tablets each front-end has, in `frontends()` order.
    pub fn tablet_counts(&self) -> Vec<usize> {
        tablet_counts(self.frontends.len(), &self.tablets)
    }
}

/// How many tablets each of `frontends` front-ends has, given tablet → front-end index.
pub fn tablet_counts(frontends: usize, tablets: &HashMap<Uuid, usize>) -> Vec<usize> {
    let mut counts = vec![0; frontends];
    for &i in tablets.values() {
        counts[i] += 1;
    }
    counts
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
