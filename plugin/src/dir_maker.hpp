// Directories under one root, made and opened one component at a time
// without following a symbolic link, each opened once: for trees of many
// thousands of files (an unpacked wheel, a venv being linked).
#pragma once

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <map>
#include <string>

#include "clsi/unique_fd.hpp"

namespace clsi::venv {

class DirMaker {
 public:
  explicit DirMaker(int root) : root_(root) {}
  // The directory `rel` ("" is the root), created with its parents (0755)
  // when `create`; -1 with errno set (ELOOP or ENOTDIR: a component is a
  // symbolic link or a file).
  int open(const std::string& rel, bool create = true) {
    if (rel.empty()) return root_;
    if (auto it = dirs_.find(rel); it != dirs_.end()) return it->second.get();
    auto slash = rel.rfind('/');
    int parent = open(slash == std::string::npos ? std::string() : rel.substr(0, slash), create);
    if (parent < 0) return -1;
    const std::string name = slash == std::string::npos ? rel : rel.substr(slash + 1);
    if (create) {
      if (::mkdirat(parent, name.c_str(), 0755) == 0) {
        ++made_;
      } else if (errno != EEXIST) {
        return -1;
      }
    }
    UniqueFd fd(::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return -1;
    int raw = fd.get();
    dirs_.emplace(rel, std::move(fd));
    return raw;
  }

  // Directories this made (not those that were there).
  [[nodiscard]] std::int64_t made() const { return made_; }

 private:
  int root_;
  std::int64_t made_ = 0;
  std::map<std::string, UniqueFd> dirs_;
};

}  // namespace clsi::venv
