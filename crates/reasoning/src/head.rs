//! The head: its own thread, which waits for keyframes and generates. It
//! holds its own ONNX Runtime sessions (its own thread budget, at a lower
//! scheduling priority), so it never runs on, or waits for, the frame path.
//! Generation is CPU-bound and the thread has nothing else to do, so it
//! parks between keyframes rather than running an async runtime: waking it
//! is one atomic and a futex, never a lock the frame path could wait on.
//!
//! Keyframes arrive in a one-slot mailbox ([`Mailbox`]: lock-free, latest
//! wins). A keyframe not yet started when a newer one comes is dropped
//! (`superseded`); a running generation is cancelled when a newer keyframe
//! waits and the running one has gone stale (older than `stale_after`, or
//! the newer one is a new scene or an explicit request): `cancelled_stale`.
//!
//! Tokens stream to the interpretation board as they come, at the same cost
//! per token however long the report is ([`crate::stream`]: each token's
//! text decoded once, each word grounded once, the board given the grounded
//! text when a clause ends, at most once per [`crate::stream::PUBLISH_EVERY`]).
//! When the model writes every task token, their hidden states
//! become kernels, published to the per-frame decoder's slot; kernels with a
//! NaN or an infinity are refused (counted in `rejected_kernels`, logged
//! once) and the decoder keeps its last good ones. Generation never runs past
//! the decoder's position table: a report that reaches it is cut short
//! (`truncated`). A failure, a timeout or a missing model (or tokenizer)
//! leaves the decoder on its last kernels, puts "unavailable" with the cause
//! on the board, and is logged once.

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam::queue::ArrayQueue;
use sonoflow_core::{
    FrameId, Interpretation, InterpretationBoard, InterpretationState, Recycled, Recycler,
    Reusable, Timestamp,
};
use sonoflow_inference::{
    EngineOptions, Generation, Generator, InferenceError, KernelSlot, Runtime,
};
use sonoflow_model::{ModelDir, ReportGrammar};
use sonoflow_pipeline::FrameActivity;
use tracing::{debug, info, info_span, warn};

use crate::config::HeadSpec;
use crate::grounding::{fields, summary, Calipers};
use crate::keyframes::KeyframeReason;
use crate::prompt::PromptCodec;
use crate::remote_head::{NotRemote, RemoteHead};
use crate::report::Report;
use crate::sampling::Sampler;
use crate::stats::ReasoningStats;
use crate::stream::ReportStream;
use crate::ReasoningError;

/// One keyframe handed to the head: what the frame path knew about it.
#[derive(Debug, Default)]
pub struct Keyframe {
    pub frame: FrameId,
    pub captured: Timestamp,
    pub reason: KeyframeReason,
    /// The encoder's image tokens of the frame.
    pub image_tokens: Vec<f32>,
    /// The calipers of its largest finding (the report's numbers).
    pub calipers: Calipers,
    /// When the frame path handed it over.
    pub queued: Option<Instant>,
}

impl Reusable for Keyframe {
    fn reset(&mut self) {
        self.image_tokens.clear();
        self.calipers = Calipers::default();
        self.queued = None;
    }
}

/// The one-slot, latest-wins hand-off of keyframes to the head, lock-free
/// on both sides: an `ArrayQueue` of one (as in sonoflow-pipeline's
/// `handoff`, drop-oldest), whose `force_push` replaces a waiting keyframe
/// in one atomic step; beside it, the waiting keyframe's [`rank`], so the
/// head can look without taking it.
struct Mailbox {
    slot: ArrayQueue<Recycled<Keyframe>>,
    rank: AtomicU8,
}

impl Mailbox {
    fn new() -> Self {
        Self {
            slot: ArrayQueue::new(1),
            rank: AtomicU8::new(ROUTINE),
        }
    }

    /// Puts `keyframe` in the slot; returns the one it replaced (back to its
    /// pool on drop). A keyframe never displaces a waiting one of higher
    /// [`rank`] (a client's request would be lost to a new scene or a
    /// routine keyframe): it is the one returned instead. The frame path is
    /// the only producer, so the check cannot race another put.
    fn put(&self, keyframe: Recycled<Keyframe>) -> Option<Recycled<Keyframe>> {
        let rank = rank(keyframe.reason);
        if self.waiting().is_some_and(|waiting| waiting > rank) {
            return Some(keyframe);
        }
        self.rank.store(rank, Ordering::Release);
        self.slot.force_push(keyframe)
    }

    fn take(&self) -> Option<Recycled<Keyframe>> {
        self.slot.pop()
    }

    /// The waiting keyframe's [`rank`], if one waits.
    fn waiting(&self) -> Option<u8> {
        (!self.slot.is_empty()).then(|| self.rank.load(Ordering::Acquire))
    }
}

/// Ranks of keyframes: a routine one (first, still, the longest interval)
/// waits its turn; the head turns to a new scene at once, and to a client's
/// request ("analyse now", "store this") at once and before anything else.
const ROUTINE: u8 = 0;
const SCENE: u8 = 1;
const REQUEST: u8 = 2;

fn rank(reason: KeyframeReason) -> u8 {
    match reason {
        KeyframeReason::Request => REQUEST,
        KeyframeReason::SceneChange => SCENE,
        _ => ROUTINE,
    }
}

/// What the head thread and its handles share.
struct Shared {
    mailbox: Mailbox,
    /// The head's thread, unparked when a keyframe comes or the head closes.
    thread: OnceLock<Thread>,
    /// The head has stopped (the run ended, or it could not start).
    closed: AtomicBool,
    /// A freeze or a question wants a keyframe now.
    requested: AtomicBool,
    /// The frame id + 1 of the last keyframe submitted (0: none yet).
    last_keyframe: AtomicU64,
    /// The task prompt keyframes are answered with.
    task: Mutex<String>,
    stats: Arc<ReasoningStats>,
    /// The run sheds load: no generation (the running one is cancelled).
    paused: AtomicBool,
    /// The frame path's work in progress: between tokens the head waits
    /// while a frame is in the model or being drawn (set once by the run).
    frame_activity: OnceLock<FrameActivity>,
    /// How long one report may take (`reasoning.timeout_ms`).
    report_timeout: Duration,
}

impl Shared {
    fn new(task: String, report_timeout: Duration) -> Self {
        Self {
            mailbox: Mailbox::new(),
            thread: OnceLock::new(),
            closed: AtomicBool::new(false),
            requested: AtomicBool::new(false),
            last_keyframe: AtomicU64::new(0),
            task: Mutex::new(task),
            stats: Arc::new(ReasoningStats::default()),
            paused: AtomicBool::new(false),
            frame_activity: OnceLock::new(),
            report_timeout,
        }
    }

    fn wake(&self) {
        if let Some(thread) = self.thread.get() {
            thread.unpark();
        }
    }

    fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.wake();
    }

    /// Whether a newer keyframe waits that makes `running` stale (lock-free:
    /// the head asks after every token): a new scene or a request waiting
    /// behind a keyframe of no higher [`rank`], or any keyframe behind a
    /// routine one older than `stale_after` (None: not age). A report a
    /// client asked for is cancelled only for another request: never for
    /// its age, nor for a new scene (which waits its turn), so a store
    /// request always gets its report.
    fn supersedes(&self, running: &Keyframe, stale_after: Option<Duration>) -> bool {
        let mine = rank(running.reason);
        let ages = mine != REQUEST;
        self.mailbox.waiting().is_some_and(|waiting| {
            (waiting > ROUTINE && waiting >= mine)
                || (ages
                    && stale_after
                        .is_some_and(|limit| running.queued.is_some_and(|q| q.elapsed() > limit)))
        })
    }

    /// The next keyframe; parks the calling (head) thread until one comes.
    /// None once the head is closed.
    fn next(&self) -> Option<Recycled<Keyframe>> {
        loop {
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            if let Some(kf) = self.mailbox.take() {
                return Some(kf);
            }
            // An unpark between the look above and here is kept as a token:
            // park returns at once, so no keyframe is missed.
            std::thread::park();
        }
    }
}

/// Keyframe `kf`'s interpretation, as the board shows it.
fn interpretation(text: String, kf: &Keyframe, state: InterpretationState) -> Arc<Interpretation> {
    Arc::new(Interpretation {
        text,
        frame: kf.frame,
        captured: kf.captured,
        state,
    })
}

/// The frame path's and the run's side of the head (cheap to clone).
#[derive(Clone)]
pub struct HeadHandle {
    shared: Arc<Shared>,
    keyframes: Recycler<Keyframe>,
}

impl HeadHandle {
    pub fn stats(&self) -> Arc<ReasoningStats> {
        Arc::clone(&self.shared.stats)
    }

    /// How long one report may take before the head gives it up.
    pub fn report_timeout(&self) -> Duration {
        self.shared.report_timeout
    }

    /// Whether the head takes keyframes (false once it stopped or failed to start).
    pub fn is_open(&self) -> bool {
        !self.shared.closed.load(Ordering::Acquire)
    }

    /// Makes `prompt` the task for this and later keyframes, and asks for a
    /// keyframe now (a question from a client, a freeze).
    pub fn ask(&self, prompt: &str) {
        if let Ok(mut task) = self.shared.task.lock() {
            prompt.clone_into(&mut task);
        }
        self.shared.requested.store(true, Ordering::Release);
    }

    /// Pauses or resumes generation (the run's degradation ladder): while
    /// paused, a running report is cancelled at its next token and waiting
    /// keyframes are dropped, but for one a client requested; the decoder
    /// keeps its kernels.
    pub fn set_paused(&self, paused: bool) {
        self.shared.paused.store(paused, Ordering::Release);
    }

    /// Makes the head yield to the frame path: between tokens it waits (at
    /// most [`MAX_YIELD_PER_TOKEN`]) while `activity` says a frame is being
    /// worked on, so its tokens fill the frame path's gaps. Set once; later
    /// calls are ignored.
    pub fn yield_to(&self, activity: FrameActivity) {
        let _ = self.shared.frame_activity.set(activity);
    }

    /// Asks for a keyframe now with the current task.
    pub fn request(&self) {
        self.shared.requested.store(true, Ordering::Release);
    }

    /// The frame last submitted as a keyframe, if any: the output's taps
    /// know a keyframe when it passes (it is chosen before it gets there).
    pub fn latest_keyframe(&self) -> Option<FrameId> {
        match self.shared.last_keyframe.load(Ordering::Acquire) {
            0 => None,
            n => Some(FrameId(n - 1)),
        }
    }

    /// Takes the pending request, if any (the keyframe selector's input).
    pub fn take_request(&self) -> bool {
        self.shared.requested.swap(false, Ordering::AcqRel)
    }

    /// An empty keyframe from the pool (no allocation once warm).
    pub fn blank_keyframe(&self) -> Recycled<Keyframe> {
        self.keyframes.acquire()
    }

    /// Hands `keyframe` to the head; never blocks on it and takes no lock.
    /// A keyframe the head has not started yet is replaced (latest wins)
    /// and counted (`superseded`).
    pub fn submit(&self, mut keyframe: Recycled<Keyframe>) {
        if !self.is_open() {
            return;
        }
        let stats = &self.shared.stats;
        stats.keyframes.fetch_add(1, Ordering::Relaxed);
        stats.by_reason[keyframe.reason.index()].fetch_add(1, Ordering::Relaxed);
        keyframe.queued = Some(Instant::now());
        self.shared
            .last_keyframe
            .store(keyframe.frame.0.saturating_add(1), Ordering::Release);
        if let Some(replaced) = self.shared.mailbox.put(keyframe) {
            stats.superseded.fetch_add(1, Ordering::Relaxed);
            drop(replaced);
        }
        self.shared.wake();
    }
}

/// The head's thread; stopping it (drop) ends generation at the next token.
pub struct ReasoningHead {
    handle: HeadHandle,
    thread: Option<JoinHandle<()>>,
}

impl ReasoningHead {
    /// Starts the head on its own thread (`image_token_values`: the size of
    /// one frame's image tokens, to size the keyframe pool). Its model (`spec.model`, else
    /// `frame_model`) is loaded there, so the frame path starts at once; a
    /// load failure shows as "unavailable" (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub fn start(
        spec: HeadSpec,
        frame_model: &std::path::Path,
        engine: EngineOptions,
        runtime: &'static Runtime,
        slot: Arc<KernelSlot>,
        board: Arc<InterpretationBoard>,
        image_token_values: usize,
    ) -> Result<Self, ReasoningError> {
        // Without a prompt in the definition, the head sets the model's own
        // when it has loaded the model.
        let shared = Arc::new(Shared::new(
            spec.prompt.clone().unwrap_or_default(),
            spec.timeout,
        ));
        let keyframes = Recycler::new(3);
        // Sized up front: handing a keyframe over never allocates on the frame path.
        keyframes.prefill(|| Keyframe {
            image_tokens: Vec::with_capacity(image_token_values),
            ..Keyframe::default()
        });
        let handle = HeadHandle {
            shared: Arc::clone(&shared),
            keyframes,
        };
        let model_dir = spec.model.clone().unwrap_or_else(|| frame_model.to_owned());
        // The server is checked now: a wrong model or contract stops the
        // run here. The model opened for its contract is the head's too.
        let (remote, opened) = match spec.remote.clone() {
            Some(remote) => {
                let model = ModelDir::open(&model_dir)?;
                let image_tokens = model.manifest.image_token_count().unwrap_or(0);
                let width = image_token_values / image_tokens.max(1);
                let kernel_size = model.manifest.default_kernels.size;
                let head = RemoteHead::start(remote, image_tokens, width, kernel_size)
                    .map_err(ReasoningError::Remote)?;
                shared.stats.set_remote(head.url(), head.model());
                (Some(head), Some(model))
            }
            None => (None, None),
        };
        let head_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("sonoflow-reason".into())
            .spawn(move || {
                let shared = head_shared;
                lower_priority(spec.nice);
                let engine = EngineOptions {
                    intra_threads: spec.intra_threads,
                    inter_threads: 1,
                    ..engine
                };
                let loaded = Head::load(
                    &model_dir,
                    opened,
                    &spec,
                    &engine,
                    runtime,
                    slot,
                    Arc::clone(&board),
                    Arc::clone(&shared),
                    remote,
                );
                let mut head = match loaded {
                    Ok(head) => head,
                    Err(e) => return unavailable(&shared, &board, &e.to_string()),
                };
                info!(model = %model_dir.display(), threads = spec.intra_threads, nice = spec.nice, "reasoning head ready");
                while let Some(keyframe) = shared.next() {
                    head.answer(&keyframe);
                }
                debug!("reasoning head stopped");
            })
            .map_err(|e| ReasoningError::Thread(e.to_string()))?;
        // Before any handle exists, so every submit can wake the thread.
        let _ = shared.thread.set(thread.thread().clone());
        Ok(Self {
            handle,
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> HeadHandle {
        self.handle.clone()
    }
}

impl Drop for ReasoningHead {
    fn drop(&mut self) {
        self.handle.shared.close();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The head could not start: said once in the log, on the board and in the report.
fn unavailable(shared: &Shared, board: &InterpretationBoard, cause: &str) {
    warn!("the reasoning head is unavailable; the per-frame path goes on with its current kernels: {cause}");
    if let Ok(mut e) = shared.stats.error.lock() {
        *e = Some(cause.to_owned());
    }
    board.store(Some(Arc::new(Interpretation {
        text: format!("unavailable: {cause}"),
        frame: FrameId(0),
        captured: Timestamp(0),
        state: InterpretationState::Unavailable,
    })));
    shared.close();
}

/// Lowers this thread's scheduling priority (Linux: per-thread nice; ONNX
/// Runtime threads the head creates inherit it).
fn lower_priority(nice: i32) {
    if let Err(e) = sonoflow_core::priority::lower_this_thread(nice) {
        warn!("could not lower the reasoning head's priority to nice {nice}: {e}");
    }
}

/// How one generation ended.
enum Ending {
    Finished,
    Stale,
    TimedOut,
    Closed,
    /// The run shed load and paused the head.
    Paused,
}

/// The longest the head waits for the frame path before one token: a
/// frame path that never rests slows the head down but cannot stop it (the
/// degradation ladder pauses it when the frame path is over its budget).
pub const MAX_YIELD_PER_TOKEN: Duration = Duration::from_millis(10);
/// How often a yielding head looks again.
const YIELD_POLL: Duration = Duration::from_micros(200);

/// Waits while `activity` is busy (at most [`MAX_YIELD_PER_TOKEN`] or until
/// `closed`); returns the time waited.
fn yield_to_frames(activity: Option<&FrameActivity>, closed: &AtomicBool) -> Duration {
    let Some(activity) = activity else {
        return Duration::ZERO;
    };
    let t0 = Instant::now();
    while activity.busy() && !closed.load(Ordering::Acquire) {
        if t0.elapsed() >= MAX_YIELD_PER_TOKEN {
            break;
        }
        std::thread::sleep(YIELD_POLL);
    }
    t0.elapsed()
}

/// The loaded head: sessions, tokenizer, and where it publishes.
struct Head {
    generator: Generator,
    /// `backend = "remote"`: the server that generates while it answers.
    remote: Option<RemoteHead>,
    codec: PromptCodec,
    vocabulary: BTreeMap<String, Vec<String>>,
    /// How the model's reports read (its manifest's `[report]`).
    grammar: ReportGrammar,
    spec: HeadSpec,
    /// The definition's prompt, else the model's own.
    default_prompt: String,
    /// The last report was cancelled for its age: this one runs to its end
    /// unless a new scene or a request comes.
    last_was_stale: bool,
    slot: Arc<KernelSlot>,
    board: Arc<InterpretationBoard>,
    shared: Arc<Shared>,
    /// The last finished interpretation (shown again after a cancelled one).
    last_done: Option<Arc<Interpretation>>,
    warned_timeout: bool,
    warned_failure: bool,
    warned_prompt: bool,
    warned_kernels: bool,
}

impl Head {
    #[allow(clippy::too_many_arguments)]
    /// Loads the head of the model in `dir` (`opened`: already opened there).
    fn load(
        dir: &std::path::Path,
        opened: Option<ModelDir>,
        spec: &HeadSpec,
        engine: &EngineOptions,
        runtime: &Runtime,
        slot: Arc<KernelSlot>,
        board: Arc<InterpretationBoard>,
        shared: Arc<Shared>,
        remote: Option<RemoteHead>,
    ) -> Result<Self, ReasoningError> {
        let _span = info_span!("reasoning_load", model = %dir.display()).entered();
        let model = match opened {
            Some(model) => model,
            None => ModelDir::open(dir)?,
        };
        let generator = Generator::load(runtime, &model, engine)?;
        let codec = PromptCodec::load(&model)?;
        let default_prompt = spec
            .prompt
            .clone()
            .or_else(|| model.manifest.default_prompt().map(str::to_owned))
            .unwrap_or_default();
        if let Ok(mut task) = shared.task.lock() {
            if task.is_empty() {
                task.clone_from(&default_prompt);
            }
        }
        let prompt = codec.encode(&default_prompt)?.len();
        // Image tokens, prompt and report share the decoder's position table.
        let image = model.manifest.image_token_count().unwrap_or(0);
        let limit = generator.max_positions();
        if image + prompt > limit {
            return Err(ReasoningError::Inference(InferenceError::Positions {
                file: generator.decoder.file.display().to_string(),
                image,
                prompt,
                needed: image + prompt,
                max_positions: limit,
            }));
        }
        let room = limit + 1 - image - prompt;
        if spec.max_new_tokens > room {
            info!(
                "reports are at most {room} tokens (reasoning.max_new_tokens is {}): the decoder's \
                 position table (graphs.decoder.max_positions = {limit}) holds the {image} image tokens, \
                 the {prompt}-token prompt and the report; a longer one is cut short (truncated)",
                spec.max_new_tokens
            );
        }
        Ok(Self {
            generator,
            remote,
            codec,
            vocabulary: model.manifest.attributes.clone(),
            grammar: model.manifest.report.clone(),
            spec: spec.clone(),
            slot,
            board,
            shared,
            last_done: None,
            warned_timeout: false,
            warned_failure: false,
            warned_prompt: false,
            default_prompt,
            last_was_stale: false,
            warned_kernels: false,
        })
    }

    fn publish(&self, text: String, kf: &Keyframe, state: InterpretationState) {
        self.board.store(Some(interpretation(text, kf, state)));
    }

    fn fail(&mut self, kf: &Keyframe, cause: String, once: fn(&mut Self) -> &mut bool) {
        let warned = once(self);
        if !*warned {
            *warned = true;
            warn!(keyframe = kf.frame.0, "the reasoning head failed on a keyframe (logged once; the decoder keeps its kernels): {cause}");
        } else {
            debug!(keyframe = kf.frame.0, "reasoning failed again: {cause}");
        }
        self.publish(
            format!("unavailable: {cause}"),
            kf,
            InterpretationState::Unavailable,
        );
    }

    /// Generates for one keyframe and publishes what came of it.
    fn answer(&mut self, kf: &Keyframe) {
        let _span = info_span!(
            "reasoning",
            keyframe = kf.frame.0,
            reason = kf.reason.name()
        )
        .entered();
        let stats = Arc::clone(&self.shared.stats);
        let prompt = self
            .shared
            .task
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|_| self.default_prompt.clone());
        let prompt_ids = match self.codec.encode(&prompt) {
            Ok(ids) => ids,
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                return self.fail(kf, e.to_string(), |h| &mut h.warned_prompt);
            }
        };
        // Under load the ladder pauses routine reports; one a client asked
        // for is still written (at the head's low priority, yielding to
        // frames between tokens): "analyse now" must not vanish.
        let pausable = kf.reason != KeyframeReason::Request;
        if pausable && self.shared.paused.load(Ordering::Acquire) {
            stats.cancelled_under_load.fetch_add(1, Ordering::Relaxed);
            return;
        }
        stats.busy.store(true, Ordering::Relaxed);
        let started = Instant::now();
        let mut yielded = Duration::ZERO;
        let mut sampler = Sampler::new(self.spec.sampling, kf.frame.0);
        let mut ending = Ending::Finished;
        // After a report cancelled for its age, the next one is not: on a
        // machine so loaded that every report outlives `stale_after`, age
        // alone would cancel them all and the sonographer would never get
        // one. A new scene or a request still wins at once.
        let stale_after = (!self.last_was_stale).then_some(self.spec.stale_after);
        let timeout = self.spec.timeout;
        let (shared, board, codec) = (
            Arc::clone(&self.shared),
            Arc::clone(&self.board),
            &self.codec,
        );
        let mut stream = ReportStream::new(codec, &self.grammar, kf.calipers);
        let mut on_token = |token: i64| {
            // A new text for the board only when a clause ends (rate-bounded).
            if let Some(text) = stream.push(token, Instant::now()) {
                board.store(Some(Arc::new(Interpretation {
                    text: text.to_owned(),
                    frame: kf.frame,
                    captured: kf.captured,
                    state: InterpretationState::Writing,
                })));
            }
            yielded += yield_to_frames(shared.frame_activity.get(), &shared.closed);
            ending = if shared.closed.load(Ordering::Acquire) {
                Ending::Closed
            } else if pausable && shared.paused.load(Ordering::Acquire) {
                Ending::Paused
            } else if started.elapsed().saturating_sub(yielded) > timeout {
                Ending::TimedOut
            } else if shared.supersedes(kf, stale_after) {
                Ending::Stale
            } else {
                return ControlFlow::Continue(());
            };
            ControlFlow::Break(())
        };
        // On the server when it is configured and answers; else here.
        let max_new = self.spec.max_new_tokens;
        let remote = self.remote.as_mut().map(|r| {
            (
                r.generate(&kf.image_tokens, &prompt_ids, max_new),
                r.fallback(),
            )
        });
        let served = match remote {
            Some((Ok(g), _)) => Some(g),
            Some((Err(why), fallback)) => {
                if let NotRemote::Failed(e) = &why {
                    stats.note_remote_error(e.to_string());
                }
                if !fallback {
                    stats.busy.store(false, Ordering::Relaxed);
                    stats.remote_unavailable.fetch_add(1, Ordering::Relaxed);
                    self.publish(
                        "interpretation unavailable (server)".into(),
                        kf,
                        InterpretationState::Unavailable,
                    );
                    return;
                }
                stats.remote_fallbacks.fetch_add(1, Ordering::Relaxed);
                None
            }
            None => None,
        };
        let mut remote_kernels = None;
        let from_server = served.is_some();
        let result = match served {
            Some(g) => {
                stats.remote_reports.fetch_add(1, Ordering::Relaxed);
                stats.remote_latency.record(g.total);
                stats
                    .remote_bytes_sent
                    .fetch_add(g.bytes.0 as u64, Ordering::Relaxed);
                stats
                    .remote_bytes_received
                    .fetch_add(g.bytes.1 as u64, Ordering::Relaxed);
                let mut stopped = false;
                for &token in &g.tokens {
                    if on_token(token).is_break() {
                        stopped = true;
                        break;
                    }
                }
                let image = kf.image_tokens.len() / self.generator.width().max(1);
                let truncated = g.tokens.len() >= max_new
                    || image + prompt_ids.len() + g.tokens.len() >= self.generator.max_positions();
                remote_kernels = g.kernels;
                Ok(Generation {
                    tokens: g.tokens,
                    task_hidden: Vec::new(),
                    time_to_first_token: g.total,
                    total: g.total,
                    stopped,
                    truncated,
                })
            }
            None => self.generator.generate(
                &kf.image_tokens,
                &prompt_ids,
                codec.eos,
                &codec.task_ids,
                max_new,
                &mut |logits| sampler.pick(logits),
                &mut on_token,
            ),
        };
        stats.busy.store(false, Ordering::Relaxed);
        let (generated, grounded) = stream.finish();
        stats
            .yielded_ns
            .fetch_add(yielded.as_nanos() as u64, Ordering::Relaxed);
        let generation = match result {
            Ok(g) => g,
            Err(e) => {
                stats.failures.fetch_add(1, Ordering::Relaxed);
                return self.fail(kf, e.to_string(), |h| &mut h.warned_failure);
            }
        };
        self.last_was_stale = matches!(ending, Ending::Stale);
        match ending {
            Ending::Finished => {}
            Ending::Closed => return,
            Ending::Paused => {
                stats.cancelled_under_load.fetch_add(1, Ordering::Relaxed);
                debug!(
                    tokens = generation.tokens.len(),
                    "the run is shedding load: report cancelled"
                );
                self.board.store(self.last_done.clone());
                return;
            }
            Ending::Stale => {
                stats.cancelled_stale.fetch_add(1, Ordering::Relaxed);
                debug!(
                    tokens = generation.tokens.len(),
                    "a newer keyframe made this one stale: cancelled"
                );
                self.board.store(self.last_done.clone());
                return;
            }
            Ending::TimedOut => {
                stats.timeouts.fetch_add(1, Ordering::Relaxed);
                let cause = format!(
                    "generation timed out after {} ms ({} tokens)",
                    timeout.as_millis(),
                    generation.tokens.len()
                );
                return self.fail(kf, cause, |h| &mut h.warned_timeout);
            }
        }

        // Kernels from the task tokens, when the model wrote all of them
        // (the server sends them made; here they are projected).
        let mut kernel_version = None;
        let kernels = if from_server {
            remote_kernels.map(Ok)
        } else {
            generation
                .task_hidden
                .iter()
                .cloned()
                .collect::<Option<Vec<_>>>()
                .map(|hidden| {
                    self.generator
                        .kernels(&hidden)
                        .map_err(ReasoningError::from)
                })
        };
        if let Some(kernels) = kernels {
            match kernels.and_then(|data| {
                self.slot
                    .publish(self.codec.task_tokens.clone(), data)
                    .map_err(ReasoningError::from)
            }) {
                Ok(version) => {
                    stats.kernel_swaps.fetch_add(1, Ordering::Relaxed);
                    kernel_version = Some(version);
                }
                Err(e) if e.is_invalid_output() => {
                    // The report stands; only its kernels are not results.
                    stats.rejected_kernels.fetch_add(1, Ordering::Relaxed);
                    let kept = self.slot.load().version;
                    if std::mem::replace(&mut self.warned_kernels, true) {
                        debug!(keyframe = kf.frame.0, "kernels refused again: {e}");
                    } else {
                        warn!(keyframe = kf.frame.0, "kernels refused, the decoder keeps kernel version {kept} (logged once): {e}");
                    }
                }
                Err(e) => {
                    stats.failures.fetch_add(1, Ordering::Relaxed);
                    return self.fail(kf, e.to_string(), |h| &mut h.warned_failure);
                }
            }
        }

        let parsed = fields(&generated, &self.vocabulary, &self.grammar);
        let ttft = generation.time_to_first_token;
        stats.reports.fetch_add(1, Ordering::Relaxed);
        stats.ttft.record(ttft);
        stats.total.record(generation.total);
        if generation.tokens.len() > 1 {
            stats
                .decode_tokens
                .fetch_add(generation.tokens.len() as u64 - 1, Ordering::Relaxed);
            // Decode speed while decoding: the time yielded to frames is not the head's.
            stats.decode_ns.fetch_add(
                generation
                    .total
                    .saturating_sub(ttft)
                    .saturating_sub(yielded)
                    .as_nanos() as u64,
                Ordering::Relaxed,
            );
        }
        stats
            .unverified_numbers
            .fetch_add(grounded.unverified.len() as u64, Ordering::Relaxed);
        stats
            .replaced_numbers
            .fetch_add(grounded.replaced.len() as u64, Ordering::Relaxed);
        info!(
            tokens = generation.tokens.len(),
            ttft_ms = ttft.as_secs_f64() * 1e3,
            total_ms = generation.total.as_secs_f64() * 1e3,
            kernels = ?kernel_version,
            "report: {}",
            summary(&parsed, &kf.calipers, &self.grammar)
        );
        let text = if grounded.text.is_empty() {
            format!("{prompt}: done")
        } else {
            grounded.text.clone()
        };
        let report = Report {
            keyframe: kf.frame.0,
            reason: kf.reason,
            prompt,
            fields: parsed,
            long_axis_mm: kf.calipers.long.map(|m| m.caliper.length_mm),
            short_axis_mm: kf.calipers.short.map(|m| m.caliper.length_mm),
            text: grounded.text.clone(),
            generated,
            grounding: (&grounded).into(),
            tokens: generation.tokens.len(),
            truncated: generation.truncated,
            ttft_ms: ttft.as_secs_f64() * 1e3,
            total_ms: generation.total.as_secs_f64() * 1e3,
            kernel_version,
        };
        // Kept before it is shown: whoever sees it on the board finds its details.
        let shown = interpretation(text, kf, InterpretationState::Done);
        stats.record(Arc::clone(&shown), report);
        self.board.store(Some(Arc::clone(&shown)));
        self.last_done = Some(shown);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        Shared::new("[DIAG]".into(), Duration::from_secs(5))
    }

    #[test]
    fn a_yielding_head_never_waits_past_its_cap_or_a_close() {
        let activity = FrameActivity::new();
        let _frame = activity.enter();
        // Busy for good: the wait ends at the cap, not never.
        let waited = yield_to_frames(Some(&activity), &AtomicBool::new(false));
        assert!(waited >= MAX_YIELD_PER_TOKEN, "{waited:?}");
        // Closed: no wait at all for a head that is stopping.
        let waited = yield_to_frames(Some(&activity), &AtomicBool::new(true));
        assert!(waited < MAX_YIELD_PER_TOKEN, "{waited:?}");
        assert_eq!(
            yield_to_frames(None, &AtomicBool::new(false)),
            Duration::ZERO
        );
    }

    #[test]
    fn pausing_and_yielding_are_set_through_the_handle() {
        let h = handle();
        h.set_paused(true);
        assert!(h.shared.paused.load(Ordering::Acquire));
        h.set_paused(false);
        assert!(!h.shared.paused.load(Ordering::Acquire));
        let activity = FrameActivity::new();
        h.yield_to(activity.clone());
        let _frame = activity.enter();
        assert!(h
            .shared
            .frame_activity
            .get()
            .is_some_and(FrameActivity::busy));
    }

    fn handle() -> HeadHandle {
        let keyframes = Recycler::new(3);
        keyframes.prefill(|| Keyframe {
            image_tokens: Vec::with_capacity(8),
            ..Keyframe::default()
        });
        HeadHandle {
            shared: Arc::new(shared()),
            keyframes,
        }
    }

    fn keyframe(h: &HeadHandle, reason: KeyframeReason) -> Recycled<Keyframe> {
        let mut k = h.blank_keyframe();
        k.reason = reason;
        k
    }

    #[test]
    fn latest_wins_and_the_replaced_keyframe_is_counted() {
        let h = handle();
        h.submit(keyframe(&h, KeyframeReason::First));
        h.submit(keyframe(&h, KeyframeReason::Still));
        let stats = h.stats();
        assert_eq!(stats.keyframes.load(Ordering::Relaxed), 2);
        assert_eq!(stats.superseded.load(Ordering::Relaxed), 1);
        let next = h.shared.next();
        assert_eq!(next.map(|k| k.reason), Some(KeyframeReason::Still));
        // The replaced keyframe went back to the pool: three still to hand out.
        let held: Vec<_> = (0..3).map(|_| h.blank_keyframe()).collect();
        assert!(held.iter().all(|k| k.image_tokens.capacity() == 8));
    }

    #[test]
    fn neither_a_routine_keyframe_nor_a_new_scene_displaces_a_waiting_request() {
        let h = handle();
        h.submit(keyframe(&h, KeyframeReason::Request));
        h.submit(keyframe(&h, KeyframeReason::Still));
        h.submit(keyframe(&h, KeyframeReason::MaxInterval));
        h.submit(keyframe(&h, KeyframeReason::SceneChange));
        assert_eq!(
            h.shared.next().map(|k| k.reason),
            Some(KeyframeReason::Request),
            "the client's request is still the one the head takes, even after a new scene"
        );
        // With the slot empty again, routine keyframes go in as before, and a
        // new scene replaces a waiting routine one.
        h.submit(keyframe(&h, KeyframeReason::Still));
        h.submit(keyframe(&h, KeyframeReason::SceneChange));
        assert_eq!(
            h.shared.next().map(|k| k.reason),
            Some(KeyframeReason::SceneChange)
        );
    }

    #[test]
    fn a_parked_head_wakes_for_a_keyframe_and_for_a_close() {
        let h = handle();
        let shared = Arc::clone(&h.shared);
        let head = std::thread::spawn(move || {
            let first = shared.next().map(|k| k.frame);
            (first, shared.next().is_none())
        });
        let _ = h.shared.thread.set(head.thread().clone());
        std::thread::sleep(Duration::from_millis(20));
        let mut kf = keyframe(&h, KeyframeReason::First);
        kf.frame = FrameId(7);
        h.submit(kf);
        std::thread::sleep(Duration::from_millis(20));
        h.shared.close();
        assert_eq!(head.join().expect("head"), (Some(FrameId(7)), true));
    }

    #[test]
    fn a_running_generation_goes_stale_on_a_new_scene_a_request_or_age() {
        let h = handle();
        let stale_after = Duration::from_millis(500);
        let running = Keyframe {
            queued: Some(Instant::now()),
            ..Keyframe::default()
        };
        assert!(
            !h.shared.supersedes(&running, Some(stale_after)),
            "nothing newer waits"
        );
        h.submit(keyframe(&h, KeyframeReason::Still));
        assert!(
            !h.shared.supersedes(&running, Some(stale_after)),
            "a fresh running keyframe finishes"
        );
        let old = Keyframe {
            queued: Instant::now().checked_sub(Duration::from_secs(1)),
            ..Keyframe::default()
        };
        assert!(
            h.shared.supersedes(&old, Some(stale_after)),
            "an old one gives way"
        );
        assert!(
            !h.shared.supersedes(&old, None),
            "not by age right after a report was cancelled for its age"
        );
        h.submit(keyframe(&h, KeyframeReason::SceneChange));
        assert!(
            h.shared.supersedes(&running, Some(stale_after)),
            "a new scene wins at once"
        );
        let asked = Keyframe {
            reason: KeyframeReason::Request,
            queued: Instant::now().checked_sub(Duration::from_secs(1)),
            ..Keyframe::default()
        };
        assert!(
            !h.shared.supersedes(&asked, Some(stale_after)),
            "a request is finished before the new scene, however old"
        );
        h.submit(keyframe(&h, KeyframeReason::Request));
        assert!(
            h.shared.supersedes(&asked, Some(stale_after)),
            "only a newer request replaces one"
        );
    }

    #[test]
    fn a_closed_head_takes_no_keyframes() {
        let h = handle();
        h.shared.close();
        h.submit(keyframe(&h, KeyframeReason::First));
        assert_eq!(h.stats().keyframes.load(Ordering::Relaxed), 0);
        assert!(!h.is_open());
    }
}
