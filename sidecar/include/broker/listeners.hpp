#pragma once
// Start-up I/O of the broker's listeners: the open-file limit, the socket directory check, the
// token socket file and the App Service identity-header file (TCP listeners: tb/http/listen.hpp).
// Each throws StartupError with a message that names the flag and what to do.

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace broker {

/// Tokens are served to many connections: raises the soft open-file limit to the hard one, and
/// warns when that is too few for `max_connections`.
void raise_file_limit(std::size_t max_connections);

/// Refuses (StartupError) a socket directory that anyone but the broker's user (and root) may
/// change, unless `allow_shared` (--allow-shared-socket-dir).
void check_socket_directory(const std::string& path, bool allow_shared);

/// Binds the token socket at `path`: checks its directory, replaces a stale socket file, refuses
/// one that is served or is not a socket, and never lets the file exist with wider permissions
/// than `mode`.
boost::asio::local::stream_protocol::acceptor bind_socket(boost::asio::io_context& io,
                                                          const std::string& path, mode_t mode,
                                                          bool allow_shared_dir);

/// The App Service route's secret: the file's content when it exists, else 32 random bytes in
/// hex written to a new file with mode 0640 and group `group` (the socket's), so that the app's
/// container, which can open the socket, can read it too.
std::string load_identity_header(const std::string& path, std::optional<gid_t> group);

}  // namespace broker
