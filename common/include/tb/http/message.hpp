#pragma once
// The HTTP layer's vocabulary: the request and response types every server of the project
// handles, the error a server answers with, and the one fast serialiser of a response. Knows
// nothing of tokens or to-dos (see DESIGN.md, Layers; the build checks it, common/CMakeLists.txt).

#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <chrono>
#include <string>
#include <string_view>

namespace tb::http {

namespace beast_http = boost::beast::http;
/// A request with its body, if the server takes bodies (ServerLimits::body_limit; by default it
/// does not, and a request with a body is answered 413).
using Request = beast_http::request<beast_http::string_body>;
using Response = beast_http::response<beast_http::string_body>;

/// An error answer: its status, a short machine-readable code and a description for people
/// (what was wrong and what to do). Rendered as `{"error":…,"error_description":…}` unless a
/// server installs its own renderer.
struct Error {
  unsigned status = 500;
  std::string error;
  std::string description;
  std::chrono::seconds retry_after{0};  ///< 0: no Retry-After header
};

/// `{"error":…,"error_description":…}`, both JSON-escaped.
std::string error_body(std::string_view error, std::string_view description);

/// A JSON response for `request` (same version and keep-alive) with `Content-Type:
/// application/json` and `Cache-Control: no-store`, and `Server: server` when that is not empty.
Response json_response(const Request& request, beast_http::status status, std::string body,
                       std::string_view server = {});

/// json_response with error_body, and Retry-After when the error has one.
Response error_response(const Request& request, const Error& error, std::string_view server = {});

/// `response` as it goes on the wire (status line, header fields, empty line, body) into `out`,
/// replacing its content: the bytes Beast's serializer writes for a response with a
/// Content-Length (not for a chunked one), at a fraction of its cost.
void serialize_response(const Response& response, std::string& out);

/// The path part of a request target ("/v1/token?x=y" -> "/v1/token").
std::string_view target_path(std::string_view target);

}  // namespace tb::http
