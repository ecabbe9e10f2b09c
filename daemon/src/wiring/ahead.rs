//! [`RenderAhead`]: a large run's messages rendered while its plugin is still deciding.
//!
//! A fee-reminder run on the due date of a large community asks for one message per household
//! in arrears: 20,000 in the benchmark of docs/BENCHMARKS.md. Rendering them (each household's
//! contact, the variables parsed, the templates) was a third of the run, all of it inside the
//! transaction that completes the run, after the plugin had finished, on one core. Yet a
//! household's bill reminder needs nothing from that transaction. So once a run has asked for
//! [`START_AFTER`] messages to households, a second thread renders them as the plugin asks, and
//! the transaction only queues what was rendered (`deliver::enqueue_rendered`). When the plugin is
//! done, its thread renders what is still waiting alongside the worker, rather than wait for it.
//!
//! What needs the transaction is left to it, exactly as before: survey links (the invitation is
//! written there), event details and RSVP links, a ticket as a message's reason, a household
//! nobody can reach (the desk's list), and an owner's opt-out of an informational message
//! (checked when queued; if the owner did opt out, the message is rendered again there). A
//! message this thread could not render for any reason, or a worker that failed, just leaves
//! the message to the transaction: rendering ahead can make a run faster, never different.
//!
//! A contact read here is read through the same directory, outside the transaction, as the
//! transaction's own lookups are (`Prefetched`), only earlier: up to the rest of the plugin's
//! run. An address edited in that window goes out as it was when the plugin asked, as it would
//! had the edit come a moment later. Rows rendered with templates a reload has since replaced
//! are not used: the transaction renders those messages again with the new ones.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;

use super::sink::{Loaded, message_request, reason_without_tx, variables};
use crate::clock::SharedClock;
use crate::deliver::{self, EnqueueContext, NoDirectory};
use crate::plugin::intent::{self, Intent, Preparation, Prepared};
use crate::scheduler::RunRequest;

/// Messages to households a run asks for before a thread is worth starting: below this, the
/// transaction renders them in well under a millisecond each.
pub(super) const START_AFTER: usize = 128;

/// Households whose contacts are read in one query: one per message was a fifth of a large
/// run once (see `Prefetched`).
const BATCH: usize = 256;

/// Messages rendered ahead, by the intent's position in the run, and the templates they were
/// rendered with. Only the rendered rows travel to the transaction: the parsed variables are
/// dropped on the thread that made them.
pub(super) struct RenderedAhead {
    pub loaded: Arc<Loaded>,
    pub rows: HashMap<usize, deliver::Rendered>,
}

type Job = (usize, intent::Message);

pub(super) struct RenderAhead {
    state: Mutex<State>,
    renderer: Arc<Renderer>,
}

enum State {
    /// Fewer than [`START_AFTER`] messages so far: kept, not worth a thread yet.
    Waiting(Vec<Job>),
    Rendering {
        queue: Arc<Queue>,
        worker: JoinHandle<HashMap<usize, deliver::Rendered>>,
    },
    /// Finished, or the worker could not start: the transaction renders the rest.
    Done,
}

impl RenderAhead {
    pub(super) fn new(
        loaded: Arc<Loaded>,
        directory: Arc<dyn deliver::Directory>,
        clock: SharedClock,
        run: &RunRequest,
    ) -> RenderAhead {
        RenderAhead {
            state: Mutex::new(State::Waiting(Vec::new())),
            renderer: Arc::new(Renderer {
                loaded,
                directory,
                clock,
                run: run.clone(),
            }),
        }
    }

    fn start(&self, backlog: Vec<Job>) -> State {
        let queue = Arc::new(Queue::default());
        for job in backlog {
            queue.push(job);
        }
        let (worker_queue, renderer) = (queue.clone(), self.renderer.clone());
        let worker = std::thread::Builder::new()
            .name("wuye-render-ahead".into())
            .spawn(move || {
                let mut out = HashMap::new();
                loop {
                    let batch = worker_queue.take(true);
                    if batch.is_empty() {
                        return out;
                    }
                    renderer.render(batch, &mut out);
                }
            });
        match worker {
            Ok(worker) => State::Rendering { queue, worker },
            Err(e) => {
                tracing::warn!(error = %e, "cannot start a thread to render ahead; the run's transaction renders its messages");
                State::Done
            }
        }
    }
}

impl Preparation for RenderAhead {
    fn observe(&self, index: usize, intent: &Intent) {
        let Intent::Send(m) = intent else { return };
        if !matches!(m.to, intent::Recipient::Household(_)) {
            return;
        }
        let mut state = self.state.lock().expect("render-ahead poisoned");
        match &mut *state {
            State::Waiting(backlog) => {
                backlog.push((index, m.clone()));
                if backlog.len() >= START_AFTER {
                    let backlog = std::mem::take(backlog);
                    *state = self.start(backlog);
                }
            }
            State::Rendering { queue, .. } => queue.push((index, m.clone())),
            State::Done => {}
        }
    }

    fn finish(&self) -> Prepared {
        let state = std::mem::replace(
            &mut *self.state.lock().expect("render-ahead poisoned"),
            State::Done,
        );
        let mut rows = HashMap::new();
        if let State::Rendering { queue, worker } = state {
            // The plugin is done: this thread takes its share of what is left.
            queue.close();
            loop {
                let batch = queue.take(false);
                if batch.is_empty() {
                    break;
                }
                self.renderer.render(batch, &mut rows);
            }
            match worker.join() {
                Ok(theirs) => rows.extend(theirs),
                Err(_) => tracing::warn!(
                    "rendering ahead failed; the run's transaction renders the messages it had"
                ),
            }
        }
        Prepared(Box::new(RenderedAhead {
            loaded: self.renderer.loaded.clone(),
            rows,
        }))
    }

    fn abandon(&self) {
        let state = std::mem::replace(
            &mut *self.state.lock().expect("render-ahead poisoned"),
            State::Done,
        );
        if let State::Rendering { queue, worker } = state {
            queue.abandon();
            // At most the batch in hand is left to render.
            let _ = worker.join();
        }
    }
}

impl Drop for RenderAhead {
    /// A run that ended without `finish` or `abandon` (its thread panicked) must not leave the
    /// worker waiting for jobs.
    fn drop(&mut self) {
        if let Ok(state) = self.state.get_mut()
            && let State::Rendering { queue, .. } = state
        {
            queue.abandon();
        }
    }
}

/// Jobs waiting to be rendered, taken a batch at a time.
#[derive(Default)]
struct Queue {
    pending: Mutex<Pending>,
    ready: Condvar,
}

#[derive(Default)]
struct Pending {
    jobs: VecDeque<Job>,
    /// The plugin is done: no more jobs will come.
    closed: bool,
}

impl Queue {
    fn push(&self, job: Job) {
        let mut p = self.pending.lock().expect("render queue poisoned");
        p.jobs.push_back(job);
        if p.jobs.len() >= BATCH {
            self.ready.notify_one();
        }
    }

    fn close(&self) {
        self.pending.lock().expect("render queue poisoned").closed = true;
        self.ready.notify_all();
    }

    /// Closes the queue and drops what waits in it: nothing will be applied.
    fn abandon(&self) {
        let mut p = self.pending.lock().expect("render queue poisoned");
        p.closed = true;
        p.jobs.clear();
        self.ready.notify_all();
    }

    /// Up to [`BATCH`] jobs; empty once closed and drained. With `wait`, waits for a full
    /// batch while the plugin still runs: it asks for a message every few microseconds, and a
    /// contact query per message is what batches avoid.
    fn take(&self, wait: bool) -> Vec<Job> {
        let mut p = self.pending.lock().expect("render queue poisoned");
        while wait && !p.closed && p.jobs.len() < BATCH {
            p = self.ready.wait(p).expect("render queue poisoned");
        }
        let n = p.jobs.len().min(BATCH);
        p.jobs.drain(..n).collect()
    }
}

/// What rendering a run's messages needs, shared by the worker and the plugin's thread.
struct Renderer {
    loaded: Arc<Loaded>,
    directory: Arc<dyn deliver::Directory>,
    clock: SharedClock,
    run: RunRequest,
}

impl Renderer {
    /// Renders what it can of `batch` into `out`, the batch's contacts read in one query.
    fn render(&self, batch: Vec<Job>, out: &mut HashMap<usize, deliver::Rendered>) {
        let community = &self.run.community;
        let households: Vec<String> = batch
            .iter()
            .filter_map(|(_, m)| match &m.to {
                intent::Recipient::Household(h) => Some(h.clone()),
                intent::Recipient::Owner(_) => None,
            })
            .collect();
        let Ok(contacts) = self
            .directory
            .household_contacts(&community.id, &households)
        else {
            // The transaction reads them again and reports what is wrong.
            return;
        };
        // Only rendering happens here: contacts come from above, and nothing here reads the
        // time of queueing.
        let ctx = EnqueueContext::new(
            community,
            &NoDirectory,
            &self.loaded.templates,
            &self.loaded.settings.daemon.delivery,
            self.clock.now(),
        );
        for (index, m) in batch {
            let intent::Recipient::Household(household) = &m.to else {
                continue;
            };
            let Some(contact) = contacts.get(household) else {
                continue;
            };
            let vars = variables(&m.vars);
            if vars.get("survey").is_some() || vars.pointer("/event/id").is_some() {
                continue;
            }
            let Some(reason) = reason_without_tx(&vars) else {
                continue;
            };
            let request = message_request(&self.run, &m, vars, reason);
            if let Ok(Some(rendered)) = deliver::render_for_household(&ctx, &request, contact) {
                out.insert(index, rendered);
            }
        }
    }
}
