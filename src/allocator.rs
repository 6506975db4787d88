//! The process's allocator: mimalloc, asked for plain blocks whenever a plain block is aligned
//! enough.
//!
//! The `mimalloc` crate's `MiMalloc` hands every allocation to `mi_malloc_aligned`, whatever
//! its alignment. For the 8- and 16-byte alignments of almost every Rust value, mimalloc 3's
//! aligned call takes its fast path only when the page of the size already holds a free
//! block; otherwise (an empty page, or a size past 1 KiB: a request's boxed futures, its hash
//! buffer) it goes to a generic path that, for a size that is not a power of two,
//! over-allocates (size + alignment − 1, a larger size class) instead of refilling the page:
//! 19 such calls per chat request, the allocator's share of the request's instructions
//! ~8,400 of 143,000 (issue 21, callgrind; ~5,500 with this allocator).
//!
//! [`Allocator`] calls `mi_malloc` / `mi_zalloc` / `mi_realloc` when the alignment is at most
//! 16 bytes and divides the size: mimalloc's size classes for such sizes are multiples of 16
//! and a page's first block is 16-aligned, so these blocks are aligned as asked (not so with
//! mimalloc's padding, its `debug`/`secure` builds, which Sluice does not use). The address
//! is checked anyway, and anything else takes the aligned call. The fallbacks for a
//! misaligned plain block are reachable only with that padding, so no test reaches them.

use core::alloc::{GlobalAlloc, Layout};
use core::ffi::c_void;
use libmimalloc_sys::{
    mi_free, mi_malloc, mi_malloc_aligned, mi_realloc, mi_realloc_aligned, mi_zalloc,
    mi_zalloc_aligned,
};

/// The largest alignment a plain mimalloc block of a size it divides has (mimalloc's
/// `MI_MAX_ALIGN_SIZE`, 16 bytes on 64-bit targets).
const PLAIN_ALIGN: usize = 16;

/// mimalloc as the global allocator (see the module docs). Zero-sized; use as
/// `#[global_allocator] static GLOBAL: Allocator = Allocator;`.
pub struct Allocator;

/// Whether a plain block of `size` bytes is asked for with an alignment it normally has.
fn plain(size: usize, align: usize) -> bool {
    align <= PLAIN_ALIGN && size.is_multiple_of(align) && size != 0
}

/// Whether `p` is null or aligned to `align` (a power of two).
fn aligned(p: *mut c_void, align: usize) -> bool {
    (p as usize) & (align - 1) == 0
}

/// A block for `layout` from `plain` when [`plain`] says it is aligned enough and the address
/// it gives is, else from `aligned` (mimalloc's `mi_malloc`/`mi_malloc_aligned`, or the
/// zeroing pair).
///
/// # Safety
/// `plain` and `aligned` are mimalloc's: blocks `mi_free` takes, null on failure.
#[inline(always)]
unsafe fn allocate(
    layout: Layout,
    plain_call: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned_call: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    let (size, align) = (layout.size(), layout.align());
    if plain(size, align) {
        // SAFETY: a plain allocation of a non-zero size.
        let p = unsafe { plain_call(size) };
        if aligned(p, align) {
            return p as *mut u8;
        }
        // SAFETY: `p` came from mimalloc just above.
        unsafe { mi_free(p) };
    }
    // SAFETY: `align` is a power of two (a `Layout`'s is).
    unsafe { aligned_call(size, align) as *mut u8 }
}

// SAFETY: every block comes from mimalloc and goes back to it (`mi_free` takes blocks from
// any of its calls); a block is returned only when aligned as the layout asks (plain calls
// are checked, and replaced by the aligned call when they are not); null is returned as
// failure, as `GlobalAlloc` requires.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned allocation calls.
        unsafe { allocate(layout, mi_malloc, mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: mimalloc's plain and aligned zeroing calls.
        unsafe { allocate(layout, mi_zalloc, mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc.
        unsafe { mi_free(ptr as *mut c_void) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let align = layout.align();
        if plain(new_size, align) {
            // SAFETY: `ptr` came from mimalloc; on success it is freed or kept by the call.
            let p = unsafe { mi_realloc(ptr as *mut c_void, new_size) };
            if aligned(p, align) {
                return p as *mut u8;
            }
            // A block that is not aligned enough (only with mimalloc's padding): its contents
            // move to one that is. `ptr` is already gone, so there is no failure to report:
            // without memory for the aligned block the process stops, as Rust does on an
            // allocation failure.
            // SAFETY: `p` holds `new_size` bytes of the old block's contents (the smaller of
            // the two sizes are meaningful) and is not used after it is freed.
            unsafe {
                let q = mi_malloc_aligned(new_size, align);
                if q.is_null() {
                    std::alloc::handle_alloc_error(Layout::from_size_align_unchecked(
                        new_size, align,
                    ));
                }
                core::ptr::copy_nonoverlapping(p as *const u8, q as *mut u8, new_size);
                mi_free(p);
                return q as *mut u8;
            }
        }
        // SAFETY: `ptr` came from mimalloc and `align` is a power of two.
        unsafe { mi_realloc_aligned(ptr as *mut c_void, new_size, align) as *mut u8 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn plain_blocks_are_asked_for_only_where_they_are_aligned() {
        assert!(plain(8, 8));
        assert!(plain(24, 8));
        assert!(plain(48, 16));
        assert!(plain(4096, 16));
        assert!(!plain(24, 16), "24 is not a multiple of 16");
        assert!(!plain(128, 32), "32 is above a plain block's alignment");
        assert!(!plain(0, 1), "zero bytes go to the aligned call");
    }

    proptest! {
        /// Every block this allocator gives is aligned as asked, holds what is written to
        /// it, keeps it through a reallocation to another size, and is zeroed when asked.
        #[test]
        fn blocks_are_aligned_and_keep_their_bytes(
            size in 1usize..70_000,
            new_size in 1usize..70_000,
            align_log in 0u32..13,
            zeroed in any::<bool>(),
        ) {
            let align = 1usize << align_log;
            let layout = Layout::from_size_align(size, align).unwrap();
            let a = Allocator;
            unsafe {
                let p = if zeroed { a.alloc_zeroed(layout) } else { a.alloc(layout) };
                prop_assert!(!p.is_null());
                prop_assert_eq!(p as usize % align, 0);
                if zeroed {
                    prop_assert!(std::slice::from_raw_parts(p, size).iter().all(|&b| b == 0));
                }
                for i in 0..size {
                    *p.add(i) = (i % 251) as u8;
                }
                let q = a.realloc(p, layout, new_size);
                prop_assert!(!q.is_null());
                prop_assert_eq!(q as usize % align, 0);
                for i in 0..size.min(new_size) {
                    prop_assert_eq!(*q.add(i), (i % 251) as u8);
                }
                a.dealloc(q, Layout::from_size_align(new_size, align).unwrap());
            }
        }
    }
}
