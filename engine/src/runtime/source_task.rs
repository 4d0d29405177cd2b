//! The loop of a source subtask: polls its source, generates watermarks,
//! sends latency markers, injects the barriers the coordinator asks for with
//! the source's position, and ends the chain when the input ends or the job
//! is stopped.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam::channel::{Receiver, RecvTimeoutError};

use super::chain::{wrap, ChainRuntime};
use super::coordinator::Control;
use super::metrics::Wait;
use super::restore::Resume;
use super::shared::Shared;
use crate::error::{EngineError, Result};
use crate::operator::{OperatorMetrics, TaskInfo};
use crate::source::{Source, SourcePoll, WatermarkStrategy};
use crate::types::{max_event_time, EventTime, Watermark};
use crate::watermark::WatermarkGenerator;

/// The source's position as a checkpoint entry. Without a checkpoint
/// directory nothing is restored from it, so a source that cannot tell its
/// position takes part with an empty one.
fn position_entry(
    source: &mut dyn Source,
    name: &str,
    durable: bool,
    task: &TaskInfo,
) -> Result<Vec<(String, Vec<u8>)>> {
    let position = match source.snapshot_position() {
        Ok(p) => p,
        Err(e) if durable => return Err(wrap(e, task)),
        Err(_) => Vec::new(),
    };
    Ok(vec![(name.to_string(), position)])
}

/// A source subtask's own parts.
pub(super) struct SourceRun {
    pub(super) source: Box<dyn Source>,
    pub(super) position: Resume,
    pub(super) position_name: String,
    pub(super) strategy: Option<WatermarkStrategy>,
}

/// Runs a source subtask until its input ends, the job is stopped, or it
/// fails.
pub(super) fn run_source(
    run: SourceRun,
    task: &TaskInfo,
    metrics: &Arc<OperatorMetrics>,
    mut chain: ChainRuntime,
    ctrl: &Receiver<Control>,
    shared: &Shared,
) -> Result<()> {
    let SourceRun {
        mut source,
        position,
        position_name,
        strategy,
    } = run;
    let splits = source.open(task, metrics).map_err(|e| wrap(e, task))?;
    resume(&mut *source, &position).map_err(|e| wrap(e, task))?;
    chain.open()?;
    // Processing-time watermarks follow a clock, not the rows.
    let proc_clock = strategy.as_ref().and_then(|s| s.processing_time.clone());
    let strategy = strategy.filter(|s| s.processing_time.is_none());
    let mut last_proc = EventTime::MIN;
    let mut generator = strategy.as_ref().map(|s| {
        WatermarkGenerator::new(
            s.max_out_of_orderness,
            s.idle_timeout,
            &splits,
            Instant::now(),
        )
    });
    let mut last_explicit: Option<EventTime> = None;
    // Generated watermarks go out at most once per interval (Flink's
    // auto-watermark interval): at high parallelism each one is a message
    // to every downstream subtask. Idleness changes are not held back.
    let mut watermark_due = Instant::now();
    let interval = chain.watermark_interval;
    let mut due = move |now: Instant| {
        if now < watermark_due {
            return false;
        }
        watermark_due = now + interval;
        true
    };
    let mut next_marker = chain.latency_interval.map(|i| Instant::now() + i);
    let emit = |chain: &mut ChainRuntime, wm: Watermark| -> Result<()> {
        if let Watermark::EventTime(t) = wm {
            metrics.watermark.set(t);
        }
        chain.watermark(wm)
    };
    loop {
        if shared.cancelled() {
            return Err(EngineError::Cancelled);
        }
        let durable = chain.checkpointing;
        let mut snapshot = || position_entry(&mut *source, &position_name, durable, task);
        if shared.stop.load(Ordering::Relaxed) {
            chain.end()?;
            let extra = snapshot()?;
            return chain.finish(false, extra, ctrl, shared);
        }
        while let Ok(c) = ctrl.try_recv() {
            chain.handle_control(c, &mut snapshot)?;
        }
        if let (Some(at), Some(interval)) = (next_marker, chain.latency_interval) {
            let now = Instant::now();
            if now >= at {
                chain.latency_marker(now)?;
                next_marker = Some(now + interval);
            }
        }
        let polling = Instant::now();
        let polled = source.poll().map_err(|e| wrap(e, task))?;
        if matches!(polled, SourcePoll::Pending) {
            // A poll that found nothing waited for input.
            chain.router.task.add_idle(polling.elapsed());
        }
        match polled {
            SourcePoll::Batch { split, batch } => {
                if let (Some(g), Some(s)) = (generator.as_mut(), strategy.as_ref()) {
                    let column = batch.columns().get(s.time_column).ok_or_else(|| {
                        wrap(
                            EngineError::Plan(format!(
                                "event-time column {} does not exist",
                                s.time_column
                            )),
                            task,
                        )
                    })?;
                    let newest = max_event_time(column).map_err(|e| wrap(e, task))?;
                    g.on_rows(split, newest, Instant::now());
                }
                if batch.num_rows() > 0 {
                    chain.process(0, batch, Some(metrics))?;
                    chain.router.flush_expired()?;
                }
                let now = Instant::now();
                let event = generator
                    .as_mut()
                    .and_then(|g| g.poll_due(now, || due(now)));
                let processing = proc_clock
                    .as_ref()
                    .and_then(|c| processing_watermark(c, &mut last_proc, || due(now)));
                for wm in event.into_iter().chain(processing) {
                    emit(&mut chain, wm)?;
                }
            }
            SourcePoll::Watermark(_) if proc_clock.is_some() => {}
            SourcePoll::Watermark(t) => {
                if last_explicit.is_none_or(|l| t > l) {
                    last_explicit = Some(t);
                    emit(&mut chain, Watermark::EventTime(t))?;
                }
            }
            SourcePoll::Pending => {
                let now = Instant::now();
                let event = generator
                    .as_mut()
                    .and_then(|g| g.poll_due(now, || due(now)));
                let processing = proc_clock
                    .as_ref()
                    .and_then(|c| processing_watermark(c, &mut last_proc, || due(now)));
                for wm in event.into_iter().chain(processing) {
                    emit(&mut chain, wm)?;
                }
                // Nothing to read now: send what the exchanges gathered.
                chain.router.flush()?;
                let clock = Arc::clone(&chain.router.task);
                clock.wait(Wait::Idle);
                let control = ctrl.recv_timeout(Duration::from_millis(1));
                clock.done_waiting();
                match control {
                    Ok(c) => {
                        let mut snapshot =
                            || position_entry(&mut *source, &position_name, durable, task);
                        chain.handle_control(c, &mut snapshot)?
                    }
                    Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {}
                }
            }
            SourcePoll::SplitFinished(split) => {
                if let Some(g) = generator.as_mut() {
                    g.split_finished(split);
                    if let Some(wm) = g.poll(Instant::now()) {
                        emit(&mut chain, wm)?;
                    }
                }
            }
            SourcePoll::Finished => {
                // A bounded input is complete: everything it opened may fire.
                emit(&mut chain, Watermark::MAX)?;
                chain.end()?;
                let extra = position_entry(&mut *source, &position_name, durable, task)?;
                return chain.finish(true, extra, ctrl, shared);
            }
        }
    }
}

/// Puts the source where `position` says it was.
fn resume(source: &mut dyn Source, position: &Resume) -> Result<()> {
    match position {
        Resume::Fresh => Ok(()),
        Resume::Same(p) => source.restore_position(p),
        Resume::Rescaled(all) => source.restore_positions(all),
    }
}

/// The next processing-time watermark, when one is due and the clock moved:
/// the clock's time less a millisecond, so a row stamped at this very
/// millisecond is not late.
fn processing_watermark(
    clock: &crate::time::Clock,
    last: &mut EventTime,
    due: impl FnOnce() -> bool,
) -> Option<Watermark> {
    let t = clock.now_millis().saturating_sub(1);
    if t <= *last || !due() {
        return None;
    }
    *last = t;
    Some(Watermark::EventTime(t))
}
