//! The front end's lookup cache (moka, bounded) and its guard against stale refills.
//!
//! Writers drop a book's entry *before* their write is acknowledged (seed 002's server push):
//! [`BookCache::invalidate`] first records the write's number for the book, then drops the
//! entry. A lookup that missed fills the cache with what a replica answered only if that copy
//! is at least as new as the last write recorded ([`BookCache::fill`]), and checks again after
//! inserting: a refill that raced a write either sees its number and does not insert, or its
//! insert happened before the write's drop, which removes it. So no lookup sent after an
//! acknowledged write is answered from an older copy.

use std::sync::Arc;

use moka::sync::Cache;

use crate::bookstore::{Book, RenderedBook};

pub struct BookCache {
    books: Cache<i64, Arc<RenderedBook>>,
    /// The number of the last write to each book (as many books as the cache holds).
    written: Cache<i64, u64>,
    enabled: bool,
}

impl BookCache {
    /// A cache of at most `capacity` books; 0 turns caching off.
    pub fn new(capacity: u64) -> Self {
        Self {
            books: Cache::new(capacity.max(1)),
            written: Cache::new(capacity.max(1)),
            enabled: capacity > 0,
        }
    }

    pub fn get(&self, id: i64) -> Option<Arc<RenderedBook>> {
        if !self.enabled {
            return None;
        }
        self.books.get(&id)
    }

    /// The number of the last write to `id` this cache heard of (0: none).
    pub fn last_write(&self, id: i64) -> u64 {
        self.written.get(&id).unwrap_or(0)
    }

    /// Write `seq` changed `id`: no copy older than it may be answered from here again.
    pub fn invalidate(&self, id: i64, seq: u64) {
        let newest = self.last_write(id).max(seq);
        self.written.insert(id, newest);
        self.books.invalidate(&id);
    }

    /// Keeps `book` (as a replica answered it) unless a newer write is known.
    pub fn fill(&self, book: &Book) {
        if !self.enabled || book.version < self.last_write(book.id) {
            return;
        }
        self.books.insert(book.id, RenderedBook::new(book.clone()));
        if book.version < self.last_write(book.id) {
            self.books.invalidate(&book.id);
        }
    }

    /// Forgets every cached book (a restarted front end starts cold); the write numbers stay.
    pub fn clear(&self) {
        self.books.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(version: u64, quantity: i64) -> Book {
        Book {
            id: 1,
            title: "t".into(),
            topic: "x".into(),
            cost_cents: 100,
            quantity,
            version,
        }
    }

    #[test]
    fn a_copy_older_than_the_last_write_is_never_cached() {
        let cache = BookCache::new(10);
        cache.fill(&book(3, 10));
        assert_eq!(cache.get(1).map(|b| b.book.quantity), Some(10));
        cache.invalidate(1, 5);
        assert_eq!(cache.get(1), None);
        cache.fill(&book(3, 10));
        assert_eq!(cache.get(1), None, "a stale refill is refused");
        cache.fill(&book(5, 9));
        assert_eq!(cache.get(1).map(|b| b.book.quantity), Some(9));
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let cache = BookCache::new(0);
        cache.fill(&book(1, 1));
        assert_eq!(cache.get(1), None);
    }
}
