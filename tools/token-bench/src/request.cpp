#include "token_bench/request.hpp"

#include <algorithm>

namespace token_bench {
namespace {

bool is_host_header(std::string_view name) {
  return name.size() == 4 && std::ranges::equal(name, std::string_view("host"), [](char a, char b) {
           return (a >= 'A' && a <= 'Z' ? static_cast<char>(a + 32) : a) == b;
         });
}

}  // namespace

std::string default_host(const Target& target) {
  if (const auto* tcp = std::get_if<TcpTarget>(&target)) {
    const bool ipv6 = tcp->host.find(':') != std::string::npos;
    return (ipv6 ? "[" + tcp->host + "]" : tcp->host) + ":" + tcp->port;
  }
  return "localhost";
}

std::string serialise_request(std::string_view path, std::string_view host,
                              std::span<const Header> headers) {
  std::string out;
  out.reserve(64 + path.size() + host.size());
  out.append("GET ").append(path).append(" HTTP/1.1\r\n");
  const bool has_host = std::ranges::any_of(
      headers, [](const Header& header) { return is_host_header(header.name); });
  if (!has_host) out.append("Host: ").append(host).append("\r\n");
  for (const Header& header : headers) {
    out.append(header.name).append(": ").append(header.value).append("\r\n");
  }
  out.append("\r\n");
  return out;
}

}  // namespace token_bench
