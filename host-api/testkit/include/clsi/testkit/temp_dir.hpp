// The test kit's temporary directory: a fresh directory under the system's
// temporary directory ($TMPDIR, else /tmp), removed with everything in it on
// destruction, unless CLSI_KEEP_TEST_DIRS is set in the environment.
#pragma once

#include <string>

namespace clsi::testkit {

class TempDir {
 public:
  // Throws std::runtime_error when no directory can be made.
  explicit TempDir(const std::string& prefix = "clsi-test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // Absolute, without symbolic links (a compile directory is canonical).
  [[nodiscard]] const std::string& path() const { return path_; }
  [[nodiscard]] std::string operator/(const std::string& rel) const { return path_ + "/" + rel; }

 private:
  std::string path_;
};

}  // namespace clsi::testkit
