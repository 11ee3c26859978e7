//! Load balancing over front-end servers (seed 000's dispatcher), free of actix.
//!
//! Guarantees: every candidate order names each live server exactly once, the preferred one
//! first; down servers are never chosen while a live one exists. It does not guarantee a perfect
//! spread under concurrency: loads are read without a lock, so two simultaneous choices may pick
//! the same server.

use crate::settings::BalancingPolicy;

/// What the balancer knows about one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLoad {
    pub alive: bool,
    /// Tablets assigned (for placing tablets) or requests in flight (for anonymous reads).
    pub load: usize,
}

/// The index of the least-loaded live server, lowest index on ties. `None` if all are down.
pub fn least_loaded(servers: &[ServerLoad]) -> Option<usize> {
    servers
        .iter()
        .enumerate()
        .filter(|(_, s)| s.alive)
        .min_by_key(|(i, s)| (s.load, *i))
        .map(|(i, _)| i)
}

/// The order in which to try servers for one request.
///
/// `home` is the server a registered tablet was assigned to: it comes first while alive, and
/// while it is down the least-loaded live server does. Without a home, `policy` picks the first; `ticket` is a round-robin counter value (or a random number for
/// [`BalancingPolicy::Random`]). The other live servers follow, least loaded first, for failover.
pub fn candidate_order(
    servers: &[ServerLoad],
    home: Option<usize>,
    policy: BalancingPolicy,
    ticket: usize,
) -> Vec<usize> {
    let live: Vec<usize> = (0..servers.len()).filter(|&i| servers[i].alive).collect();
    if live.is_empty() {
        return Vec::new();
    }
    let first = match (home, policy) {
        (Some(h), _) if h < servers.len() && servers[h].alive => h,
        // A tablet whose home is down goes to the least-loaded live server, whatever the policy.
        (Some(_), _) | (None, BalancingPolicy::LeastLoaded) => {
            least_loaded(servers).expect("a live server")
        }
        (None, BalancingPolicy::RoundRobin | BalancingPolicy::Random) => live[ticket % live.len()],
    };
    let mut rest: Vec<usize> = live.into_iter().filter(|&i| i != first).collect();
    rest.sort_by_key(|&i| (servers[i].load, i));
    let mut order = Vec::with_capacity(rest.len() + 1);
    order.push(first);
    order.extend(rest);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(load: usize) -> ServerLoad {
        ServerLoad { alive: true, load }
    }
    fn down(load: usize) -> ServerLoad {
        ServerLoad { alive: false, load }
    }

    #[test]
    fn least_loaded_picks_fewest_and_skips_down_servers() {
        assert_eq!(least_loaded(&[up(3), up(1), up(2)]), Some(1));
        assert_eq!(least_loaded(&[up(3), down(0), up(2)]), Some(2));
        assert_eq!(
            least_loaded(&[up(1), up(1)]),
            Some(0),
            "ties go to the lowest index"
        );
        assert_eq!(least_loaded(&[down(0)]), None);
        assert_eq!(least_loaded(&[]), None);
    }

    #[test]
    fn a_live_home_server_comes_first() {
        let servers = [up(0), up(9), up(1)];
        assert_eq!(
            candidate_order(&servers, Some(1), BalancingPolicy::LeastLoaded, 0),
            vec![1, 0, 2]
        );
    }

    #[test]
    fn a_down_home_server_fails_over_to_the_least_loaded() {
        let servers = [up(5), down(0), up(1)];
        assert_eq!(
            candidate_order(&servers, Some(1), BalancingPolicy::RoundRobin, 0),
            vec![2, 0]
        );
    }

    #[test]
    fn round_robin_cycles_over_live_servers() {
        let servers = [up(0), down(0), up(0)];
        let firsts: Vec<usize> = (0..4)
            .map(|t| candidate_order(&servers, None, BalancingPolicy::RoundRobin, t)[0])
            .collect();
        assert_eq!(firsts, vec![0, 2, 0, 2]);
    }

    #[test]
    fn every_live_server_appears_once() {
        let servers = [up(2), up(0), down(0), up(1)];
        for policy in [
            BalancingPolicy::LeastLoaded,
            BalancingPolicy::RoundRobin,
            BalancingPolicy::Random,
        ] {
            for ticket in 0..6 {
                let mut order = candidate_order(&servers, None, policy, ticket);
                order.sort();
                assert_eq!(order, vec![0, 1, 3]);
            }
        }
    }

    #[test]
    fn no_live_server_means_no_candidates() {
        assert!(
            candidate_order(&[down(0), down(0)], None, BalancingPolicy::LeastLoaded, 0).is_empty()
        );
    }
}
