//! One room server's copy of the reservations, as plain logic: it applies outcomes the database
//! decided (so every replica that applies the same numbers in the same order holds the same
//! reservations), answers checks, and summarises itself in a digest that two replicas share
//! exactly when they hold the same reservations.

use std::collections::{BTreeMap, HashMap};

use super::{Outcome, Reservation};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Replica {
    by_id: BTreeMap<i64, Reservation>,
    /// (room, timeslot, day) → id: the replica's own picture of the UNIQUE constraint.
    by_slot: HashMap<(String, String, String), i64>,
}

impl Replica {
    /// A replica holding `reservations` (a snapshot).
    pub fn from_snapshot(reservations: impl IntoIterator<Item = Reservation>) -> Self {
        let mut replica = Self::default();
        for r in reservations {
            replica.insert(r);
        }
        replica
    }

    /// Applies one outcome. Taken and no-such-reservation change nothing.
    pub fn apply(&mut self, outcome: &Outcome) {
        match outcome {
            Outcome::Confirmed(r) => self.insert(r.clone()),
            Outcome::Cancelled(r) => {
                if let Some(gone) = self.by_id.remove(&r.id) {
                    self.by_slot.remove(&slot_of(&gone));
                }
            }
            Outcome::Taken { .. } | Outcome::NoSuchReservation { .. } => {}
        }
    }

    fn insert(&mut self, r: Reservation) {
        self.by_slot.insert(slot_of(&r), r.id);
        self.by_id.insert(r.id, r);
    }

    /// The reservations of `room`, in id order.
    pub fn of_room(&self, room: &str) -> Vec<Reservation> {
        self.by_id
            .values()
            .filter(|r| r.room == room)
            .cloned()
            .collect()
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Is this room, slot and day reserved?
    pub fn is_taken(&self, room: &str, timeslot: &str, day: &str) -> bool {
        self.by_slot
            .contains_key(&(room.to_owned(), timeslot.to_owned(), day.to_owned()))
    }

    /// FNV-1a over the reservations in id order, as 16 hex digits.
    pub fn digest(&self) -> String {
        digest(self.by_id.values())
    }
}

/// The digest of `reservations` taken in id order (the database's, to compare with replicas).
pub fn digest<'a>(reservations: impl IntoIterator<Item = &'a Reservation>) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for r in reservations {
        let line = format!("{}|{}|{}|{}\n", r.id, r.room, r.timeslot, r.day);
        for byte in line.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn slot_of(r: &Reservation) -> (String, String, String) {
    (r.room.clone(), r.timeslot.clone(), r.day.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reservation(id: i64, day: &str) -> Reservation {
        Reservation {
            id,
            room: "ME4326".into(),
            timeslot: "8:30-9:30".into(),
            day: day.into(),
        }
    }

    #[test]
    fn confirmed_and_cancelled_outcomes_change_the_replica() {
        let mut replica = Replica::default();
        replica.apply(&Outcome::Confirmed(reservation(1, "Friday")));
        assert!(replica.is_taken("ME4326", "8:30-9:30", "Friday"));
        assert_eq!(replica.of_room("ME4326"), vec![reservation(1, "Friday")]);
        replica.apply(&Outcome::Cancelled(reservation(1, "Friday")));
        assert!(replica.is_empty());
        assert!(!replica.is_taken("ME4326", "8:30-9:30", "Friday"));
    }

    #[test]
    fn refused_requests_change_nothing() {
        let mut replica = Replica::from_snapshot([reservation(1, "Friday")]);
        let before = replica.clone();
        replica.apply(&Outcome::Taken {
            room: "ME4326".into(),
            timeslot: "8:30-9:30".into(),
            day: "Friday".into(),
        });
        replica.apply(&Outcome::NoSuchReservation { id: 9 });
        assert_eq!(replica, before);
    }

    #[test]
    fn replicas_that_apply_the_same_outcomes_share_a_digest() {
        let outcomes = [
            Outcome::Confirmed(reservation(1, "Friday")),
            Outcome::Confirmed(reservation(2, "Monday")),
            Outcome::Cancelled(reservation(1, "Friday")),
        ];
        let (mut a, mut b) = (Replica::default(), Replica::default());
        for o in &outcomes {
            a.apply(o);
            b.apply(o);
        }
        assert_eq!(a.digest(), b.digest());
        assert_eq!(a.digest(), digest([&reservation(2, "Monday")]));
        b.apply(&Outcome::Cancelled(reservation(2, "Monday")));
        assert_ne!(a.digest(), b.digest());
    }
}
