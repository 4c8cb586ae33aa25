#pragma once
// Included (first) by the .cpp files whose Asio coroutines gcc 12 flags with
// -Wmismatched-new-delete: at -O1 and above, where it inlines Asio's recycling allocator, it
// reports that a coroutine frame is freed by "a mismatched deallocation function". That is a
// known false positive (gcc PR middle-end/109224) on the class-level operator new/delete pair of
// Asio's awaitable_frame_base, and which coroutines it flags changes with unrelated edits. It is
// silenced for the rest of the including file only, so that the warning keeps its use elsewhere;
// a real new/delete mismatch is still caught at run time by AddressSanitizer
// (alloc_dealloc_mismatch) in the asan build.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
