//! The PostgresKeeper (`postgres-keeper`): watches the private PostgreSQL cluster (when Obelix runs one) and starts
//! the server again if it dies. The pool reconnects by itself once the server is back.

use std::sync::Arc;
use std::time::Duration;

use actix::{Actor, AsyncContext, Context, WrapFuture};

use crate::actors::supervisor::{ActorCell, ShutdownSignal};
use crate::storage::pg_cluster::PrivateCluster;

/// How often the keeper looks at the server process.
const CHECK_INTERVAL: Duration = Duration::from_millis(500);

pub struct PostgresKeeper {
    cluster: Arc<PrivateCluster>,
    cell: Arc<ActorCell>,
    /// Once shutdown begins the server is stopped on purpose: leave it stopped.
    shutdown: ShutdownSignal,
}

impl PostgresKeeper {
    pub fn new(
        cluster: Arc<PrivateCluster>,
        cell: Arc<ActorCell>,
        shutdown: ShutdownSignal,
    ) -> Self {
        Self {
            cluster,
            cell,
            shutdown,
        }
    }
}

impl Actor for PostgresKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(CHECK_INTERVAL, |act, ctx| {
            if act.shutdown.is_set() {
                return;
            }
            let cluster = act.cluster.clone();
            let name = act.cell.name().to_owned();
            // `wait`: one check at a time, never two restarts racing.
            ctx.wait(
                async move {
                    match cluster.ensure_running().await {
                        Ok(true) => tracing::warn!(actor = %name, pid = cluster.pid(), "private postgres had died; {name} restarted it"),
                        Ok(false) => {}
                        Err(e) => tracing::error!(actor = %name, error = %e, "private postgres is down and could not be restarted"),
                    }
                }
                .into_actor(act),
            );
        });
    }
}

impl actix::Supervised for PostgresKeeper {}

crate::supervised_actor_handlers!(PostgresKeeper);
