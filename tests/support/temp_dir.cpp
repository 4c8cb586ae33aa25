#include "temp_dir.hpp"

#include <unistd.h>

#include <filesystem>
#include <stdexcept>

namespace test_support {

TempDir::TempDir() {
  char pattern[] = "/tmp/tb-XXXXXX";
  if (::mkdtemp(pattern) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace test_support
