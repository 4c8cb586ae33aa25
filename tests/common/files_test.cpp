// tb::write_file_atomically: the content, the mode, no temporary left, the old file kept on
// failure.
#include "tb/files.hpp"
#include "temp_dir.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <iterator>

namespace {

std::string read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

std::size_t entries(const std::string& dir) {
  return static_cast<std::size_t>(std::distance(std::filesystem::directory_iterator(dir),
                                                std::filesystem::directory_iterator()));
}

TEST(WriteFileAtomically, ReplacesTheFileWithTheModeAskedAndLeavesNoTemporary) {
  test_support::TempDir dir;
  const auto path = dir.file("token");
  ASSERT_EQ(tb::write_file_atomically(path, "first", 0600), std::nullopt);
  ASSERT_EQ(tb::write_file_atomically(path, "second", 0640), std::nullopt);
  EXPECT_EQ(read(path), "second");
  struct stat info {};
  ASSERT_EQ(::stat(path.c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0640U);  // whatever the umask
  EXPECT_EQ(entries(dir.path()), 1U);
  ASSERT_EQ(tb::write_file_atomically(path, "", 0600), std::nullopt);
  EXPECT_EQ(read(path), "");
}

TEST(WriteFileAtomically, AFailureNamesTheFileAndKeepsTheOldOne) {
  test_support::TempDir dir;
  const auto missing = dir.file("no-such-dir/token");
  const auto problem = tb::write_file_atomically(missing, "x").value_or("");
  EXPECT_NE(problem.find(missing), std::string::npos) << problem;

  // A directory in the file's place: the rename fails, the directory stays, nothing is left over.
  const auto taken = dir.file("taken");
  std::filesystem::create_directory(taken);
  std::ofstream(taken + "/inside") << "keep";
  EXPECT_TRUE(tb::write_file_atomically(taken, "x").has_value());
  EXPECT_EQ(read(taken + "/inside"), "keep");
  EXPECT_EQ(entries(dir.path()), 1U);
  EXPECT_TRUE(tb::write_file_atomically(dir.path() + "/", "x").has_value());
}

TEST(RemoveStaleTemporaries, RemovesOnlyThisFilesTemporaries) {
  test_support::TempDir dir;
  const auto path = dir.file("token");
  std::ofstream(dir.file(".token.tmp-abc")) << "partial";
  std::ofstream(dir.file(".token.tmp-def")) << "";
  std::ofstream(dir.file(".other.tmp-abc")) << "other";
  std::ofstream(path) << "current";
  EXPECT_EQ(tb::remove_stale_temporaries(path), 2);
  EXPECT_EQ(read(path), "current");
  EXPECT_TRUE(std::filesystem::exists(dir.file(".other.tmp-abc")));
  EXPECT_EQ(tb::remove_stale_temporaries(dir.file("missing/token")), 0);
}

}  // namespace
