#pragma once
// Request -> response for the whole app: HTML UI, JSON API, health. Transport-free, so tests
// drive it directly; the server calls it on a worker thread (store calls block).

#include "todo/csrf.hpp"
#include "todo/store.hpp"

#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

namespace todo {

using Request = boost::beast::http::request<boost::beast::http::string_body>;
using Response = boost::beast::http::response<boost::beast::http::string_body>;

constexpr std::size_t kMaxRequestBody = std::size_t{64} * 1024;
constexpr std::string_view kCsrfCookie = "todo_csrf";

struct RouteContext;

class App {
 public:
  App(TodoStore& store, const Csrf& csrf) : store_(store), csrf_(csrf) {}

  /// The public port (UI, API, /healthz, and /readyz without the reason). Never throws: an
  /// unexpected exception becomes a 500.
  Response handle(const Request& request);
  /// The admin port: /healthz, /readyz with the reason (the database's error), /metrics.
  Response handle_admin(const Request& request);

  /// Prometheus text: requests by status class, store errors by kind.
  std::string metrics_text() const;

  /// SIGTERM: from now on /readyz answers 503 (status "draining") while every other route
  /// serves as before.
  void start_draining() { draining_ = true; }

 private:
  /// route() or route_admin(), an exception made a 500, HEAD without its body.
  Response respond(const Request& request, bool admin);
  Response route(const Request& request);
  Response route_admin(const Request& request);
  /// /readyz; `reasons`: say why when not ready (the admin port only).
  Response readiness(const Request& request, bool reasons, RouteContext& context);
  void count(const Response& response);

  TodoStore& store_;
  const Csrf& csrf_;
  std::array<std::atomic<std::uint64_t>, 6> responses_{};     // 1xx..5xx, by index
  std::array<std::atomic<std::uint64_t>, 5> store_errors_{};  // by StoreErrc
  std::atomic<bool> draining_{false};
  friend struct RouteContext;
};

}  // namespace todo
