//! A small Server-Sent Events parser for the tablet client (and the tests): feed it text as it
//! arrives, take whole events out.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Default)]
pub struct SseParser {
    buffer: String,
}

impl SseParser {
    /// Adds received text and returns the events it completes (keep-alive comments are skipped).
    pub fn push(&mut self, text: &str) -> Vec<SseEvent> {
        self.buffer.push_str(&text.replace("\r\n", "\n"));
        let mut events = Vec::new();
        while let Some(end) = self.buffer.find("\n\n") {
            let frame: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut has_data = false;
            for line in frame.lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => event.id = Some(value.to_owned()),
                    "event" => event.event = Some(value.to_owned()),
                    "data" => {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(value);
                        has_data = true;
                    }
                    _ => {} // comments ("") and unknown fields
                }
            }
            if has_data {
                events.push(event);
            }
        }
        events
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_come_out_whole() {
        let mut parser = SseParser::default();
        assert!(parser.push("id: 1-1\nevent: sco").is_empty());
        let events = parser.push("re\ndata: {\"a\":1}\n\n: keep-alive\n\n");
        assert_eq!(
            events,
            vec![SseEvent {
                id: Some("1-1".into()),
                event: Some("score".into()),
                data: "{\"a\":1}".into()
            }]
        );
    }

    #[test]
    fn multi_line_data_and_crlf_are_understood() {
        let mut parser = SseParser::default();
        let events = parser.push("data: a\r\ndata: b\r\n\r\n");
        assert_eq!(events[0].data, "a\nb");
        assert_eq!(events[0].id, None);
    }
}
