#include "tb/files.hpp"

#include "tb/crypto.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <system_error>

namespace tb {

namespace {

std::string reason() { return std::strerror(errno); }

/// ".NAME.tmp-"
std::string temporary_prefix(const std::filesystem::path& target) {
  return "." + target.filename().string() + ".tmp-";
}

}  // namespace

std::optional<std::string> write_file_atomically(const std::string& path, std::string_view content,
                                                 mode_t mode) {
  const std::filesystem::path target(path);
  if (target.filename().empty()) return path + ": names a directory, not a file";
  const auto directory = target.has_parent_path() ? target.parent_path() : ".";
  std::string temporary;
  try {
    temporary = (directory / (temporary_prefix(target) + random_base64url(9))).string();
  } catch (const std::exception& e) {
    return path + ": no random name for its temporary file: " + e.what();
  }
  const int fd =
      ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return path + ": cannot create " + temporary + ": " + reason();
  auto fail = [&](std::string_view step) {
    std::string error = path + ": cannot " + std::string(step) + " " + temporary + ": " + reason();
    ::close(fd);
    ::unlink(temporary.c_str());
    return error;
  };
  if (::fchmod(fd, mode) != 0) return fail("set the mode of");
  for (std::size_t written = 0; written < content.size();) {
    const auto n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail("write");
    }
    written += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) return fail("fsync");
  if (::close(fd) != 0) {
    std::string error = path + ": cannot close " + temporary + ": " + reason();
    ::unlink(temporary.c_str());
    return error;
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    std::string error = path + ": cannot rename " + temporary + " over it: " + reason();
    ::unlink(temporary.c_str());
    return error;
  }
  // The rename is durable once the directory is: a crash then leaves the new file, not the old.
  const int dir = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir >= 0) {
    (void)::fsync(dir);  // the file is in place already; a directory that cannot fsync is fine
    ::close(dir);
  }
  return std::nullopt;
}

int remove_stale_temporaries(const std::string& path) {
  const std::filesystem::path target(path);
  const auto directory = target.has_parent_path() ? target.parent_path() : ".";
  const auto prefix = temporary_prefix(target);
  int removed = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it(directory, ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->path().filename().string().starts_with(prefix) &&
        std::filesystem::remove(it->path(), ec)) {
      ++removed;
    }
  }
  return removed;
}

}  // namespace tb
