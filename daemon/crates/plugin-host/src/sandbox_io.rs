//! WASI I/O for a plugin that never blocks the thread it runs on.
//!
//! wasmtime-wasi's synchronous bindings serve `wasi:io/poll` and the blocking stream calls by
//! entering a tokio runtime and waiting on it. That is wrong for a plugin in two ways:
//!
//! - **Time.** A plugin's `std::thread::sleep` subscribes to the monotonic clock and blocks on
//!   a real tokio timer, which the CPU deadline (epoch interruption) cannot interrupt: the
//!   plugin never runs while it waits. A plugin that slept for an hour held a worker for an
//!   hour and made shutdown wait on it.
//! - **Where it runs.** `wuyed simulate` runs plugins on the thread that drives its runtime
//!   (`blocking::Blocking::InPlace`); blocking on the runtime from there panics ("Cannot start
//!   a runtime from within a runtime"), so a plugin that wrote one line to stderr crashed the
//!   simulation.
//!
//! So the sandbox shadows those interfaces with versions that never wait. Nothing a plugin can
//! reach needs to: the clocks are the daemon's (virtual in a simulation), so waiting for time
//! to pass means nothing to a hook; its stdout and stderr are [`CappedPipe`]s that always accept;
//! it has no files, sockets or stdin. A monotonic-clock subscription is ready at once (a sleep
//! returns immediately and the virtual clock does not move, so a plugin that busy-waits for
//! time to pass spins until its CPU deadline stops it). Every other wait is polled once; if it
//! is not ready, the plugin traps with a message naming what it waited on rather than hanging.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::bindings::clocks::monotonic_clock;
use wasmtime_wasi::p2::bindings::sync::io::{poll, streams};
use wasmtime_wasi::p2::{DynPollable, OutputStream, Pollable, StreamError, StreamResult};
use wasmtime_wasi_io::bindings::wasi::io::poll as async_poll;
use wasmtime_wasi_io::bindings::wasi::io::streams as async_streams;
use wasmtime_wasi_io::bindings::wasi::io::streams::{
    HostInputStream as AsyncIn, HostOutputStream as AsyncOut,
};

use super::host::RunState;
use wuye_core::clock::SharedClock;

/// Replaces wasmtime-wasi's blocking `wasi:io` and monotonic-clock subscriptions in `linker`
/// (which must already hold the stock WASI bindings) with the never-blocking ones above.
pub(crate) fn shadow_blocking_wasi(linker: &mut Linker<RunState>) -> anyhow::Result<()> {
    linker.allow_shadowing(true);
    poll::add_to_linker::<RunState, SandboxIo>(linker, |s| NoWait(&mut s.table))?;
    streams::add_to_linker::<RunState, SandboxIo>(linker, |s| NoWait(&mut s.table))?;
    monotonic_clock::add_to_linker::<RunState, SandboxClock>(linker, |s| VirtualClock {
        clock: &s.ctx.clock,
        table: &mut s.table,
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

struct SandboxIo;

impl HasData for SandboxIo {
    type Data<'a> = NoWait<'a>;
}

struct SandboxClock;

impl HasData for SandboxClock {
    type Data<'a> = VirtualClock<'a>;
}

/// The run's resource table, with every wait polled exactly once.
pub(crate) struct NoWait<'a>(&'a mut ResourceTable);

/// Polls `fut` once. The sandbox's own streams and pollables are always ready, so `Pending`
/// means the plugin is waiting on something that will never come: a trap, named.
fn at_once<F: Future>(what: &str, fut: F) -> wasmtime::Result<F::Output> {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => Ok(v),
        Poll::Pending => Err(wasmtime::format_err!(
            "the plugin waited on {what}, which the sandbox never makes ready (plugins have no \
             files, sockets or input to wait for)"
        )),
    }
}

fn stream_at_once<T, F>(what: &str, fut: F) -> StreamResult<T>
where
    F: Future<Output = StreamResult<T>>,
{
    at_once(what, fut).map_err(StreamError::Trap)?
}

impl poll::Host for NoWait<'_> {
    fn poll(&mut self, pollables: Vec<Resource<DynPollable>>) -> wasmtime::Result<Vec<u32>> {
        at_once(
            "a list of pollables",
            async_poll::Host::poll(self.0, pollables),
        )?
    }
}

impl poll::HostPollable for NoWait<'_> {
    fn ready(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<bool> {
        at_once(
            "a pollable",
            async_poll::HostPollable::ready(self.0, pollable),
        )?
    }
    fn block(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        at_once(
            "a pollable",
            async_poll::HostPollable::block(self.0, pollable),
        )?
    }
    fn drop(&mut self, pollable: Resource<DynPollable>) -> wasmtime::Result<()> {
        async_poll::HostPollable::drop(self.0, pollable)
    }
}

impl streams::Host for NoWait<'_> {
    fn convert_stream_error(&mut self, err: StreamError) -> wasmtime::Result<streams::StreamError> {
        Ok(
            match async_streams::Host::convert_stream_error(self.0, err)? {
                async_streams::StreamError::LastOperationFailed(e) => {
                    streams::StreamError::LastOperationFailed(e)
                }
                async_streams::StreamError::Closed => streams::StreamError::Closed,
            },
        )
    }
}

type Out = Resource<streams::OutputStream>;
type In = Resource<streams::InputStream>;

impl streams::HostOutputStream for NoWait<'_> {
    fn drop(&mut self, stream: Out) -> wasmtime::Result<()> {
        at_once("an output stream's close", AsyncOut::drop(self.0, stream))?
    }
    fn check_write(&mut self, stream: Out) -> StreamResult<u64> {
        AsyncOut::check_write(self.0, stream)
    }
    fn write(&mut self, stream: Out, bytes: Vec<u8>) -> StreamResult<()> {
        AsyncOut::write(self.0, stream, bytes)
    }
    fn blocking_write_and_flush(&mut self, stream: Out, bytes: Vec<u8>) -> StreamResult<()> {
        stream_at_once(
            "an output stream",
            AsyncOut::blocking_write_and_flush(self.0, stream, bytes),
        )
    }
    fn blocking_write_zeroes_and_flush(&mut self, stream: Out, len: u64) -> StreamResult<()> {
        stream_at_once(
            "an output stream",
            AsyncOut::blocking_write_zeroes_and_flush(self.0, stream, len),
        )
    }
    fn subscribe(&mut self, stream: Out) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncOut::subscribe(self.0, stream)
    }
    fn write_zeroes(&mut self, stream: Out, len: u64) -> StreamResult<()> {
        AsyncOut::write_zeroes(self.0, stream, len)
    }
    fn flush(&mut self, stream: Out) -> StreamResult<()> {
        AsyncOut::flush(self.0, stream)
    }
    fn blocking_flush(&mut self, stream: Out) -> StreamResult<()> {
        stream_at_once("an output stream", AsyncOut::blocking_flush(self.0, stream))
    }
    fn splice(&mut self, dst: Out, src: In, len: u64) -> StreamResult<u64> {
        AsyncOut::splice(self.0, dst, src, len)
    }
    fn blocking_splice(&mut self, dst: Out, src: In, len: u64) -> StreamResult<u64> {
        stream_at_once(
            "a stream splice",
            AsyncOut::blocking_splice(self.0, dst, src, len),
        )
    }
}

impl streams::HostInputStream for NoWait<'_> {
    fn drop(&mut self, stream: In) -> wasmtime::Result<()> {
        at_once("an input stream's close", AsyncIn::drop(self.0, stream))?
    }
    fn read(&mut self, stream: In, len: u64) -> StreamResult<Vec<u8>> {
        AsyncIn::read(self.0, stream, len)
    }
    fn blocking_read(&mut self, stream: In, len: u64) -> StreamResult<Vec<u8>> {
        stream_at_once(
            "an input stream",
            AsyncIn::blocking_read(self.0, stream, len),
        )
    }
    fn skip(&mut self, stream: In, len: u64) -> StreamResult<u64> {
        AsyncIn::skip(self.0, stream, len)
    }
    fn blocking_skip(&mut self, stream: In, len: u64) -> StreamResult<u64> {
        stream_at_once(
            "an input stream",
            AsyncIn::blocking_skip(self.0, stream, len),
        )
    }
    fn subscribe(&mut self, stream: In) -> wasmtime::Result<Resource<DynPollable>> {
        AsyncIn::subscribe(self.0, stream)
    }
}

/// `wasi:clocks/monotonic-clock` on the daemon's clock, whose subscriptions are ready at once.
pub(crate) struct VirtualClock<'a> {
    clock: &'a SharedClock,
    table: &'a mut ResourceTable,
}

/// A clock subscription: the time a plugin waits for never has to pass in real time.
struct Elapsed;

#[wasmtime_wasi::async_trait]
impl Pollable for Elapsed {
    async fn ready(&mut self) {}
}

impl VirtualClock<'_> {
    fn elapsed(&mut self) -> wasmtime::Result<Resource<DynPollable>> {
        let at_once = self.table.push(Elapsed)?;
        wasmtime_wasi::p2::subscribe(self.table, at_once)
    }
}

impl monotonic_clock::Host for VirtualClock<'_> {
    fn now(&mut self) -> wasmtime::Result<u64> {
        Ok(monotonic_nanos(self.clock))
    }
    fn resolution(&mut self) -> wasmtime::Result<u64> {
        Ok(1_000_000)
    }
    fn subscribe_instant(&mut self, _when: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.elapsed()
    }
    fn subscribe_duration(&mut self, _duration: u64) -> wasmtime::Result<Resource<DynPollable>> {
        self.elapsed()
    }
}

/// The monotonic clock a plugin reads: the daemon's clock in nanoseconds since the epoch (a
/// simulation's plugins see virtual time, and it never runs backwards within a run).
pub(crate) fn monotonic_nanos(clock: &SharedClock) -> u64 {
    (clock.now().timestamp_millis().max(0) as u64).saturating_mul(1_000_000)
}

/// A plugin's stdout or stderr: keeps the first `cap` bytes and counts the rest, and never
/// refuses a write (a refused write makes Rust's `eprintln!` panic, so a chatty plugin would
/// fail for talking, and its real message would be lost).
#[derive(Debug, Clone)]
pub struct CappedPipe {
    cap: usize,
    inner: Arc<Mutex<Captured>>,
}

#[derive(Debug, Default)]
struct Captured {
    kept: Vec<u8>,
    dropped: u64,
}

impl CappedPipe {
    pub fn new(cap: usize) -> CappedPipe {
        CappedPipe {
            cap,
            inner: Arc::default(),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut c = self.inner.lock().expect("poisoned");
        let room = self.cap.saturating_sub(c.kept.len());
        let keep = room.min(bytes.len());
        c.kept.extend_from_slice(&bytes[..keep]);
        c.dropped += (bytes.len() - keep) as u64;
    }

    /// What was kept (lossy UTF-8) and how many bytes past the cap were dropped.
    pub fn contents(&self) -> (String, u64) {
        let c = self.inner.lock().expect("poisoned");
        (String::from_utf8_lossy(&c.kept).into_owned(), c.dropped)
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: bytes::Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedPipe {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_capped_pipe_keeps_the_head_and_counts_the_rest() {
        let pipe = CappedPipe::new(8);
        pipe.take(b"hello ");
        pipe.take(b"world, and more");
        assert_eq!(pipe.contents(), ("hello wo".to_string(), 13));
    }
}
