#pragma once
// Files that other processes read while they change: replaced whole, never seen half-written.

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>

namespace tb {

/// Replaces the file at `path` with `content`, so that a reader opening it at any moment reads
/// either the old content or the new, never a part nor an empty file: the content goes to a new
/// temporary file in the same directory (".NAME.tmp-RANDOM", created exclusively, mode `mode`
/// whatever the umask), is fsynced, renamed over `path`, and the directory is fsynced. On failure
/// the temporary file is removed and `path` is left as it was. Returns what went wrong (the file,
/// the step and the system's reason), or nullopt.
std::optional<std::string> write_file_atomically(const std::string& path, std::string_view content,
                                                 mode_t mode = 0644);

/// Removes the temporary files write_file_atomically(path, …) leaves when the process dies
/// between creating and renaming one; returns how many it removed.
int remove_stale_temporaries(const std::string& path);

}  // namespace tb
