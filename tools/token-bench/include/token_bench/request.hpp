#pragma once
// The one request token-bench sends, serialised once before the run: every connection writes
// the same bytes for every request, so measuring allocates nothing for the request.

#include "token_bench/options.hpp"

#include <span>
#include <string>
#include <string_view>

namespace token_bench {

/// The Host header sent unless a --header names one: "localhost" for a Unix socket,
/// "HOST:PORT" for TCP.
std::string default_host(const Target& target);

/// "GET <path> HTTP/1.1", Host (unless `headers` has one), then `headers` in order, then the
/// blank line. No body; keep-alive is HTTP/1.1's default. Inputs are assumed validated
/// (parse_args does it).
std::string serialise_request(std::string_view path, std::string_view host,
                              std::span<const Header> headers);

}  // namespace token_bench
