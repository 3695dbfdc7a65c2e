// Finding and reading the project's requirements file, which is untrusted:
// opened relative to the compile directory, never through a symlink, never
// blocking on a FIFO, only a regular file, at most a capped size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

struct RequirementsFile {
  std::string name;  // e.g. "requirements.txt"
  std::string text;
  // The later of `names` that are present too, and are not read: the user
  // is told which file counts.
  std::vector<std::string> ignored;
};

// The first of `names` present at the root of `compile_dir`. nullopt: none
// present. Error: present but refused (its message is a full output.log line).
Expected<std::optional<RequirementsFile>> read_requirements_file(
    const std::string& compile_dir, const std::vector<std::string>& names, std::int64_t max_bytes);

}  // namespace clsi::venv
