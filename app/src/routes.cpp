#include "todo/routes.hpp"

#include "tb/log.hpp"
#include "todo/pages.hpp"
#include "todo/validate.hpp"

#include <fmt/format.h>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/field.hpp>
#include <boost/url/params_view.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/parse_query.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <vector>

namespace todo {
namespace {

namespace http = boost::beast::http;
using json = nlohmann::json;

// ---- responses --------------------------------------------------------------------------------

Response make(const Request& request, http::status status, std::string_view content_type,
              std::string body) {
  Response response{status, request.version()};
  response.set(http::field::server, "todo-app");
  response.set(http::field::content_type, content_type);
  response.set(http::field::cache_control, "no-store");
  // The UI needs nothing but its own stylesheet; forms post only to this site.
  response.set("Content-Security-Policy",
               "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
               "frame-ancestors 'none'; base-uri 'none'");
  response.set("X-Content-Type-Options", "nosniff");
  // same-origin, not no-referrer: under no-referrer browsers send "Origin: null" on form posts,
  // which the same-origin check below must refuse.
  response.set("Referrer-Policy", "same-origin");
  response.set("X-Frame-Options", "DENY");
  response.keep_alive(request.keep_alive());
  response.body() = std::move(body);
  response.prepare_payload();
  return response;
}

/// A caller's own input quoted back in an error message, when it is short enough to be a typo;
/// longer input (it could be a credential pasted in the wrong place) is not repeated.
std::string quoted_if_short(std::string_view text, std::string_view otherwise) {
  constexpr std::size_t kMaxEcho = 32;
  if (text.size() <= kMaxEcho) return fmt::format("'{}'", text);
  return std::string(otherwise);
}

/// The path of a request target without its query: what logs name (a query may carry anything).
std::string path_of(std::string_view target) {
  return std::string(target.substr(0, target.find('?')));
}

std::string dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

Response json_response(const Request& request, http::status status, const json& value) {
  return make(request, status, "application/json", dump(value));
}

Response json_error(const Request& request, http::status status, std::string_view error,
                    std::string_view description) {
  return json_response(request, status, json{{"error", error}, {"error_description", description}});
}

Response html(const Request& request, http::status status, std::string body) {
  return make(request, status, "text/html; charset=utf-8", std::move(body));
}

Response redirect(const Request& request, std::string_view location) {
  Response response = make(request, http::status::see_other, "text/plain; charset=utf-8", "");
  response.set(http::field::location, location);
  return response;
}

Response method_not_allowed(const Request& request, std::string_view allow, bool api) {
  const auto text = fmt::format("{} is not allowed here; use {}",
                                std::string_view(request.method_string()), allow);
  Response response =
      api ? json_error(request, http::status::method_not_allowed, "method_not_allowed", text)
          : html(request, http::status::method_not_allowed,
                 message_page("Method not allowed", text));
  response.set(http::field::allow, allow);
  return response;
}

http::status status_for(StoreErrc code) {
  switch (code) {
    case StoreErrc::not_found:
      return http::status::not_found;
    case StoreErrc::unavailable:
    case StoreErrc::login_failed:
      return http::status::service_unavailable;
    case StoreErrc::internal:
      break;
  }
  return http::status::internal_server_error;
}

std::string_view error_name(StoreErrc code) {
  switch (code) {
    case StoreErrc::not_found:
      return "not_found";
    case StoreErrc::unavailable:
      return "database_unavailable";
    case StoreErrc::login_failed:
      return "database_login_failed";
    case StoreErrc::internal:
      break;
  }
  return "internal_error";
}

json to_json(const Todo& item) {
  return json{{"id", item.id},
              {"description", item.description},
              {"created_date", item.created_date},
              {"done", item.done}};
}

// ---- request pieces ---------------------------------------------------------------------------

std::string cookie_value(const Request& request, std::string_view name) {
  for (auto it = request.find(http::field::cookie);
       it != request.end() && it->name() == http::field::cookie; ++it) {
    std::string_view header = it->value();
    while (!header.empty()) {
      auto end = header.find(';');
      std::string_view pair = header.substr(0, end);
      header = end == std::string_view::npos ? std::string_view{} : header.substr(end + 1);
      while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
      if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=') {
        return std::string(pair.substr(name.size() + 1));
      }
    }
  }
  return {};
}

bool media_type_is(const Request& request, std::string_view expected) {
  std::string_view type = request[http::field::content_type];
  type = type.substr(0, type.find(';'));
  while (!type.empty() && type.back() == ' ') type.remove_suffix(1);
  return boost::beast::iequals(type, expected);
}

/// application/x-www-form-urlencoded -> name/value (the first of repeated names wins).
std::optional<std::map<std::string, std::string>> parse_form(std::string_view body) {
  if (!boost::urls::parse_query(body)) return std::nullopt;  // the view below would throw
  boost::urls::encoding_opts options;
  options.space_as_plus = true;
  std::map<std::string, std::string> fields;
  for (const auto& param : boost::urls::params_view(body, options)) {
    fields.emplace(param.key, param.has_value ? param.value : std::string());
  }
  return fields;
}

// ---- the router -------------------------------------------------------------------------------

struct Target {
  std::vector<std::string> segments;  // decoded
};

std::optional<Target> parse_target(std::string_view target) {
  auto url = boost::urls::parse_origin_form(target);
  if (!url) return std::nullopt;
  Target out;
  for (auto segment : url->segments()) out.segments.push_back(segment);
  if (!out.segments.empty() && out.segments.back().empty()) out.segments.pop_back();
  return out;
}

}  // namespace

struct RouteContext {
  App& app;
  const Request& request;
  std::string cookie;  // the browser's CSRF cookie, or a new one
  bool new_cookie = false;

  // -- HTML ------------------------------------------------------------------------------------

  PageContext page() const { return PageContext{app.csrf_.token_for(cookie), {}, {}, {}}; }

  Response finish(Response response) const {
    if (new_cookie) {
      response.set(http::field::set_cookie,
                   fmt::format("{}={}; Path=/; HttpOnly; SameSite=Strict", kCsrfCookie, cookie));
    }
    return response;
  }

  void note(const StoreError& error) {
    const auto index = static_cast<std::size_t>(error.code);
    if (index < app.store_errors_.size()) ++app.store_errors_[index];
    if (error.code != StoreErrc::not_found) {
      tb::log::warn("database request failed",
                    {{"error", error_name(error.code)}, {"detail", error.message}});
    }
  }

  Response list(http::status status, PageContext context) {
    auto items = app.store_.list();
    std::optional<std::vector<Todo>> shown;
    if (items) {
      shown = std::move(*items);
    } else {
      note(items.error());
      context.banner = items.error().message;
      if (status == http::status::ok) status = status_for(items.error().code);
    }
    return finish(html(request, status, list_page(context, shown)));
  }

  Response store_failure_page(const StoreError& error) {
    note(error);
    if (error.code == StoreErrc::not_found) {
      return finish(html(request, http::status::not_found,
                         message_page("Not found", "That item does not exist (any more).")));
    }
    return finish(
        html(request, status_for(error.code), message_page("Something went wrong", error.message)));
  }

  /// Checks a form post: its type, its origin and its CSRF token. Returns the fields, or the
  /// response that refuses it.
  std::variant<std::map<std::string, std::string>, Response> form() {
    if (!media_type_is(request, "application/x-www-form-urlencoded")) {
      return finish(html(request, http::status::unsupported_media_type,
                         message_page("Unsupported form",
                                      "Forms must be sent as "
                                      "application/x-www-form-urlencoded.")));
    }
    auto fields = parse_form(request.body());
    if (!fields) {
      return finish(html(request, http::status::bad_request,
                         message_page("Bad form", "The form data could not be read.")));
    }
    const std::string_view origin = request[http::field::origin];
    const std::string_view host = request[http::field::host];
    const bool same_origin = origin.empty() || origin == fmt::format("http://{}", host) ||
                             origin == fmt::format("https://{}", host);
    auto token = fields->find("csrf");
    if (!same_origin || new_cookie || token == fields->end() ||
        !app.csrf_.verify(cookie, token->second)) {
      tb::log::warn("form refused: CSRF check failed", {{"path", path_of(request.target())}});
      return finish(html(request, http::status::forbidden,
                         message_page("Form expired",
                                      "This form has expired or did not come from this site. "
                                      "Go back to the list, reload it and try again.")));
    }
    return std::move(*fields);
  }

  Response create_from_form() {
    auto checked = form();
    if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
    auto& fields = std::get<0>(checked);
    const std::string description = fields["description"];
    if (auto problem = description_problem(description)) {
      PageContext context = page();
      context.form_error = *problem;
      context.draft = description;
      return list(http::status::bad_request, std::move(context));
    }
    auto created = app.store_.create(NewTodo{description, false});
    if (!created) {
      note(created.error());
      PageContext context = page();
      context.banner = created.error().message;
      context.draft = description;
      return finish(
          html(request, status_for(created.error().code), list_page(context, std::nullopt)));
    }
    return finish(redirect(request, "/"));
  }

  Response edit_form(std::int64_t id) {
    auto item = app.store_.get(id);
    if (!item) return store_failure_page(item.error());
    return finish(html(request, http::status::ok, edit_page(page(), *item)));
  }

  Response update_from_form(std::int64_t id) {
    auto checked = form();
    if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
    auto& fields = std::get<0>(checked);
    const std::string description = fields["description"];
    if (auto problem = description_problem(description)) {
      auto item = app.store_.get(id);
      if (!item) return store_failure_page(item.error());
      PageContext context = page();
      context.form_error = *problem;
      context.draft = description;
      return finish(html(request, http::status::bad_request, edit_page(context, *item)));
    }
    TodoPatch patch{description, fields["done"] == "true"};
    auto updated = app.store_.update(id, patch);
    if (!updated) return store_failure_page(updated.error());
    return finish(redirect(request, "/"));
  }

  Response done_from_form(std::int64_t id) {
    auto checked = form();
    if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
    auto& fields = std::get<0>(checked);
    // The form says what the state should become, so a double submit does not flip it back.
    TodoPatch patch{std::nullopt, fields["done"] == "true"};
    auto updated = app.store_.update(id, patch);
    if (!updated) return store_failure_page(updated.error());
    return finish(redirect(request, "/"));
  }

  Response delete_confirmation(std::int64_t id) {
    auto item = app.store_.get(id);
    if (!item) return store_failure_page(item.error());
    return finish(html(request, http::status::ok, delete_page(page(), *item)));
  }

  Response delete_from_form(std::int64_t id) {
    auto checked = form();
    if (auto* refused = std::get_if<Response>(&checked)) return std::move(*refused);
    auto removed = app.store_.remove(id);
    if (!removed && removed.error().code != StoreErrc::not_found) {
      return store_failure_page(removed.error());
    }
    return finish(redirect(request, "/"));
  }

  // -- JSON API --------------------------------------------------------------------------------

  Response api_failure(const StoreError& error) {
    note(error);
    Response response =
        json_error(request, status_for(error.code), error_name(error.code), error.message);
    if (status_for(error.code) == http::status::service_unavailable) {
      response.set(http::field::retry_after, "5");
    }
    return response;
  }

  /// Parses the JSON object body of a POST/PUT/PATCH into a patch; `required` lists the fields
  /// that must be present. Returns the patch or the 4xx response.
  std::variant<TodoPatch, Response> api_body(std::initializer_list<std::string_view> required) {
    if (!media_type_is(request, "application/json")) {
      return json_error(request, http::status::unsupported_media_type, "unsupported_media_type",
                        "send the body as JSON with Content-Type: application/json");
    }
    json body = json::parse(request.body(), nullptr, false);
    if (body.is_discarded()) {
      return json_error(request, http::status::bad_request, "invalid_json",
                        "the body is not valid JSON (UTF-8)");
    }
    if (!body.is_object()) {
      return json_error(request, http::status::bad_request, "invalid_request",
                        "the body must be a JSON object such as {\"description\":\"Buy milk\"}");
    }
    TodoPatch patch;
    for (auto& [key, value] : body.items()) {
      if (key == "description") {
        if (!value.is_string()) {
          return json_error(request, http::status::bad_request, "invalid_request",
                            "description must be a string");
        }
        auto text = value.get<std::string>();
        if (auto problem = description_problem(text)) {
          return json_error(request, http::status::bad_request, "invalid_request", *problem);
        }
        patch.description = std::move(text);
      } else if (key == "done") {
        if (!value.is_boolean()) {
          return json_error(request, http::status::bad_request, "invalid_request",
                            "done must be true or false");
        }
        patch.done = value.get<bool>();
      } else if (key != "id" && key != "created_date") {
        // id and created_date are accepted (a client may send back what it read) but ignored.
        return json_error(request, http::status::bad_request, "invalid_request",
                          "unknown field " + quoted_if_short(key, "(name not repeated: too long)") +
                              "; a to-do has description (string) and done (boolean)");
      }
    }
    for (auto name : required) {
      const bool present =
          name == "description" ? patch.description.has_value() : patch.done.has_value();
      if (!present) {
        return json_error(request, http::status::bad_request, "invalid_request",
                          fmt::format("{} is required", name));
      }
    }
    if (!patch.description && !patch.done) {
      return json_error(request, http::status::bad_request, "invalid_request",
                        "nothing to change: send description and/or done");
    }
    return patch;
  }

  Response api_collection() {
    if (request.method() == http::verb::get) {
      auto items = app.store_.list();
      if (!items) return api_failure(items.error());
      json out = json::array();
      for (const auto& item : *items) out.push_back(to_json(item));
      return json_response(request, http::status::ok, out);
    }
    if (request.method() == http::verb::post) {
      auto parsed = api_body({"description"});
      if (auto* refused = std::get_if<Response>(&parsed)) return std::move(*refused);
      auto& patch = std::get<TodoPatch>(parsed);
      // api_body({"description"}) has answered 400 to a body without a description.
      // NOLINTNEXTLINE(bugprone-unchecked-optional-access)
      auto created = app.store_.create(NewTodo{*patch.description, patch.done.value_or(false)});
      if (!created) return api_failure(created.error());
      Response response = json_response(request, http::status::created, to_json(*created));
      response.set(http::field::location, fmt::format("/api/todos/{}", created->id));
      return response;
    }
    return method_not_allowed(request, "GET, POST", true);
  }

  Response api_item(std::int64_t id) {
    switch (request.method()) {
      case http::verb::get: {
        auto item = app.store_.get(id);
        if (!item) return api_failure(item.error());
        return json_response(request, http::status::ok, to_json(*item));
      }
      case http::verb::put:
      case http::verb::patch: {
        auto parsed =
            request.method() == http::verb::put ? api_body({"description", "done"}) : api_body({});
        if (auto* refused = std::get_if<Response>(&parsed)) return std::move(*refused);
        auto updated = app.store_.update(id, std::get<TodoPatch>(parsed));
        if (!updated) return api_failure(updated.error());
        return json_response(request, http::status::ok, to_json(*updated));
      }
      case http::verb::delete_: {
        auto removed = app.store_.remove(id);
        if (!removed) return api_failure(removed.error());
        return make(request, http::status::no_content, "application/json", "");
      }
      default:
        return method_not_allowed(request, "GET, PUT, PATCH, DELETE", true);
    }
  }
};

Response App::route(const Request& request) {
  const auto method = request.method();
  auto target = parse_target(request.target());
  if (!target) {
    return json_error(request, http::status::bad_request, "invalid_request",
                      "the request target is not a valid path");
  }
  const auto& seg = target->segments;
  const bool get = method == http::verb::get || method == http::verb::head;
  const bool post = method == http::verb::post;

  RouteContext context{*this, request, cookie_value(request, kCsrfCookie)};
  if (context.cookie.size() != 64) {
    context.cookie = csrf_.new_cookie();
    context.new_cookie = true;
  }

  // API and health first: they never set cookies.
  if (!seg.empty() && seg[0] == "api") {
    if (seg.size() == 2 && seg[1] == "todos") return context.api_collection();
    if (seg.size() == 3 && seg[1] == "todos") {
      auto id = parse_id(seg[2]);
      if (!id) {
        return json_error(request, http::status::not_found, "not_found",
                          "no to-do with id " + quoted_if_short(seg[2], "like that") +
                              " (ids are positive whole numbers)");
      }
      return context.api_item(*id);
    }
    return json_error(request, http::status::not_found, "not_found",
                      "no such API route; see /api/todos");
  }
  if (seg.size() == 1 && (seg[0] == "healthz" || seg[0] == "readyz")) {
    if (!get) return method_not_allowed(request, "GET", true);
    if (seg[0] == "healthz") return json_response(request, http::status::ok, {{"status", "ok"}});
    // Without the reason: the database's error text is for the admin port.
    return readiness(request, false, context);
  }
  if (seg.size() == 1 && seg[0] == "favicon.ico") {
    // Browsers ask for it on every page; "nothing here" without an error in their console.
    Response response = make(request, http::status::no_content, "image/x-icon", "");
    response.set(http::field::cache_control, "public, max-age=86400");
    return response;
  }
  if (seg.size() == 2 && seg[0] == "static" && seg[1] == "app.css") {
    if (!get) return method_not_allowed(request, "GET", false);
    Response response =
        make(request, http::status::ok, "text/css; charset=utf-8", std::string(stylesheet()));
    response.set(http::field::cache_control, "public, max-age=3600");
    return response;
  }

  // HTML UI.
  if (seg.empty()) {
    if (!get) return method_not_allowed(request, "GET", false);
    return context.list(http::status::ok, context.page());
  }
  if (seg[0] == "todos") {
    if (seg.size() == 1) {
      if (!post) return method_not_allowed(request, "POST", false);
      return context.create_from_form();
    }
    auto id = parse_id(seg[1]);
    if (id && seg.size() == 2) {
      if (!post) return method_not_allowed(request, "POST", false);
      return context.update_from_form(*id);
    }
    if (id && seg.size() == 3 && seg[2] == "edit") {
      if (!get) return method_not_allowed(request, "GET", false);
      return context.edit_form(*id);
    }
    if (id && seg.size() == 3 && seg[2] == "done") {
      if (!post) return method_not_allowed(request, "POST", false);
      return context.done_from_form(*id);
    }
    if (id && seg.size() == 3 && seg[2] == "delete") {
      if (get) return context.delete_confirmation(*id);
      if (post) return context.delete_from_form(*id);
      return method_not_allowed(request, "GET, POST", false);
    }
  }
  return html(request, http::status::not_found,
              message_page("Not found", "There is no page at this address."));
}

Response App::readiness(const Request& request, bool reasons, RouteContext& context) {
  if (draining_) {
    Response response = json_response(
        request, http::status::service_unavailable,
        {{"status", "draining"},
         {"error", "shutting_down"},
         {"error_description", "todo-app is stopping; it serves requests already routed to it"}});
    response.set(http::field::retry_after, "5");
    return response;
  }
  auto ping = store_.ping();
  if (!ping) {
    context.note(ping.error());
    // What the database said stays on the admin port: it names servers, users and drivers.
    nlohmann::json body = {
        {"status", "not ready"},
        {"error", error_name(ping.error().code)},
        {"error_description",
         reasons ? ping.error().message
                 : std::string("the app cannot use its database; the admin port's /readyz and the "
                               "app's log say why")}};
    Response response = json_response(request, http::status::service_unavailable, body);
    response.set(http::field::retry_after, "5");
    return response;
  }
  return json_response(request, http::status::ok, {{"status", "ready"}});
}

Response App::route_admin(const Request& request) {
  const auto path = path_of(request.target());
  const bool get = request.method() == http::verb::get || request.method() == http::verb::head;
  if (path != "/healthz" && path != "/readyz" && path != "/metrics") {
    return json_error(request, http::status::not_found, "not_found",
                      "the admin port serves /healthz, /readyz and /metrics");
  }
  if (!get) return method_not_allowed(request, "GET", true);
  if (path == "/healthz") return json_response(request, http::status::ok, {{"status", "ok"}});
  if (path == "/metrics") {
    return make(request, http::status::ok, "text/plain; version=0.0.4", metrics_text());
  }
  RouteContext context{*this, request, {}};
  return readiness(request, true, context);
}

Response App::respond(const Request& request, bool admin) {
  Response response;
  try {
    response = admin ? route_admin(request) : route(request);
  } catch (const std::exception& error) {
    tb::log::error(
        "request failed with an exception",
        {{"path", path_of(request.target())}, {"admin_port", admin}, {"what", error.what()}});
    response = json_error(request, http::status::internal_server_error, "internal_error",
                          "the server failed to handle this request; see its log");
  }
  if (request.method() == http::verb::head) {
    const auto length = response.body().size();
    response.body().clear();
    response.content_length(length);
  }
  if (!admin) count(response);  // probes and scrapes are not the app's traffic
  return response;
}

Response App::handle(const Request& request) { return respond(request, false); }

Response App::handle_admin(const Request& request) { return respond(request, true); }

void App::count(const Response& response) {
  const auto index = static_cast<std::size_t>(response.result_int() / 100);
  if (index < responses_.size()) ++responses_[index];
}

std::string App::metrics_text() const {
  std::string out =
      "# HELP todo_http_responses_total HTTP responses by status class.\n"
      "# TYPE todo_http_responses_total counter\n";
  for (std::size_t i = 1; i < responses_.size(); ++i) {
    out += fmt::format("todo_http_responses_total{{code=\"{}xx\"}} {}\n", i, responses_[i].load());
  }
  out +=
      "# HELP todo_store_errors_total Failed database operations by kind.\n"
      "# TYPE todo_store_errors_total counter\n";
  for (auto code : {StoreErrc::not_found, StoreErrc::unavailable, StoreErrc::login_failed,
                    StoreErrc::internal}) {
    out += fmt::format("todo_store_errors_total{{kind=\"{}\"}} {}\n", error_name(code),
                       store_errors_[static_cast<std::size_t>(code)].load());
  }
  return out;
}

}  // namespace todo
