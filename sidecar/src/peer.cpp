#include "broker/peer.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <charconv>

namespace broker {

bool allowed(const PeerCredentials& peer, const AllowList& list) {
  return std::find(list.uids.begin(), list.uids.end(), peer.uid) != list.uids.end() ||
         std::find(list.gids.begin(), list.gids.end(), peer.gid) != list.gids.end();
}

std::optional<std::vector<unsigned>> parse_id_list(const std::string& text) {
  std::vector<unsigned> ids;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string_view item(text.data() + start, end - start);
    unsigned id = 0;
    auto [ptr, ec] = std::from_chars(item.data(), item.data() + item.size(), id);
    if (item.empty() || ec != std::errc{} || ptr != item.data() + item.size()) return std::nullopt;
    ids.push_back(id);
    start = end + 1;
  }
  return ids;
}

std::optional<PeerCredentials> peer_credentials(int fd) {
  ucred credentials{};
  socklen_t size = sizeof credentials;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &size) != 0 ||
      size != sizeof credentials) {
    return std::nullopt;
  }
  return PeerCredentials{credentials.pid, credentials.uid, credentials.gid};
}

}  // namespace broker
