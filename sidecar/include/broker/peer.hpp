#pragma once
// Who may ask for tokens: callers on the Unix socket are identified by their peer credentials
// (SO_PEERCRED, filled in by the kernel at connect time, so they cannot be forged).

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

namespace broker {

struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

struct AllowList {
  std::vector<uid_t> uids;
  std::vector<gid_t> gids;
};

/// True when the caller's uid or primary gid is on the list.
bool allowed(const PeerCredentials& peer, const AllowList& list);

/// Parses "1000,1001" (whole numbers, commas); nullopt on anything else.
std::optional<std::vector<unsigned>> parse_id_list(const std::string& text);

/// The credentials of the process at the other end of a connected Unix socket.
std::optional<PeerCredentials> peer_credentials(int fd);

}  // namespace broker
