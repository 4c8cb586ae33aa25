#pragma once
// One tokenctl invocation: parse, ask the broker through an injected transport, print, and
// return the exit code. main() passes the real Unix-socket client; tests pass fakes.

#include <tb/http_client.hpp>

#include <boost/system/result.hpp>

#include <functional>
#include <optional>
#include <ostream>
#include <span>
#include <string>
#include <string_view>

namespace tokenctl {

/// Sends one request to the Unix socket at the given path (tb::http::request_unix in main).
using Transport = std::function<boost::system::result<tb::http::Response>(
    const std::string& socket_path, tb::http::Request request, tb::http::Limits limits)>;

/// Runs `tokenctl args…` (the arguments after the program name). `socket_env` is the value of
/// $TOKEN_BROKER_SOCKET if set. Returns 0 ok, 1 error, 2 usage error.
int run(std::span<const std::string> args, std::optional<std::string_view> socket_env,
        const Transport& transport, std::ostream& out, std::ostream& err);

}  // namespace tokenctl
