//! The size of each event of an upstream stream, for a deployment's `max_stream_event_bytes`.
//!
//! An event is counted in bytes as received, from its first line to its end (an SSE event's
//! blank line, an NDJSON line's `\n`), comment and field lines included. The parsers count
//! every event they complete, and the one still arriving, so an event over the cap is caught
//! however the bytes are split: alone in a read, completed in the same read as the event
//! before it, or still unfinished.

/// Counts the events one parser reads.
#[derive(Debug, Default)]
pub struct EventSizes {
    /// Bytes of the unfinished event already read as whole lines.
    current: usize,
    /// The largest event completed since [`EventSizes::take_largest`] last ran.
    largest: usize,
}

impl EventSizes {
    /// `n` more bytes (one whole line, its line end included) of the unfinished event.
    pub fn add(&mut self, n: usize) {
        self.current = self.current.saturating_add(n);
    }

    /// The unfinished event is complete.
    pub fn end_event(&mut self) {
        self.largest = self.largest.max(self.current);
        self.current = 0;
    }

    /// A whole event of `n` bytes was read at once (the lines before it are another event).
    pub fn whole_event(&mut self, n: usize) {
        self.largest = self.largest.max(n);
    }

    /// The largest event completed since the last call, or the unfinished one if it is
    /// larger already: its whole lines plus `buffered`, the bytes of its unfinished line the
    /// parser holds. In bytes.
    pub fn take_largest(&mut self, buffered: usize) -> usize {
        let unfinished = self.current.saturating_add(buffered);
        std::mem::take(&mut self.largest).max(unfinished)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_event_since_the_last_look_or_the_unfinished_one() {
        let mut s = EventSizes::default();
        s.add(10);
        s.end_event();
        s.add(30);
        s.add(5);
        s.end_event();
        s.add(7);
        assert_eq!(s.take_largest(0), 35);
        assert_eq!(s.take_largest(0), 7);
        assert_eq!(s.take_largest(100), 107);
        s.end_event();
        s.whole_event(3);
        assert_eq!(s.take_largest(0), 7);
        assert_eq!(s.take_largest(0), 0);
    }
}
