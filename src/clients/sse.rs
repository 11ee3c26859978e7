//! Server-Sent Events for the clients (and the tests), on the `eventsource-stream` crate: a
//! byte stream in, whole events out. Frames split anywhere (between a CR and its LF, inside a
//! multi-byte UTF-8 character) come out whole: the crate buffers bytes until a character and a
//! line are complete.

use eventsource_stream::Eventsource;
use futures_util::{FutureExt, Stream, StreamExt};

/// One event: its `id:` (the last one seen on the stream, as the spec says), its `event:` kind
/// (`message` when none was given) and its data lines joined by `\n`. Comments (keep-alives)
/// never become events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Why a stream of events stopped early.
#[derive(Debug, thiserror::Error)]
#[error("event stream: {0}")]
pub struct SseError(String);

/// The events of a body arriving as chunks of bytes.
pub fn events<S, B, E>(body: S) -> impl Stream<Item = Result<SseEvent, SseError>>
where
    S: Stream<Item = Result<B, E>>,
    B: AsRef<[u8]>,
    E: std::fmt::Display,
{
    body.eventsource().map(|event| match event {
        Ok(e) => Ok(SseEvent {
            id: (!e.id.is_empty()).then_some(e.id),
            event: Some(e.event),
            data: e.data,
        }),
        Err(e) => Err(SseError(e.to_string())),
    })
}

/// Every whole event in `chunks`, read one after the other (a body already received).
pub fn parse_chunks<B: AsRef<[u8]>>(chunks: impl IntoIterator<Item = B>) -> Vec<SseEvent> {
    let body =
        futures_util::stream::iter(chunks.into_iter().map(Ok::<B, std::convert::Infallible>));
    events(body)
        .filter_map(|e| async move { e.ok() })
        .collect::<Vec<_>>()
        .now_or_never()
        .expect("a stream of ready chunks never waits")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, kind: &str, data: &str) -> SseEvent {
        SseEvent {
            id: Some(id.into()),
            event: Some(kind.into()),
            data: data.into(),
        }
    }

    /// A body with every line ending the spec allows (LF, CR LF, CR), a keep-alive comment,
    /// multi-line data and multi-byte characters (2, 3 and 4 bytes). (A body whose very last
    /// byte is a lone CR waits for the byte that would say whether an LF follows; the server
    /// ends its lines with LF.)
    const BODY: &[u8] =
        "id: 1-1\r\nevent: score\r\ndata: {\"game\":\"Curling \u{e9}\u{2013}\u{1F94C}\"}\r\n\r\n\
: keep-alive\n\n\
id: 1-2\nevent: medals\ndata: a\ndata: b\n\n\
id: 1-3\revent: score\rdata: \u{e9}t\u{e9}\r\r\
id: 1-4\ndata: end\n\n"
            .as_bytes();

    fn expected() -> Vec<SseEvent> {
        vec![
            event(
                "1-1",
                "score",
                "{\"game\":\"Curling \u{e9}\u{2013}\u{1F94C}\"}",
            ),
            event("1-2", "medals", "a\nb"),
            event("1-3", "score", "\u{e9}t\u{e9}"),
            event("1-4", "message", "end"),
        ]
    }

    #[test]
    fn a_whole_body_gives_every_event() {
        assert_eq!(parse_chunks([BODY]), expected());
    }

    #[test]
    fn a_body_split_at_any_byte_gives_the_same_events() {
        // Every cut: between CR and LF, inside each multi-byte character, inside field names.
        for cut in 1..BODY.len() {
            let (a, b) = BODY.split_at(cut);
            assert_eq!(parse_chunks([a, b]), expected(), "split at byte {cut}");
        }
    }

    #[test]
    fn a_body_sent_one_byte_at_a_time_gives_the_same_events() {
        assert_eq!(parse_chunks(BODY.chunks(1)), expected());
    }

    #[test]
    fn a_body_split_at_every_pair_of_bytes_gives_the_same_events() {
        for first in 1..BODY.len() {
            for second in first + 1..BODY.len() {
                let chunks = [&BODY[..first], &BODY[first..second], &BODY[second..]];
                assert_eq!(
                    parse_chunks(chunks),
                    expected(),
                    "split at {first} and {second}"
                );
            }
        }
    }
}
