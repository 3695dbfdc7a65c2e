#include "clsi/testkit/temp_dir.hpp"

#include <stdlib.h>  // mkdtemp, secure_getenv

#include <cerrno>
#include <filesystem>
#include <stdexcept>
#include <system_error>
#include <vector>

namespace clsi::testkit {

TempDir::TempDir(const std::string& prefix) {
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string templ = (base / (prefix + ".XXXXXX")).string();
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) {
    throw std::runtime_error("cannot make a temporary directory " + templ + ": " +
                             std::generic_category().message(errno));
  }
  path_ = std::filesystem::canonical(buf.data()).string();
}

TempDir::~TempDir() {
  if (::secure_getenv("CLSI_KEEP_TEST_DIRS") != nullptr) return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

}  // namespace clsi::testkit
