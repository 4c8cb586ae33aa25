#include "broker/sink.hpp"

#include "broker/api.hpp"
#include "broker/broker.hpp"
#include "tb/files.hpp"
#include "tb/flags.hpp"
#include "tb/log.hpp"

#include <fmt/format.h>
#include <boost/asio/steady_timer.hpp>

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>

namespace broker {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::chrono::milliseconds kFirstRetry{1000};
constexpr std::chrono::milliseconds kLastRetry{30'000};

/// A pgpass field: ':' and '\' are escaped with '\' (libpq's rule).
void append_pgpass_field(std::string& out, std::string_view field) {
  for (char c : field) {
    if (c == ':' || c == '\\') out += '\\';
    out += c;
  }
}

/// A pgpass field of the flag: printable ASCII (a newline would end the line).
bool valid_pg_field(std::string_view text) {
  return !text.empty() && text.size() <= 256 &&
         std::all_of(text.begin(), text.end(),
                     [](unsigned char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace

std::string_view to_string(SinkSpec::Format format) {
  switch (format) {
    case SinkSpec::Format::json:
      return "json";
    case SinkSpec::Format::pgpass:
      return "pgpass";
    case SinkSpec::Format::raw:
      break;
  }
  return "raw";
}

std::variant<SinkSpec, std::string> parse_sink(std::string_view text) {
  SinkSpec spec;
  bool identity_seen = false;
  std::optional<unsigned> mode;
  std::vector<std::string> seen;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto end = text.find(',', start);
    if (end == std::string_view::npos) end = text.size();
    const auto item = text.substr(start, end - start);
    start = end + 1;
    if (item.empty()) continue;
    const auto eq = item.find('=');
    if (eq == std::string_view::npos) {
      return fmt::format(
          "has '{}' where NAME=VALUE was expected (e.g. "
          "resource=https://ossrdbms-aad.database.windows.net,path=/var/run/token-sink/pgpass,"
          "format=pgpass)",
          item);
    }
    const std::string name(item.substr(0, eq));
    const std::string value(item.substr(eq + 1));
    if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
      return "names " + name + " twice";
    }
    seen.push_back(name);
    if (name == "resource") {
      if (!valid_key_text(value)) {
        return "resource must be 1 to 1024 printable ASCII characters, got '" + value + "'";
      }
      spec.key.resource = value;
    } else if (const auto kind = identity_parameter(name)) {
      if (identity_seen) return "names more than one identity (client_id, object_id, mi_res_id)";
      if (!valid_key_text(value)) {
        return fmt::format("{} must be 1 to 1024 printable ASCII characters, got '{}'", name,
                           value);
      }
      identity_seen = true;
      spec.key.identity = Identity{*kind, value};
    } else if (name == "path") {
      const std::filesystem::path path(value);
      if (!path.is_absolute() || path.filename().empty() || value.find('\n') != std::string::npos) {
        return "path must be an absolute file path, e.g. /var/run/token-sink/token, got '" + value +
               "'";
      }
      spec.path = path.lexically_normal().string();
    } else if (name == "mode") {
      mode = tb::flags::parse_octal_mode(value);
      if (!mode) return "mode must be an octal file mode such as 0640, got '" + value + "'";
      if ((*mode & 0400) == 0) return "mode must let the owner read the file (e.g. 0640)";
    } else if (name == "format") {
      if (value == "raw") {
        spec.format = SinkSpec::Format::raw;
      } else if (value == "json") {
        spec.format = SinkSpec::Format::json;
      } else if (value == "pgpass") {
        spec.format = SinkSpec::Format::pgpass;
      } else {
        return "format must be raw, json or pgpass, got '" + value + "'";
      }
    } else if (name == "pghost" || name == "pgport" || name == "pgdatabase" || name == "pguser") {
      if (!valid_pg_field(value)) {
        return fmt::format("{} must be printable ASCII without spaces (or * for any), got '{}'",
                           name, value);
      }
      const auto port = tb::flags::to_int(value);
      if (name == "pgport" && value != "*" && (!port || *port < 1 || *port > 65535)) {
        return "pgport must be a port from 1 to 65535 (or * for any), got '" + value + "'";
      }
      (name == "pghost"       ? spec.pg_host
       : name == "pgport"     ? spec.pg_port
       : name == "pgdatabase" ? spec.pg_database
                              : spec.pg_user) = value;
    } else {
      return "has an unknown field '" + name +
             "' (known: resource, client_id, object_id, mi_res_id, path, mode, format, pghost, "
             "pgport, pgdatabase, pguser)";
    }
  }
  if (spec.key.resource.empty()) return "needs resource=R (the token's resource)";
  if (spec.path.empty()) return "needs path=P (the absolute path of the file to write)";
  const bool pgpass = spec.format == SinkSpec::Format::pgpass;
  if (!pgpass && std::any_of(seen.begin(), seen.end(),
                             [](const std::string& name) { return name.starts_with("pg"); })) {
    return "pghost, pgport, pgdatabase and pguser need format=pgpass";
  }
  if (pgpass) {
    if (mode && (*mode & 0077) != 0) {
      return "mode " + fmt::format("{:04o}", *mode) +
             " gives group or others access to a pgpass file, which libpq then ignores; use "
             "0600 (and run the reader as the broker's user), or format=raw with 0640";
    }
    spec.mode = 0600;
  }
  if (mode) spec.mode = static_cast<mode_t>(*mode);
  return spec;
}

std::string sink_content(const SinkSpec& spec, const Token& token, SteadyTime now) {
  switch (spec.format) {
    case SinkSpec::Format::json:
      return token_body(token, TokenQuery{spec.key, 0s, 0ms, Shape::v1, {}}, now) + "\n";
    case SinkSpec::Format::pgpass: {
      std::string line;
      for (const auto* field : {&spec.pg_host, &spec.pg_port, &spec.pg_database, &spec.pg_user}) {
        if (*field == "*") {
          line += '*';
        } else {
          append_pgpass_field(line, *field);
        }
        line += ':';
      }
      append_pgpass_field(line, token.upstream.access_token);
      line += '\n';
      return line;
    }
    case SinkSpec::Format::raw:
      break;
  }
  return token.upstream.access_token;
}

struct FileSinks::Sink {
  Sink(const asio::any_io_executor& executor, SinkSpec s) : spec(std::move(s)), retry(executor) {}

  SinkSpec spec;
  TokenPtr pending;  ///< the newest token, until it is written
  std::string written_sha256;
  std::string last_error;
  std::chrono::milliseconds next_retry = kFirstRetry;
  asio::steady_timer retry;
  bool retry_armed = false;
};

FileSinks::FileSinks(asio::any_io_executor executor, std::vector<SinkSpec> specs,
                     const Clock& clock, Metrics& metrics)
    : executor_(std::move(executor)), clock_(clock), metrics_(metrics) {
  for (auto& spec : specs) sinks_.push_back(std::make_unique<Sink>(executor_, std::move(spec)));
}

FileSinks::~FileSinks() = default;

void FileSinks::check() const {
  for (const auto& sink : sinks_) {
    const std::filesystem::path path(sink->spec.path);
    const auto directory = path.parent_path();
    const std::string flag = "--sink path=" + sink->spec.path;
    std::error_code ec;
    if (!std::filesystem::is_directory(directory, ec)) {
      throw StartupError(flag + ": the directory " + directory.string() +
                         " does not exist; create it (in Kubernetes, mount an emptyDir there)");
    }
    if (::access(directory.c_str(), W_OK | X_OK) != 0) {
      throw StartupError(flag + ": the broker cannot write in " + directory.string() + ": " +
                         std::strerror(errno) + "; give its user write access to the directory");
    }
    if (std::filesystem::is_directory(path, ec)) {
      throw StartupError(flag + " is a directory; name a file");
    }
    if (const int removed = tb::remove_stale_temporaries(sink->spec.path); removed > 0) {
      tb::log::info("removed temporary files an earlier run left",
                    {{"sink", sink->spec.path}, {"files", removed}});
    }
  }
}

void FileSinks::deliver(const TokenKey& key, const TokenPtr& token) {
  if (stopped_ || !token) return;
  for (auto& sink : sinks_) {
    if (!(sink->spec.key == key) || sink->written_sha256 == token->sha256) continue;
    sink->pending = token;
    sink->next_retry = kFirstRetry;
    write(*sink);
  }
}

void FileSinks::write(Sink& sink) {
  if (stopped_ || !sink.pending) return;
  const auto& token = *sink.pending;
  const auto problem = tb::write_file_atomically(
      sink.spec.path, sink_content(sink.spec, token, clock_.steady_now()), sink.spec.mode);
  metrics_.sink_write(!problem);
  nlohmann::json fields = {{"sink", sink.spec.path},
                           {"resource", sink.spec.key.resource},
                           {"identity", to_string(sink.spec.key.identity)},
                           {"format", to_string(sink.spec.format)},
                           {"token_sha256", token.fingerprint}};
  if (!problem) {
    sink.written_sha256 = token.sha256;
    sink.last_error.clear();
    sink.pending.reset();
    tb::log::info("token file written", fields);
    return;
  }
  sink.last_error = *problem;
  fields["error"] = *problem;
  fields["retry_in_ms"] = sink.next_retry.count();
  tb::log::warn("token file not written; retrying", fields);
  if (sink.retry_armed) {
    // The retry already waiting writes the newest token; it keeps its own delay.
    return;
  }
  sink.retry_armed = true;
  sink.retry.expires_after(sink.next_retry);
  sink.next_retry = std::min(sink.next_retry * 2, kLastRetry);
  sink.retry.async_wait([this, &sink](const boost::system::error_code& ec) {
    if (ec) return;  // stopped (or destroyed): `sink` may be gone
    sink.retry_armed = false;
    write(sink);
  });
}

std::vector<FileSinks::Status> FileSinks::status() const {
  std::vector<Status> out;
  out.reserve(sinks_.size());
  for (const auto& sink : sinks_) {
    out.push_back(Status{sink->spec.path, sink->spec.key,
                         !sink->written_sha256.empty() && !sink->pending, sink->last_error});
  }
  return out;
}

bool FileSinks::all_current() const {
  return std::all_of(sinks_.begin(), sinks_.end(), [](const auto& sink) {
    return !sink->written_sha256.empty() && !sink->pending;
  });
}

void FileSinks::stop() {
  stopped_ = true;
  for (auto& sink : sinks_) sink->retry.cancel();
}

}  // namespace broker
