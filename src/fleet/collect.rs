//! The collector: one thread that owns the [`Fleet`], joins what the workers
//! send as it comes, and samples the counts every [`SAMPLE_EVERY`] for the
//! page's plot. The admin API reads it through [`View`] (a lock shared with
//! the collector only, never with a worker).

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::timeline::{Fleet, Limits, Timers};
use super::view::{self, Clock, MachineView, Query, Sample, Summary};
use super::{Event, Mac, Sink, QUEUE};
use crate::io::clock;
use crate::store::Published;

/// How often the counts are sampled.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);
/// Samples kept (an hour).
pub const SAMPLES: usize = 1800;
/// Scripts longer than this are not read from the served files.
const SCRIPT_FILE_MAX: u64 = 64 * 1024;

struct Inner {
    fleet: Fleet,
    history: VecDeque<Sample>,
}

/// The fleet as the admin API reads it.
pub struct View {
    inner: Mutex<Inner>,
    sink: Sink,
    clock: Clock,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").finish_non_exhaustive()
    }
}

impl View {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `GET /api/v1/boots`.
    pub fn summary(&self, q: &Query) -> Summary {
        let now = clock::now();
        let inner = self.lock();
        view::summary(
            &inner.fleet,
            now,
            &self.clock,
            q,
            &inner.history,
            self.sink.dropped(),
        )
    }

    /// `GET /api/v1/machines/{mac}/boots`.
    pub fn machine(&self, mac: &Mac) -> Option<MachineView> {
        let now = clock::now();
        view::machine(&self.lock().fleet, mac, now, &self.clock)
    }

    /// Machines tracked, and events dropped (for metrics).
    pub fn sizes(&self) -> (usize, u64, u64) {
        let inner = self.lock();
        (
            inner.fleet.len(),
            inner.fleet.forgotten,
            self.sink.dropped(),
        )
    }
}

/// Starts the collector thread: the sink the workers send to, and the view
/// the admin API reads. A script served as a file is read from `published`.
///
/// # Errors
/// The thread could not be started.
pub fn start(
    limits: Limits,
    timers: Timers,
    published: Option<Arc<Published>>,
) -> std::io::Result<(Sink, Arc<View>)> {
    let (tx, rx) = mpsc::sync_channel(QUEUE);
    let sink = Sink {
        tx: Some(tx),
        dropped: Arc::default(),
    };
    let view = Arc::new(View {
        inner: Mutex::new(Inner {
            fleet: Fleet::new(limits, timers),
            history: VecDeque::new(),
        }),
        sink: sink.clone(),
        clock: Clock {
            at: clock::now(),
            unix_ms: clock::unix_ms(),
        },
    });
    let on_thread = Arc::clone(&view);
    std::thread::Builder::new()
        .name("rackboot-fleet".into())
        .spawn(move || run(&on_thread, &rx, published.as_deref()))?;
    Ok((sink, view))
}

fn run(view: &View, rx: &Receiver<Event>, published: Option<&Published>) {
    let script_at = |path: &str| -> Option<String> {
        let snapshot = published?.current();
        let file = snapshot.get(path)?;
        (file.len() <= SCRIPT_FILE_MAX).then(|| String::from_utf8_lossy(file.bytes()).into_owned())
    };
    let mut next_sample = clock::now();
    loop {
        match rx.recv_timeout(SAMPLE_EVERY) {
            Ok(first) => {
                let mut inner = view.lock();
                inner.fleet.handle(first, &script_at);
                // What else is queued, under the same lock.
                for event in rx.try_iter().take(4096) {
                    inner.fleet.handle(event, &script_at);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        let now = clock::now();
        if now >= next_sample {
            sample(view, now);
            next_sample = now + SAMPLE_EVERY;
        }
    }
}

fn sample(view: &View, now: Instant) {
    let mut inner = view.lock();
    let counts = view::counts(&inner.fleet, now);
    let t = view.clock.ms(now) / 1000;
    if inner.history.len() >= SAMPLES {
        inner.history.pop_front();
    }
    inner.history.push_back(Sample::new(t, &counts));
}
