#include "broker/listeners.hpp"

#include "broker/broker.hpp"
#include "tb/log.hpp"

#include <fmt/format.h>
#include <openssl/rand.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace broker {

namespace asio = boost::asio;
using local = asio::local::stream_protocol;

namespace {

/// True when something accepts connections on the Unix socket at `path`.
bool socket_in_use(const std::string& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
  const bool in_use =
      ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) == 0;
  ::close(fd);
  return in_use;
}

std::string trim(const std::string& text) {
  constexpr const char* kSpace = " \t\r\n";
  const auto first = text.find_first_not_of(kSpace);
  if (first == std::string::npos) return {};
  return text.substr(first, text.find_last_not_of(kSpace) + 1 - first);
}

}  // namespace

/// Tokens are served to many connections: allow as many descriptors as the hard limit permits,
/// and say so when that is too few for --max-connections.
void raise_file_limit(std::size_t max_connections) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &limit) != 0) getrlimit(RLIMIT_NOFILE, &limit);
  }
  // The listeners, upstream connections and files need a few descriptors besides the callers'.
  constexpr rlim_t kReserve = 64;
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < max_connections + kReserve) {
    tb::log::warn(
        "the open-file limit is too low for --max-connections: connections beyond it wait "
        "unaccepted instead of being answered 503; raise the nofile limit or lower "
        "--max-connections",
        {{"open_file_limit", static_cast<std::uint64_t>(limit.rlim_cur)},
         {"max_connections", max_connections}});
  }
}

/// Refuses a socket directory that anyone but the broker's user (and root) may change: one that
/// group or others may write to, or that another user owns. Such a user could replace the socket
/// with their own (callers would take "tokens" from an impostor) or plant files next to it, such
/// as the identity header; the sticky bit (/tmp) stops the replacement but not taking the name
/// first, so a sticky directory is refused too.
void check_socket_directory(const std::string& path, bool allow_shared) {
  const auto parent = std::filesystem::path(path).parent_path();
  const std::string dir = parent.empty() ? "." : parent.string();
  struct stat info {};
  if (::stat(dir.c_str(), &info) != 0 || !S_ISDIR(info.st_mode)) {
    throw StartupError("--socket " + path + ": directory " + dir +
                       " does not exist; create it (in Kubernetes: an emptyDir volume)");
  }
  const auto mode = fmt::format("{:04o}", info.st_mode & 07777);
  const bool shared = (info.st_mode & (S_IWGRP | S_IWOTH)) != 0;
  const bool foreign = info.st_uid != ::geteuid() && info.st_uid != 0;
  if (!shared && !foreign) return;
  if (allow_shared) {
    tb::log::info("serving from a shared socket directory (--allow-shared-socket-dir)",
                  {{"directory", dir}, {"mode", mode}, {"owner_uid", info.st_uid}});
    return;
  }
  constexpr const char* kOverride =
      " or pass --allow-shared-socket-dir true (e.g. for a Kubernetes emptyDir that only the "
      "pod's containers mount)";
  if (!shared) {
    throw StartupError(fmt::format(
        "--socket {}: directory {} belongs to uid {}, who could replace the socket; use a "
        "directory owned by the broker's user (uid {}) or root,{}",
        path, dir, info.st_uid, ::geteuid(), kOverride));
  }
  if ((info.st_mode & S_ISVTX) != 0) {
    throw StartupError(fmt::format(
        "--socket {}: directory {} has mode {}: other users may create files in it (the sticky "
        "bit does not stop them taking the socket's name first); use a directory of its own "
        "(e.g. mkdir -m 0750 {}/token-broker){}",
        path, dir, mode, dir == "/" ? "" : dir, kOverride));
  }
  throw StartupError(fmt::format(
      "--socket {}: directory {} has mode {}: group or others may write to it and could replace "
      "the socket; remove their write permission (chmod go-w {}){}",
      path, dir, mode, dir, kOverride));
}

/// Binds the token socket: replaces a stale socket file, refuses one that is served, and never
/// lets the file exist with wider permissions than `mode`.
local::acceptor bind_socket(asio::io_context& io, const std::string& path, mode_t mode,
                            bool allow_shared_dir) {
  check_socket_directory(path, allow_shared_dir);
  struct stat info {};
  if (::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      throw StartupError("--socket " + path +
                         " exists and is not a socket; remove it or choose another path");
    }
    if (socket_in_use(path)) {
      throw StartupError("--socket " + path +
                         " is in use by another process (is another token-broker running?)");
    }
    ::unlink(path.c_str());
  }
  local::acceptor acceptor(io);
  boost::system::error_code ec;
  acceptor.open(local(), ec);
  const mode_t old_umask = ::umask(static_cast<mode_t>(~mode & 0777));
  if (!ec) acceptor.bind(local::endpoint(path), ec);
  ::umask(old_umask);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) throw StartupError("--socket " + path + ": cannot listen: " + ec.message());
  if (::chmod(path.c_str(), mode) != 0) {
    throw StartupError("--socket " + path + ": cannot set its mode: " + std::strerror(errno));
  }
  return acceptor;
}

/// The App Service route's secret: the file's content when it exists, else 32 random bytes in
/// hex written to a new file with mode 0640 and group `group` (the socket's), so that the app's
/// container, which can open the socket, can read it too.
std::string load_identity_header(const std::string& path, std::optional<gid_t> group) {
  const std::string flag = "--identity-header-file " + path;
  for (int attempt = 0; attempt < 2; ++attempt) {
    struct stat info {};
    if (::stat(path.c_str(), &info) == 0) {
      if (!S_ISREG(info.st_mode)) throw StartupError(flag + " exists and is not a regular file");
      std::ifstream in(path, std::ios::binary);
      std::stringstream content;
      content << in.rdbuf();
      if (!in) throw StartupError(flag + ": cannot read it: " + std::strerror(errno));
      auto secret = trim(content.str());
      if (secret.size() < 16 || secret.size() > 1024) {
        throw StartupError(flag +
                           " must hold a secret of 16 to 1024 characters (remove it to "
                           "have one generated)");
      }
      for (unsigned char c : secret) {
        if (c <= 0x20 || c >= 0x7f) {
          throw StartupError(flag +
                             " must hold printable ASCII without spaces (it is sent as "
                             "an HTTP header)");
        }
      }
      if ((info.st_mode & 0007) != 0) {
        tb::log::warn("the identity header file is readable by anyone; chmod o-rwx it",
                      {{"file", path}});
      }
      return secret;
    }
    std::array<unsigned char, 32> bytes{};
    if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) {
      throw StartupError(flag + ": no random bytes for a new secret");
    }
    std::string secret;
    for (unsigned char byte : bytes) secret += fmt::format("{:02x}", byte);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
      if (errno == EEXIST) continue;  // another process wrote it meanwhile: read that one
      throw StartupError(flag + ": cannot create it: " + std::strerror(errno) +
                         " (does its directory exist?)");
    }
    bool ok = ::write(fd, secret.data(), secret.size()) == static_cast<ssize_t>(secret.size());
    if (ok && group && ::fchown(fd, static_cast<uid_t>(-1), *group) != 0) {
      tb::log::warn("cannot give the identity header file the socket's group",
                    {{"file", path}, {"gid", *group}, {"reason", std::strerror(errno)}});
    }
    ok = ok && ::fchmod(fd, 0640) == 0;
    ok = (::close(fd) == 0) && ok;
    if (!ok) {
      ::unlink(path.c_str());
      throw StartupError(flag + ": cannot write it: " + std::strerror(errno));
    }
    tb::log::info("identity header generated", {{"file", path}});
    return secret;
  }
  throw StartupError(flag + " keeps changing while it is read");
}

}  // namespace broker
