// Included (with `include!`) by every fuzz target, not by `lib.rs`: a global allocator that aborts
// on any single allocation above `ALLOC_LIMIT`, so a length read from fuzz input that drives an
// allocation is caught without a sanitizer (libFuzzer's `-malloc_limit_mb` needs one).

/// The largest allocation a check may make. The biggest legitimate ones are topiclog's 1 MiB read
/// windows and scratch buffers.
const ALLOC_LIMIT: usize = 16 << 20;

struct LimitAlloc;

fn too_large(size: usize) -> ! {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "==ALLOC== allocation of {size} bytes exceeds the fuzz limit of {ALLOC_LIMIT}"
    );
    std::process::abort()
}

// SAFETY: forwards to the system allocator unchanged; only refuses (by aborting) huge requests.
unsafe impl std::alloc::GlobalAlloc for LimitAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            too_large(layout.size());
        }
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        if layout.size() > ALLOC_LIMIT {
            too_large(layout.size());
        }
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        if new_size > ALLOC_LIMIT {
            too_large(new_size);
        }
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: LimitAlloc = LimitAlloc;
