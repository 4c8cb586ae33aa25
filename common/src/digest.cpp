// OpenSSL's direct SHA-256 functions rather than EVP_Digest: the first EVP call loads and
// initialises OpenSSL's default provider (its algorithm tables and name maps), which makes
// about 1.9 MiB more of libcrypto resident in a process that otherwise never needs it, such as
// token-broker with an IMDS source (measured with /proc/PID/smaps; see docs/performance.md).
// The direct functions run the same SHA-256 code. OpenSSL 3 marks them deprecated in favour of
// EVP, hence the macro; a test pins the digests to the standard's test vectors.
#define OPENSSL_SUPPRESS_DEPRECATED
#include "tb/digest.hpp"

#include <openssl/sha.h>

namespace tb {

Sha256 sha256(std::string_view data) {
  Sha256 digest{};
  SHA256_CTX context;
  SHA256_Init(&context);
  SHA256_Update(&context, data.data(), data.size());
  SHA256_Final(digest.data(), &context);
  return digest;
}

}  // namespace tb
