#pragma once
// A throwaway certificate authority for TLS tests: a CA and a server certificate for 127.0.0.1
// and localhost, generated with the OpenSSL C API (EC P-256, valid for a day).

#include <string>

namespace test_support {

struct TestCaFiles {
  std::string ca_cert;      ///< PEM CA certificate: what the client trusts (--ca-file)
  std::string server_cert;  ///< PEM server certificate (subjectAltName IP:127.0.0.1, DNS:localhost)
  std::string server_key;   ///< PEM private key of server_cert
};

/// Writes `<dir>/<prefix>ca.pem`, `<prefix>server.pem` and `<prefix>server.key`; throws
/// std::runtime_error when OpenSSL fails. Each call makes a new, unrelated CA. The server
/// certificate names `subject_alt_names` (OpenSSL's syntax; the CN is always "localhost").
TestCaFiles write_test_ca(const std::string& dir, const std::string& prefix = "",
                          const std::string& subject_alt_names = "IP:127.0.0.1,DNS:localhost");

}  // namespace test_support
