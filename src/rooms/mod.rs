//! Room reservation (seed 003): its domain types, validation and errors, free of actix.
//!
//! - [`Catalog`]: the rooms, timeslots and days (seeded by a migration), and the checks a
//!   request passes before it is logged: an unknown room is a 404, an unknown slot or day a 422
//!   naming the field.
//! - [`Request`] and [`Outcome`]: what a client asks and what the database decided. A request
//!   always gets a number in the log; its outcome (confirmed, taken, cancelled, no such
//!   reservation) is what every server applies to its replica.
//! - [`replica`]: one server's copy of the reservations, as plain logic.
//! - [`store`]: the SQL.

pub mod replica;
pub mod store;

use serde::{Deserialize, Serialize};

/// Why a room request failed; mapped to HTTP in `web::error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RoomsError {
    #[error("unknown room `{0}`")]
    UnknownRoom(String),
    #[error("no reservation {0}")]
    UnknownReservation(i64),
    #[error("unknown room server {0}")]
    UnknownServer(u64),
    #[error("room server {0} exists already")]
    ServerExists(u64),
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error("{room} is already reserved at {timeslot} on {day}")]
    Taken {
        room: String,
        timeslot: String,
        day: String,
    },
    #[error("idempotency key `{0}` was already used for a different request")]
    IdempotencyConflict(String),
    /// No room server is up: retry later.
    #[error("no room server is up")]
    NoServer,
    /// Too busy or no reply in time: retry later (with the same Idempotency-Key for writes).
    #[error("room servers unavailable: {0}")]
    Unavailable(String),
    /// The database failed (the detail is logged, not answered).
    #[error("the room request could not be stored")]
    Storage,
}

/// A reservation, as the database and every replica hold it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Reservation {
    pub id: i64,
    pub room: String,
    pub timeslot: String,
    pub day: String,
}

/// What a client asks to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Reserve {
        room: String,
        timeslot: String,
        day: String,
    },
    Cancel {
        id: i64,
    },
}

/// What the database decided for one request; every server applies it to its replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Confirmed(Reservation),
    Taken {
        room: String,
        timeslot: String,
        day: String,
    },
    Cancelled(Reservation),
    NoSuchReservation {
        id: i64,
    },
}

impl Outcome {
    /// The answer a client gets: the reservation, or the error it is.
    pub fn into_result(self) -> Result<Reservation, RoomsError> {
        match self {
            Outcome::Confirmed(r) | Outcome::Cancelled(r) => Ok(r),
            Outcome::Taken {
                room,
                timeslot,
                day,
            } => Err(RoomsError::Taken {
                room,
                timeslot,
                day,
            }),
            Outcome::NoSuchReservation { id } => Err(RoomsError::UnknownReservation(id)),
        }
    }
}

/// A request as logged: who asked (the request id is also its idempotency key) and the outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decided {
    pub request_id: String,
    pub outcome: Outcome,
}

/// The body of `POST /rooms/rooms/{room}/reservations`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReservationRequest {
    pub timeslot: String,
    pub day: String,
}

/// The rooms, timeslots and days, in the seed's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalog {
    pub rooms: Vec<String>,
    pub timeslots: Vec<String>,
    pub days: Vec<String>,
}

impl Catalog {
    /// Room `room`, or 404.
    pub fn room(&self, room: &str) -> Result<(), RoomsError> {
        if self.rooms.iter().any(|r| r == room) {
            Ok(())
        } else {
            Err(RoomsError::UnknownRoom(room.to_owned()))
        }
    }

    /// A reservation request for `room`, checked: the room exists (404), the slot and day are
    /// known (422 naming the field).
    pub fn reserve(&self, room: &str, body: ReservationRequest) -> Result<Request, RoomsError> {
        self.room(room)?;
        let timeslot = body.timeslot.trim();
        if !self.timeslots.iter().any(|t| t == timeslot) {
            return Err(RoomsError::Invalid {
                field: "timeslot",
                message: format!("unknown timeslot `{timeslot}`; see GET /rooms/timeslots"),
            });
        }
        let day = body.day.trim();
        if !self.days.iter().any(|d| d == day) {
            return Err(RoomsError::Invalid {
                field: "day",
                message: format!("unknown day `{day}`; see GET /rooms/days"),
            });
        }
        Ok(Request::Reserve {
            room: room.to_owned(),
            timeslot: timeslot.to_owned(),
            day: day.to_owned(),
        })
    }

    /// Where a reservation sorts in replies: by day, then slot, in the catalogue's order.
    pub fn order_key(&self, r: &Reservation) -> (usize, usize, i64) {
        let day = self
            .days
            .iter()
            .position(|d| *d == r.day)
            .unwrap_or(usize::MAX);
        let slot = self
            .timeslots
            .iter()
            .position(|t| *t == r.timeslot)
            .unwrap_or(usize::MAX);
        (day, slot, r.id)
    }
}

/// The longest idempotency key or request id accepted.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// A client's `Idempotency-Key`, checked: printable, not empty, not too long.
pub fn request_id(key: &str) -> Result<String, RoomsError> {
    let key = key.trim();
    if key.is_empty() || key.len() > MAX_REQUEST_ID_LEN || key.chars().any(|c| c.is_control()) {
        return Err(RoomsError::Invalid {
            field: "Idempotency-Key",
            message: format!("1 to {MAX_REQUEST_ID_LEN} printable characters"),
        });
    }
    Ok(key.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        Catalog {
            rooms: vec!["SA318".into(), "ME4326".into()],
            timeslots: vec!["8:30-9:30".into(), "9:30-10:30".into()],
            days: vec!["Monday".into(), "Friday".into()],
        }
    }

    fn body(timeslot: &str, day: &str) -> ReservationRequest {
        ReservationRequest {
            timeslot: timeslot.into(),
            day: day.into(),
        }
    }

    #[test]
    fn a_known_room_slot_and_day_make_a_request() {
        let request = catalog()
            .reserve("ME4326", body("8:30-9:30", "Friday"))
            .unwrap();
        assert_eq!(
            request,
            Request::Reserve {
                room: "ME4326".into(),
                timeslot: "8:30-9:30".into(),
                day: "Friday".into()
            }
        );
    }

    #[test]
    fn unknown_inputs_name_what_is_wrong() {
        let c = catalog();
        assert_eq!(
            c.reserve("XX1", body("8:30-9:30", "Friday")),
            Err(RoomsError::UnknownRoom("XX1".into()))
        );
        assert!(matches!(
            c.reserve("SA318", body("7:00-8:00", "Friday")),
            Err(RoomsError::Invalid {
                field: "timeslot",
                ..
            })
        ));
        assert!(matches!(
            c.reserve("SA318", body("8:30-9:30", "Sunday")),
            Err(RoomsError::Invalid { field: "day", .. })
        ));
    }

    #[test]
    fn request_ids_must_be_printable_and_short() {
        assert_eq!(request_id(" k-1 ").unwrap(), "k-1");
        assert!(request_id("").is_err());
        assert!(request_id("a\u{0}b").is_err());
        assert!(request_id(&"x".repeat(MAX_REQUEST_ID_LEN + 1)).is_err());
    }
}
