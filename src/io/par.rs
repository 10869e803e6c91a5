//! One way to spread file work over the cores: scoped, named threads that
//! take the next index from a shared counter, so a few slow files (large,
//! compressed) do not leave the other cores idle. Results keep the order of
//! the indices.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

/// `f(0..n)` on up to one thread per core, results in index order. A worker
/// that cannot start leaves its share to the others, and an index no worker
/// reached (none should be) is computed on the calling thread.
pub(crate) fn par_map<T: Send>(n: usize, name: &str, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let workers = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(n)
        .max(1);
    let next = AtomicUsize::new(0);
    let mut results: Vec<Option<T>> = (0..n).map(|_| None).collect();
    let slots = Mutex::new(&mut results);
    let work = || {
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            if i >= n {
                break;
            }
            let r = f(i);
            if let Ok(mut guard) = slots.lock() {
                guard[i] = Some(r);
            }
        }
    };
    std::thread::scope(|s| {
        for w in 1..workers {
            let _ = std::thread::Builder::new()
                .name(format!("{name}-{w}"))
                .spawn_scoped(s, work);
        }
        work();
    });
    results
        .into_iter()
        .enumerate()
        .map(|(i, r)| r.unwrap_or_else(|| f(i)))
        .collect()
}
