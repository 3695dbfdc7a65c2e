#include "kernelspec.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <nlohmann/json.hpp>

#include "clsi/errno_text.hpp"
#include "clsi/unique_fd.hpp"

namespace clsi::venv {
namespace {

// Opens (creating if missing) directory `name` under `parent`, refusing a
// symlink or anything that is not a directory.
UniqueFd open_subdir(int parent, const char* name, std::string& why) {
  if (::mkdirat(parent, name, 0755) != 0 && errno != EEXIST) {
    why = std::string("cannot create ") + name + ": " + clsi::errno_text(errno);
    return {};
  }
  UniqueFd fd(::openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd)
    why = std::string("cannot open ") + name +
          " (a symlink or not a directory?): " + clsi::errno_text(errno);
  return fd;
}

}  // namespace

std::string jupyter_data_dir(const std::string& venv) {
  return venv + "/share/jupyter";
}

std::string kernelspec_path(const std::string& venv) {
  return jupyter_data_dir(venv) + "/kernels/python3/kernel.json";
}

std::string kernelspec_json(const std::string& venv, const std::string& display_name) {
  nlohmann::ordered_json spec = {
      {"argv", {venv + "/bin/python3", "-m", "ipykernel_launcher", "-f", "{connection_file}"}},
      {"display_name", display_name},
      {"language", "python"},
      {"metadata", {{"debugger", true}}},
  };
  return spec.dump(1) + "\n";
}

std::string kernel_display_name(const std::string& short_key) {
  return "Python 3 (project environment " + short_key + ")";
}

Expected<bool> write_kernelspec(const std::string& venv, const std::string& display_name) {
  const std::string where = "the kernelspec in " + venv;
  UniqueFd dir(::open(venv.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return Error{"cannot write " + where + ": " + clsi::errno_text(errno)};
  const std::string cannot_write = "cannot write " + where + ": ";
  for (const char* part : {"share", "jupyter", "kernels", "python3"}) {
    std::string why;
    dir = open_subdir(dir.get(), part, why);
    if (!dir) return Error{cannot_write + why};
  }
  const std::string text = kernelspec_json(venv, display_name);
  constexpr const char* kTmp = ".kernel.json.tmp";
  ::unlinkat(dir.get(), kTmp, 0);
  UniqueFd out(
      ::openat(dir.get(), kTmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644));
  if (!out) return Error{"cannot write " + where + ": " + clsi::errno_text(errno)};
  std::size_t off = 0;
  while (off < text.size()) {
    ssize_t n = ::write(out.get(), text.data() + off, text.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return Error{"cannot write " + where + ": " + clsi::errno_text(errno)};
    off += static_cast<std::size_t>(n);
  }
  if (::fchmod(out.get(), 0644) != 0 || ::fsync(out.get()) != 0)
    return Error{"cannot write " + where + ": " + clsi::errno_text(errno)};
  out.reset();
  // renameat replaces a file a wheel put there; a directory named kernel.json
  // makes it fail, and the build fails with it.
  if (::renameat(dir.get(), kTmp, dir.get(), "kernel.json") != 0) {
    int err = errno;
    ::unlinkat(dir.get(), kTmp, 0);
    return Error{"cannot write " + where + ": " + clsi::errno_text(err)};
  }
  ::fsync(dir.get());
  return true;
}

std::string jupyter_path_with(const std::string& venv, const std::string& previous) {
  std::string p = jupyter_data_dir(venv);
  if (!previous.empty()) p += ":" + previous;
  return p;
}

}  // namespace clsi::venv
