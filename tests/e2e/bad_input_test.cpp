// The app under bad input, as real processes: SQL metacharacters stored and shown verbatim, forms
// without a valid CSRF token refused, 1 MiB bodies refused with 413, invalid UTF-8 refused with
// 400, and the database going away mid-request: a clear 503 page, recovery without a restart,
// nothing already saved lost.

#include "todo_pod.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>

namespace e2e {
namespace {

/// What a raw exchange got: whether every byte went out, and everything read back until the
/// server closed (or `timeout`).
struct RawReply {
  bool sent_all = false;
  std::string text;
  int status() const {
    return text.starts_with("HTTP/1.1 ") && text.size() >= 12 ? std::stoi(text.substr(9, 3)) : 0;
  }
  std::string body() const {
    const auto end = text.find("\r\n\r\n");
    return end == std::string::npos ? std::string() : text.substr(end + 4);
  }
};

/// Sends `bytes` to 127.0.0.1:`port` as a client that reads while it writes (as browsers do, so
/// an early answer is seen), then reads until the server closes. With `half_close`, the write
/// side is shut down after the last byte.
RawReply raw_exchange(const std::string& port, const std::string& bytes,
                      std::chrono::milliseconds timeout = 15s, bool half_close = false) {
  RawReply reply;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons(static_cast<std::uint16_t>(std::stoi(port)));
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    ADD_FAILURE() << "cannot connect to 127.0.0.1:" << port;
    if (fd >= 0) ::close(fd);
    return reply;
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t sent = 0;
  bool writing = true;
  char buffer[65536];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, static_cast<short>(POLLIN | (writing ? POLLOUT : 0)), 0};
    if (::poll(&p, 1, 50) < 0) break;
    if (writing && (p.revents & POLLOUT) != 0) {
      const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n > 0) sent += static_cast<std::size_t>(n);
      if (n < 0 && errno != EAGAIN) writing = false;  // the server closed: read what it said
      if (sent == bytes.size()) {
        writing = false;
        reply.sent_all = true;
        if (half_close) ::shutdown(fd, SHUT_WR);
      }
    }
    if ((p.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
      const auto n = ::recv(fd, buffer, sizeof buffer, 0);
      if (n > 0) {
        reply.text.append(buffer, static_cast<std::size_t>(n));
      } else if (n == 0 || errno != EAGAIN) {
        break;
      }
    }
  }
  ::close(fd);
  return reply;
}

std::string post_head(const std::string& target, const std::string& content_type,
                      const std::string& length_or_chunked, const std::string& extra = "") {
  return "POST " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: " + content_type +
         "\r\n" + length_or_chunked + "\r\n" + extra + "\r\n";
}

/// True when `text` is valid UTF-8 (what a page that says charset=utf-8 must be).
bool valid_utf8(std::string_view text) {
  try {
    (void)json(std::string(text)).dump();
    return true;
  } catch (const json::type_error&) {
    return false;
  }
}

class BadInput : public TodoPod {
 protected:
  /// The app alone, on SQLite: enough for what the web layer refuses before any database work.
  void start_sqlite_app() {
    start_app_with({"--listen", "127.0.0.1:0", "--db-connection-string",
                    "Driver=SQLite3;Database=" + dir_.file("todo.db") + ";", "--threads", "2",
                    "--drain-seconds", "0"});
  }
};

// ---- SQL metacharacters ------------------------------------------------------------------------

const std::vector<std::string> kSqlTexts = {
    "Robert'); DROP TABLE todos;--",
    "' OR '1'='1",
    "\"; DELETE FROM todos WHERE \"\"=\"",
    "100% of _all_ \\ back\\slash \\x00 \\' escaped",
    "$1 $$ dollar $tag$ quoted $tag$ ::text",
    "{fn USER()} {d '2024-01-01'} {call todos} ? ?? :name @p1 %s",
    "/* comment */ -- line comment ; ;; END;",
    "E'\\x41' U&'\\0041' N'unicode' 0x41",
    "tab\there, newline\nthere, return\r\nback",
    "SELECT * FROM todos WHERE description LIKE '%' || chr(39) || '%'",
};

std::string hex_of(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

TEST_F(BadInput, SqlMetacharactersAreStoredAndShownVerbatimInPostgresql) {
  start_backends();
  start_app();
  std::vector<std::string> expected;
  // Through the JSON API...
  for (const auto& text : kSqlTexts) {
    auto created = api(http::verb::post, "/api/todos", {{"description", text}});
    ASSERT_EQ(created.result_int(), 201) << text << ": " << created.body();
    EXPECT_EQ(json::parse(created.body())["description"], text);
    expected.push_back(text);
  }
  // ...and through the form, percent-encoded as a browser sends it.
  auto session = form_session(call(http::verb::get, "/"));
  for (const auto& text : {kSqlTexts[0], kSqlTexts[5]}) {
    auto posted =
        call(http::verb::post, "/todos",
             "csrf=" + session.token + "&description=" + form_encode(text), form_headers(session));
    ASSERT_EQ(posted.result_int(), 303) << text << ": " << posted.body();
    expected.push_back(text);
  }

  // The table is intact, every row holds exactly the bytes sent.
  auto list = items();
  ASSERT_EQ(list.size(), expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(list[i]["description"], expected[i]) << i;
  }
  auto [code, rows] =
      pg_->psql("SELECT encode(convert_to(description, 'UTF8'), 'hex') FROM todos ORDER BY id");
  ASSERT_EQ(code, 0) << rows;
  std::string expected_rows;
  for (const auto& text : expected) expected_rows += hex_of(text) + "\n";
  EXPECT_EQ(rows, expected_rows);

  // The page shows them as text.
  auto page = call(http::verb::get, "/");
  ASSERT_EQ(page.result_int(), 200);
  EXPECT_EQ(page_descriptions(page.body()), expected);

  // Reads, updates and deletes by id with the same texts touch only their own row.
  const auto first = list[0]["id"].get<std::int64_t>();
  const auto second = list[1]["id"].get<std::int64_t>();
  auto put = api(http::verb::put, "/api/todos/" + std::to_string(first),
                 {{"description", kSqlTexts[1]}, {"done", true}});
  ASSERT_EQ(put.result_int(), 200) << put.body();
  EXPECT_EQ(json::parse(
                call(http::verb::get, "/api/todos/" + std::to_string(first)).body())["description"],
            kSqlTexts[1]);
  EXPECT_EQ(call(http::verb::delete_, "/api/todos/" + std::to_string(second)).result_int(), 204);
  EXPECT_EQ(items().size(), expected.size() - 1);
}

// ---- CSRF ---------------------------------------------------------------------------------------

TEST_F(BadInput, FormsWithoutAValidCsrfTokenAreRefusedAndChangeNothing) {
  start_sqlite_app();
  ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", "keep me"}}).result_int(), 201);
  const auto before = items();
  const auto id = std::to_string(before[0]["id"].get<std::int64_t>());

  const auto session = form_session(call(http::verb::get, "/"));
  const auto other = form_session(call(http::verb::get, "/"));
  ASSERT_EQ(session.token.size(), 64u);
  ASSERT_NE(session.cookie, other.cookie);
  std::string tampered = session.token;
  tampered.back() = tampered.back() == '0' ? '1' : '0';
  const std::string form_type = "application/x-www-form-urlencoded";

  struct Attempt {
    std::string what;
    std::string body_prefix;  // before "&<fields>"
    Headers headers;
  };
  const std::vector<Attempt> attempts = {
      {"no token", "x=1", {{"Content-Type", form_type}, {"Cookie", session.cookie}}},
      {"an empty token", "csrf=", {{"Content-Type", form_type}, {"Cookie", session.cookie}}},
      {"another session's token",
       "csrf=" + other.token,
       {{"Content-Type", form_type}, {"Cookie", session.cookie}}},
      {"a tampered token",
       "csrf=" + tampered,
       {{"Content-Type", form_type}, {"Cookie", session.cookie}}},
      {"no cookie", "csrf=" + session.token, {{"Content-Type", form_type}}},
      {"another session's cookie",
       "csrf=" + session.token,
       {{"Content-Type", form_type}, {"Cookie", other.cookie}}},
      {"a forged cookie",
       "csrf=" + session.token,
       {{"Content-Type", form_type}, {"Cookie", "todo_csrf=" + std::string(64, 'a')}}},
      {"a bad token first (the first csrf field counts)",
       "csrf=" + tampered + "&csrf=" + session.token,
       {{"Content-Type", form_type}, {"Cookie", session.cookie}}},
      {"another site's Origin",
       "csrf=" + session.token,
       {{"Content-Type", form_type}, {"Cookie", session.cookie}, {"Origin", "http://evil.test"}}},
      {"Origin: null",
       "csrf=" + session.token,
       {{"Content-Type", form_type}, {"Cookie", session.cookie}, {"Origin", "null"}}},
  };
  const std::vector<std::pair<std::string, std::string>> forms = {
      {"/todos", "description=planted"},
      {"/todos/" + id, "description=changed&done=true"},
      {"/todos/" + id + "/done", "done=true"},
      {"/todos/" + id + "/delete", ""},
  };
  for (const auto& attempt : attempts) {
    for (const auto& [target, fields] : forms) {
      auto response =
          call(http::verb::post, target, attempt.body_prefix + "&" + fields, attempt.headers);
      EXPECT_EQ(response.result_int(), 403) << attempt.what << " on " << target;
      EXPECT_NE(response.body().find("Form expired"), std::string::npos) << attempt.what;
    }
  }
  // A cross-site form cannot send JSON; the API refuses what it can send.
  EXPECT_EQ(call(http::verb::post, "/api/todos", "description=planted",
                 {{"Content-Type", form_type}, {"Cookie", session.cookie}})
                .result_int(),
            415);
  EXPECT_EQ(items(), before) << "a refused form changed something";

  // The same forms with the session's own token work.
  auto done = call(http::verb::post, "/todos/" + id + "/done",
                   "csrf=" + session.token + "&done=true", form_headers(session));
  EXPECT_EQ(done.result_int(), 303) << done.body();
  EXPECT_EQ(items()[0]["done"], true);
}

// ---- 1 MiB bodies -------------------------------------------------------------------------------

TEST_F(BadInput, OneMegabyteBodiesAreRefusedWith413AndTheAppCarriesOn) {
  start_sqlite_app();
  const auto session = form_session(call(http::verb::get, "/"));
  constexpr std::size_t kMiB = std::size_t{1024} * 1024;
  const std::string json_body = R"({"description":")" + std::string(kMiB - 20, 'a') + R"("})";
  const std::string form_body =
      "csrf=" + session.token + "&description=" + std::string(kMiB - 100, 'a');
  std::string chunked;
  for (std::size_t sent = 0; sent < kMiB; sent += 16384) {
    chunked += "4000\r\n" + std::string(16384, 'a') + "\r\n";
  }
  chunked += "0\r\n\r\n";

  struct Case {
    std::string what;
    std::string bytes;
  };
  const std::vector<Case> cases = {
      {"JSON with Content-Length",
       post_head("/api/todos", "application/json",
                 "Content-Length: " + std::to_string(json_body.size())) +
           json_body},
      {"a form with Content-Length",
       post_head("/todos", "application/x-www-form-urlencoded",
                 "Content-Length: " + std::to_string(form_body.size()),
                 "Cookie: " + session.cookie + "\r\n") +
           form_body},
      {"JSON chunked",
       post_head("/api/todos", "application/json", "Transfer-Encoding: chunked") + chunked},
      {"a form chunked",
       post_head("/todos", "application/x-www-form-urlencoded", "Transfer-Encoding: chunked",
                 "Cookie: " + session.cookie + "\r\n") +
           chunked},
      // A client that asks first gets the answer without sending the body.
      {"JSON with Expect: 100-continue",
       post_head("/api/todos", "application/json", "Content-Length: " + std::to_string(kMiB),
                 "Expect: 100-continue\r\n")},
  };
  for (const auto& c : cases) {
    auto reply = raw_exchange(app_port_, c.bytes);
    EXPECT_EQ(reply.status(), 413) << c.what << ": got " << reply.text.substr(0, 200);
    EXPECT_NE(reply.body().find("64 KiB"), std::string::npos) << c.what << ": " << reply.body();
    EXPECT_EQ(reply.text.find("100 Continue"), std::string::npos) << c.what;
  }
  EXPECT_TRUE(app_->running());
  EXPECT_EQ(items().size(), 0u);
  EXPECT_EQ(api(http::verb::post, "/api/todos", {{"description", "still works"}}).result_int(),
            201);
}

// ---- invalid UTF-8 ------------------------------------------------------------------------------

TEST_F(BadInput, InvalidUtf8IsRefusedWith400AndNothingChanges) {
  start_sqlite_app();
  auto created = api(http::verb::post, "/api/todos", {{"description", "intact"}});
  ASSERT_EQ(created.result_int(), 201);
  const auto id = std::to_string(json::parse(created.body())["id"].get<std::int64_t>());
  const auto before = items();

  const std::vector<std::pair<std::string, std::string>> bad = {
      {"a lone continuation byte", "bad \xC3\x28 text"},
      {"0xFF", "bad \xFF"},
      {"an overlong '/'", "bad \xC0\xAF"},
      {"a UTF-16 surrogate", "bad \xED\xA0\x80"},
      {"past U+10FFFF", "bad \xF4\x90\x80\x80"},
      {"a truncated sequence", "bad \xE6\x97"},
  };
  for (const auto& [what, text] : bad) {
    const std::string body = "{\"description\":\"" + text + "\"}";
    for (auto [method, target] : {std::pair{http::verb::post, std::string("/api/todos")},
                                  std::pair{http::verb::put, "/api/todos/" + id},
                                  std::pair{http::verb::patch, "/api/todos/" + id}}) {
      auto response = call(method, target, body, {{"Content-Type", "application/json"}});
      EXPECT_EQ(response.result_int(), 400) << what << " " << target;
      EXPECT_TRUE(valid_utf8(response.body())) << what;
    }
  }
  // JSON escapes for half a surrogate pair are not text either.
  for (const std::string escaped : {R"(\ud800)", R"(\udc00 x)", R"(\ud800\u0041)"}) {
    auto response = call(http::verb::post, "/api/todos", "{\"description\":\"" + escaped + "\"}",
                         {{"Content-Type", "application/json"}});
    EXPECT_EQ(response.result_int(), 400) << escaped;
  }

  // Forms: percent-encoded and raw bytes, on add and on edit. The 400 page is still valid UTF-8.
  auto session = form_session(call(http::verb::get, "/"));
  for (const auto& [target, fields] : std::vector<std::pair<std::string, std::string>>{
           {"/todos", "description=bad+%C3%28+text"},
           {"/todos", "description=bad+%FF"},
           {"/todos", "description=bad \xFF raw"},
           {"/todos/" + id, "description=bad+%ED%A0%80&done=true"}}) {
    auto response = call(http::verb::post, target, "csrf=" + session.token + "&" + fields,
                         form_headers(session));
    EXPECT_EQ(response.result_int(), 400) << fields;
    EXPECT_TRUE(valid_utf8(response.body())) << fields << ": the page is not valid UTF-8";
  }
  // In the path: not found, not a crash.
  for (const std::string target : {"/api/todos/%FF", "/todos/%C3%28/edit", "/%ED%A0%80"}) {
    const auto status = call(http::verb::get, target).result_int();
    EXPECT_EQ(status, 404) << target;
  }
  EXPECT_EQ(items(), before);
  EXPECT_TRUE(app_->running());
}

// ---- the database going away mid-request -------------------------------------------------------

TEST_F(BadInput, DatabaseGoingAwayMidRequestGivesA503PageAndTheAppRecoversWithNothingLost) {
  start_backends();
  start_app();
  // What is saved before the outage.
  for (const std::string text : {"saved one", "saved two ✓", "saved three"}) {
    ASSERT_EQ(api(http::verb::post, "/api/todos", {{"description", text}}).result_int(), 201);
  }
  auto session = form_session(call(http::verb::get, "/"));
  ASSERT_EQ(call(http::verb::post, "/todos", "csrf=" + session.token + "&description=saved+form",
                 form_headers(session))
                .result_int(),
            303);
  const auto second = std::to_string(items()[1]["id"].get<std::int64_t>());
  ASSERT_EQ(api(http::verb::patch, "/api/todos/" + second, {{"done", true}}).result_int(), 200);
  const auto saved = items();
  ASSERT_EQ(saved.size(), 4u);

  // Someone holds the table: the next writes wait inside the database.
  Process locker(test_support::PgCluster::script(),
                 {"psql", pg_->dir(), "-c",
                  "BEGIN; LOCK TABLE todos IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(120);"},
                 {.output = dir_.file("locker.log")});
  const auto count = [&](const std::string& sql) {
    auto [code, out] = pg_->psql(sql);
    return code == 0 ? std::atoi(out.c_str()) : -1;
  };
  ASSERT_TRUE(wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                   "WHERE c.relname = 'todos' AND l.mode = 'AccessExclusiveLock' AND "
                   "l.granted") == 1;
      },
      20s))
      << read_file(dir_.file("locker.log"));

  auto api_write = std::async(std::launch::async, [&] {
    return api(http::verb::post, "/api/todos", {{"description", "in flight (api)"}});
  });
  auto form_write = std::async(std::launch::async, [&] {
    return call(http::verb::post, "/todos",
                "csrf=" + session.token + "&description=in+flight+%28form%29",
                form_headers(session));
  });
  // Both are inside the database, waiting for the lock, when it goes away.
  ASSERT_TRUE(wait_until(
      [&] {
        return count(
                   "SELECT count(*) FROM pg_stat_activity WHERE usename = 'todo_app' AND "
                   "wait_event_type = 'Lock'") == 2;
      },
      20s));
  // Their connections end first, while the lock is still held, and only then the server. Stopping
  // the server alone ends the locker too, and a waiter that its rollback wakes could commit just
  // before its own end: a write the app answered 503 would then be saved after all (seen once, in
  // a full run). pg_terminate_backend with a timeout waits until each backend has exited.
  EXPECT_EQ(count("SELECT count(*) FROM (SELECT pg_terminate_backend(pid, 10000) AS ended FROM "
                  "pg_stat_activity WHERE usename = 'todo_app' AND wait_event_type = 'Lock') t "
                  "WHERE ended"),
            2);
  stop_database();

  auto api_reply = api_write.get();
  EXPECT_EQ(api_reply.result_int(), 503) << api_reply.body();
  EXPECT_EQ(json::parse(api_reply.body(), nullptr, false).value("error", ""),
            "database_unavailable")
      << api_reply.body();
  EXPECT_FALSE(api_reply[http::field::retry_after].empty());
  auto form_reply = form_write.get();
  EXPECT_EQ(form_reply.result_int(), 503) << form_reply.body();
  EXPECT_NE(std::string(form_reply[http::field::content_type]).find("text/html"),
            std::string::npos);
  EXPECT_NE(form_reply.body().find(R"(class="banner" role="alert")"), std::string::npos)
      << form_reply.body();
  EXPECT_NE(form_reply.body().find(R"x(value="in flight (form)")x"), std::string::npos)
      << "the page keeps what was typed";

  // While it is down: a clear 503 page, not a crash.
  auto page = call(http::verb::get, "/");
  EXPECT_EQ(page.result_int(), 503);
  EXPECT_NE(page.body().find(R"(class="banner" role="alert")"), std::string::npos) << page.body();
  EXPECT_NE(page.body().find("database"), std::string::npos) << page.body();
  EXPECT_NE(page.body().find("The list cannot be shown right now."), std::string::npos);
  EXPECT_EQ(call(http::verb::get, "/api/todos").result_int(), 503);
  EXPECT_EQ(call(http::verb::get, "/readyz").result_int(), 503);
  EXPECT_TRUE(app_->running());
  const auto pid = app_->pid();

  // Back: the same process recovers by itself; everything saved is there, as it was; the writes
  // that were answered 503 did not happen.
  restart_database();
  EXPECT_TRUE(
      wait_until([&] { return call(http::verb::get, "/readyz").result_int() == 200; }, 20s));
  EXPECT_EQ(app_->pid(), pid);
  EXPECT_EQ(items(), saved);
  auto again = call(http::verb::post, "/todos", "csrf=" + session.token + "&description=after",
                    form_headers(session));
  EXPECT_EQ(again.result_int(), 303) << again.body();
  auto list = call(http::verb::get, "/");
  EXPECT_EQ(list.result_int(), 200);
  EXPECT_EQ(
      page_descriptions(list.body()),
      (std::vector<std::string>{"saved one", "saved two ✓", "saved three", "saved form", "after"}));
}

}  // namespace
}  // namespace e2e
