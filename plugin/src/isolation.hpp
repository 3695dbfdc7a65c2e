// How every child of the plugin runs: an empty private working directory,
// its own HOME and TMPDIR, and an environment built from an allowlist, so
// nothing of the service or the project reaches python or pip.
#pragma once

#include <string>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

// A fresh directory under `parent` with home/, tmp/ and cwd/; removed, with
// everything in it, on destruction.
class PrivateWorkdir {
 public:
  static Expected<PrivateWorkdir> create(const std::string& parent, const std::string& prefix);
  PrivateWorkdir(PrivateWorkdir&& other) noexcept;
  PrivateWorkdir& operator=(PrivateWorkdir&&) = delete;
  PrivateWorkdir(const PrivateWorkdir&) = delete;
  PrivateWorkdir& operator=(const PrivateWorkdir&) = delete;
  ~PrivateWorkdir();

  [[nodiscard]] const std::string& root() const { return root_; }
  [[nodiscard]] std::string home() const { return root_ + "/home"; }
  [[nodiscard]] std::string tmp() const { return root_ + "/tmp"; }
  [[nodiscard]] std::string cwd() const { return root_ + "/cwd"; }

 private:
  PrivateWorkdir() = default;
  std::string root_;
};

// The complete environment of a child: PATH, locale, HOME/TMPDIR in the
// workdir, PIP_CONFIG_FILE=/dev/null (pip then reads no configuration file
// at all), PYTHONNOUSERSITE. Nothing is inherited.
std::vector<std::string> isolated_environment(const PrivateWorkdir& workdir);

// Writes `content` to `path` atomically: temporary file, fsync, rename, fsync
// of the directory. Readers see the old file or the whole new one.
Expected<bool> write_file_atomically(const std::string& path, const std::string& content);

}  // namespace clsi::venv
