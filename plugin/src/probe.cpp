#include "probe.hpp"

#include "store_trust.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "clsi/errno_text.hpp"
#include "isolation.hpp"
#include "key.hpp"
#include "store.hpp"

namespace clsi::venv {
namespace {

constexpr const char* kProbeScript =
    "import sys, platform\n"
    "print('version=' + sys.version.replace('\\n', ' ') + ' | ' + sys.implementation.name + ' ' + "
    "platform.machine())\n"
    "print('version_short=%d.%d' % sys.version_info[:2])\n"
    "try:\n"
    "    import pip\n"
    "    print('pip=' + pip.__version__)\n"
    "except Exception:\n"
    "    print('pip=')\n";

std::map<std::string, std::string> parse_kv(const std::string& text) {
  std::map<std::string, std::string> kv;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

}  // namespace

std::string InterpreterIdentity::fingerprint() const {
  return real_path + "|" + std::to_string(dev) + "|" + std::to_string(ino) + "|" +
         std::to_string(size) + "|" + std::to_string(mtime_ns);
}

bool pip_resolves_first(const std::string& pip_version) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(pip_version.c_str(), "%d.%d", &major, &minor) < 1) return false;
  return major > 22 || (major == 22 && minor >= 2);
}

Expected<InterpreterIdentity> identify_interpreter(const std::string& path) {
  char real[PATH_MAX];
  if (::realpath(path.c_str(), real) == nullptr) {
    return Error{"the base interpreter " + path + " is not usable: " + clsi::errno_text(errno)};
  }
  struct stat st {};
  if (::stat(real, &st) != 0 || !S_ISREG(st.st_mode) || ::access(real, X_OK) != 0) {
    return Error{"the base interpreter " + path + " is not an executable file"};
  }
  InterpreterIdentity id;
  id.real_path = real;
  id.dev = st.st_dev;
  id.ino = st.st_ino;
  id.size = st.st_size;
  id.mtime_ns = static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  return id;
}

Expected<InterpreterFacts> InterpreterProbe::facts(const std::string& base_python, bool* probed) {
  if (probed) *probed = false;
  auto id = identify_interpreter(base_python);
  if (!id) return Error{id.error()};
  std::string fp = id->fingerprint();
  {
    std::lock_guard lock(mu_);
    if (auto it = memo_.find(fp); it != memo_.end()) return it->second;
  }
  std::string file = probe_dir_ + "/" + fnv1a64_hex(fp);
  std::string text;
  if (read_only_) {
    if (auto t = read_trusted_file(file, owner_, std::size_t{64} * 1024)) text = std::move(*t);
  } else if (auto t = read_small_regular_file(file)) {
    // Never blocks on a FIFO, nor follows a symlink, planted in its place.
    text = std::move(*t);
  }
  if (!text.empty()) {
    auto kv = parse_kv(text);
    // Only a file written whole counts: "end" is its last line.
    if (kv["fingerprint"] == fp && !kv["version"].empty() && kv["end"] == "1") {
      InterpreterFacts f{id->real_path, kv["version"], kv["version_short"], kv["pip"], *id};
      std::lock_guard lock(mu_);
      memo_[fp] = f;
      return f;
    }
  }
  if (read_only_) return Error{"the build service has not probed " + base_python + " yet"};
  if (probed) *probed = true;
  auto f = run_probe(base_python, *id);
  if (!f) return f;
  std::string content = "fingerprint=" + fp + "\nversion=" + f->version +
                        "\nversion_short=" + f->version_short + "\npip=" + f->pip_version +
                        "\nend=1\n";
  (void)write_file_atomically(file, content);  // a failed write only costs a probe next time
  std::lock_guard lock(mu_);
  memo_[fp] = *f;
  return f;
}

Expected<InterpreterFacts> InterpreterProbe::run_probe(const std::string& base_python,
                                                       const InterpreterIdentity& id) {
  auto work = PrivateWorkdir::create(tmp_dir_, "probe");
  if (!work) return Error{work.error()};
  SpawnOptions o;
  o.executable = id.real_path;
  o.args = {"-I", "-c", kProbeScript};
  o.env = isolated_environment(*work);
  o.cwd = work->cwd();
  std::string out;
  auto r = runner_(o, std::chrono::steady_clock::now() + std::chrono::seconds(30),
                   [&](std::string_view line) { out.append(line).append("\n"); }, {});
  if (!r.ok()) {
    return Error{"probing the base interpreter " + base_python + " failed" +
                 (r.spawn_failed ? ": " + r.spawn_error : "") + (out.empty() ? "" : ": " + out)};
  }
  auto kv = parse_kv(out);
  if (kv["version"].empty() || kv["version_short"].empty()) {
    return Error{"the base interpreter " + base_python + " did not report its version: " + out};
  }
  return InterpreterFacts{id.real_path, kv["version"], kv["version_short"], kv["pip"], id};
}

}  // namespace clsi::venv
