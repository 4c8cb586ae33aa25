#pragma once
// File sinks (--sink): the current token of a key, written to a file on every new token, for
// programs that read a file and cannot speak HTTP (psql through a pgpass file, legacy tools).
// Each write replaces the file atomically (tb::write_file_atomically): a reader never sees a
// partial or empty file.

#include "broker/clock.hpp"
#include "broker/metrics.hpp"
#include "broker/token.hpp"

#include <boost/asio/any_io_executor.hpp>

#include <sys/types.h>

#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace broker {

struct SinkSpec {
  enum class Format {
    raw,     ///< the access token alone, no newline
    json,    ///< the GET /v1/token body as of the write, and a newline
    pgpass,  ///< one libpq password file line, host:port:database:user:token
  };
  /// Identity `none` until parse_config gives it the default identity (--client-id).
  TokenKey key;
  std::string path;  ///< absolute
  Format format = Format::raw;
  mode_t mode = 0640;  ///< 0600 for pgpass, whose file libpq ignores with group or other bits
  // pgpass only: the line's other fields ("*" matches anything).
  std::string pg_host = "*";
  std::string pg_port = "*";
  std::string pg_database = "*";
  std::string pg_user = "*";
};

std::string_view to_string(SinkSpec::Format format);

/// One --sink value, "resource=R[,client_id=ID|object_id=ID|mi_res_id=ID],path=P[,mode=0640]
/// [,format=raw|json|pgpass][,pghost=H][,pgport=N][,pgdatabase=D][,pguser=U]"; returns what is
/// wrong with it, naming the field.
std::variant<SinkSpec, std::string> parse_sink(std::string_view text);

/// What the sink's file holds for `token` at `now`.
std::string sink_content(const SinkSpec& spec, const Token& token, SteadyTime now);

/// Writes each sink's key's new tokens to its file. A failed write is logged, counted, and
/// retried (after 1 s, doubling up to 30 s) until it succeeds or a newer token comes. Runs on the
/// broker's thread; nothing here logs a token.
class FileSinks {
 public:
  FileSinks(boost::asio::any_io_executor executor, std::vector<SinkSpec> specs, const Clock& clock,
            Metrics& metrics);
  ~FileSinks();
  FileSinks(const FileSinks&) = delete;
  FileSinks& operator=(const FileSinks&) = delete;

  /// At start: each sink's directory must exist and be writable (StartupError naming the flag
  /// otherwise); temporary files a crash left behind are removed.
  void check() const;

  /// `key` has a new token (the cache's listener): every sink of that key writes it.
  void deliver(const TokenKey& key, const TokenPtr& token);

  struct Status {
    std::string path;
    TokenKey key;
    bool current = false;    ///< the file holds the key's newest token
    std::string last_error;  ///< the last write's failure; empty after a success
  };
  std::vector<Status> status() const;
  /// Every sink's file holds its key's newest token (true when there are no sinks).
  bool all_current() const;

  /// Cancels the retries; the files stay (their tokens stay valid until they expire).
  void stop();

 private:
  struct Sink;
  void write(Sink& sink);

  boost::asio::any_io_executor executor_;
  const Clock& clock_;
  Metrics& metrics_;
  std::vector<std::unique_ptr<Sink>> sinks_;
  bool stopped_ = false;
};

}  // namespace broker
