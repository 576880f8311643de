//! The wasmtime `Engine` every plugin shares: the pooling instance allocator sized for the
//! configured concurrency, epoch interruption for deadlines, and the ticker thread that drives
//! the epoch.

use std::time::Duration;

use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A deadline is a number of ticks, so it is enforced to within
/// about one tick; WASMTIME-NOTES measured 10-15% of guest CPU for this check.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// The most instances alive at once: one per call thread, plus manifests being read during loads.
/// Each reserves address space for one linear memory of the largest configured cap.
pub const MAX_CONCURRENT_CALLS: u32 = 64;

/// Builds the engine. `max_memory_bytes` is the largest linear memory any plugin may reach.
pub fn build(max_memory_bytes: usize) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::default();
    // A wasip2 component from wit-bindgen is a main module plus small shim modules, each with
    // its own table; room for a few of each per component instance.
    pool.total_component_instances(MAX_CONCURRENT_CALLS)
        .total_core_instances(MAX_CONCURRENT_CALLS * 8)
        .total_memories(MAX_CONCURRENT_CALLS * 2)
        .total_tables(MAX_CONCURRENT_CALLS * 8)
        .max_memory_size(max_memory_bytes)
        // Reusing warm, resident pages (zeroed with memset) instead of madvise-ing them away is
        // what makes a fresh instance per request cheap (WASMTIME-NOTES: 48-58 µs -> 24-37 µs).
        .linear_memory_keep_resident(1 << 20)
        .table_keep_resident(64 << 10)
        .pagemap_scan(Enabled::Auto);
    let mut config = wasmtime::Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config.epoch_interruption(true);
    Engine::new(&config)
}

/// Advances the engine's epoch every [`EPOCH_TICK`] until the engine is dropped everywhere else.
pub fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("plughost-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread at start-up");
}

/// The number of epoch ticks that covers `deadline`.
pub fn deadline_ticks(deadline: Duration) -> u64 {
    (deadline.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64).max(1)
}
