#include "tb/http/message.hpp"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <array>

namespace tb::http {
namespace {

std::string json_string(std::string_view text) {
  return nlohmann::json(text).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string error_body(std::string_view error, std::string_view description) {
  return fmt::format(R"({{"error":{},"error_description":{}}})", json_string(error),
                     json_string(description));
}

Response json_response(const Request& request, beast_http::status status, std::string body,
                       std::string_view server) {
  Response response{status, request.version()};
  // insert, not set: the fields are new, there is nothing to look up and replace.
  if (!server.empty()) response.insert(beast_http::field::server, server);
  response.insert(beast_http::field::content_type, "application/json");
  response.insert(beast_http::field::cache_control, "no-store");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

Response error_response(const Request& request, const Error& error, std::string_view server) {
  auto response = json_response(request, static_cast<beast_http::status>(error.status),
                                error_body(error.error, error.description), server);
  if (error.retry_after.count() > 0) {
    response.set(beast_http::field::retry_after, std::to_string(error.retry_after.count()));
  }
  return response;
}

void serialize_response(const Response& response, std::string& out) {
  // What Beast's serializer writes for a string_body response with a Content-Length: the status
  // line, the fields in their order, an empty line, the body.
  const unsigned version = response.version();
  const unsigned code = response.result_int();
  const auto& body = response.body();
  std::size_t size = 13 + response.reason().size() + 4 + body.size();
  for (const auto& field : response) size += field.name_string().size() + field.value().size() + 4;
  out.clear();
  out.reserve(size);
  const std::array<char, 13> status_line{'H',
                                         'T',
                                         'T',
                                         'P',
                                         '/',
                                         static_cast<char>('0' + version / 10),
                                         '.',
                                         static_cast<char>('0' + version % 10),
                                         ' ',
                                         static_cast<char>('0' + code / 100),
                                         static_cast<char>('0' + (code / 10) % 10),
                                         static_cast<char>('0' + code % 10),
                                         ' '};
  out.append(status_line.data(), status_line.size());
  out += response.reason();
  out += "\r\n";
  for (const auto& field : response) {
    out += field.name_string();
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  out += "\r\n";
  out += body;
}

std::string_view target_path(std::string_view target) { return target.substr(0, target.find('?')); }

}  // namespace tb::http
