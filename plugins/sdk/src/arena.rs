//! The plugins' global allocator: a bump allocator over a static arena.
//!
//! Every call runs in a fresh instance that is thrown away afterwards, so freeing memory is wasted
//! work. And growing linear memory is what makes an instantiation expensive on the host: each
//! growth, and each reset of a grown memory, changes page protections with a system call. The
//! arena lives in the module's zero-initialised data, so an ordinary request allocates without
//! growing memory at all; a larger one falls back to `memory.grow`, where the host's memory cap
//! applies as always.

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32::memory_grow;

/// Enough for the JSON of any ordinary admin request and reply.
const ARENA_SIZE: usize = 512 * 1024;
const PAGE: usize = 64 * 1024;
/// When the arena is exhausted, memory grows by at least this much at a time.
const MIN_GROWTH_PAGES: usize = 16;

#[repr(align(16))]
struct Arena {
    _bytes: [u8; ARENA_SIZE],
}

static mut ARENA: Arena = Arena { _bytes: [0; ARENA_SIZE] };
/// The next free address, and the end of the region being carved; 0 before the first allocation.
static mut NEXT: usize = 0;
static mut LIMIT: usize = 0;

pub struct Bump;

// SAFETY: a wasm32 plugin instance runs on one thread, so the statics are never accessed
// concurrently; every returned block is aligned as asked and lies inside the arena or inside
// pages this allocator grew.
unsafe impl GlobalAlloc for Bump {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        unsafe {
            if LIMIT == 0 {
                NEXT = (&raw mut ARENA) as usize;
                LIMIT = NEXT + ARENA_SIZE;
            }
            if let Some(block) = carve(layout) {
                return block;
            }
            let pages = (layout.size() + layout.align()).div_ceil(PAGE).max(MIN_GROWTH_PAGES);
            let old_pages = memory_grow(0, pages);
            if old_pages == usize::MAX {
                return core::ptr::null_mut();
            }
            NEXT = old_pages * PAGE;
            LIMIT = NEXT + pages * PAGE;
            carve(layout).unwrap_or(core::ptr::null_mut())
        }
    }

    /// Only the most recent block is given back, which serves the common push-then-pop patterns.
    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        unsafe {
            if block as usize + layout.size() == NEXT {
                NEXT = block as usize;
            }
        }
    }

    /// The most recent block grows in place, so a growing `Vec` or `String` is not copied.
    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        unsafe {
            let start = block as usize;
            if start + layout.size() == NEXT && start + new_size <= LIMIT {
                NEXT = start + new_size;
                return block;
            }
            let Ok(new_layout) = Layout::from_size_align(new_size, layout.align()) else {
                return core::ptr::null_mut();
            };
            let moved = self.alloc(new_layout);
            if !moved.is_null() {
                core::ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
            }
            moved
        }
    }
}

/// A block from the current region, if it fits.
unsafe fn carve(layout: Layout) -> Option<*mut u8> {
    unsafe {
        let start = NEXT.checked_add(layout.align() - 1)? & !(layout.align() - 1);
        let end = start.checked_add(layout.size())?;
        if end > LIMIT {
            return None;
        }
        NEXT = end;
        Some(start as *mut u8)
    }
}

/// The canonical ABI's allocator export (how the host passes lists and strings in), which std
/// provides when it is linked and the sdk provides when it is not.
#[cfg(not(feature = "std"))]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    block: *mut u8,
    old_size: usize,
    align: usize,
    new_size: usize,
) -> *mut u8 {
    // SAFETY: the canonical ABI passes a block this allocator returned (or null with size 0) and
    // a power-of-two alignment.
    unsafe {
        if old_size == 0 {
            if new_size == 0 {
                return align as *mut u8;
            }
            return Bump.alloc(Layout::from_size_align_unchecked(new_size, align));
        }
        Bump.realloc(block, Layout::from_size_align_unchecked(old_size, align), new_size)
    }
}
