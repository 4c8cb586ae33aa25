#pragma once
// A tiny HTTP/1.1 server on 127.0.0.1 (port 0) for tests that need an upstream to answer what no
// real one would: each request's head is read and `answer` (called on the server's own thread)
// returns the raw response bytes; the connection is then closed. Stopped by the destructor.

#include <atomic>
#include <functional>
#include <string>
#include <thread>

namespace test_support {

class CannedHttpServer {
 public:
  /// Request head ("GET /x HTTP/1.1\r\nHost: …\r\n\r\n") -> raw response bytes.
  using Answer = std::function<std::string(const std::string& request_head)>;

  explicit CannedHttpServer(Answer answer);
  ~CannedHttpServer();
  CannedHttpServer(const CannedHttpServer&) = delete;
  CannedHttpServer& operator=(const CannedHttpServer&) = delete;

  int port() const { return port_; }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int requests() const { return requests_.load(); }

  /// "HTTP/1.1 STATUS Reason\r\nContent-Type: …\r\nContent-Length: …\r\n…\r\n\r\nBODY".
  static std::string response(int status, const std::string& body,
                              const std::string& content_type = "application/json",
                              const std::string& extra_headers = "");

 private:
  void serve();

  Answer answer_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::thread thread_;
};

}  // namespace test_support
