#include "installer.hpp"

#include <sys/stat.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>

#include "clsi/errno_text.hpp"
#include "dist_info.hpp"
#include "isolation.hpp"
#include "key.hpp"

namespace clsi::venv {
namespace {

std::string describe(const RunOutcome& r, const std::string& what,
                     const std::string& deadline_reason) {
  if (r.spawn_failed) return what + " could not start: " + r.spawn_error;
  if (r.timed_out) return what + " did not finish within " + deadline_reason;
  if (!r.stopped_because.empty()) return r.stopped_because;
  return what + " failed (exit status " + std::to_string(Child::shell_status(r.wait_status)) + ")";
}

// A run that ended for reasons outside the requirements: it did not start,
// or something outside killed it (the OOM killer, an operator).
bool outside_fault(const RunOutcome& r) {
  if (r.spawn_failed) return true;
  return !r.timed_out && r.stopped_because.empty() && WIFSIGNALED(r.wait_status);
}

// pip's words for a fault of the service: the index or the disk, not the
// project's requirements. pip still ends such a run with "no matching
// distribution", so these are looked for in every line.
bool service_trouble(std::string_view line) {
  for (std::string_view s :
       {"No space left on device", "[Errno 28]", "Disk quota exceeded", "[Errno 122]",
        "Permission denied", "[Errno 13]", "Read-only file system", "[Errno 30]",
        "Could not fetch URL", "NewConnectionError", "Connection refused", "Max retries exceeded",
        "Temporary failure in name resolution", "Name or service not known", "Read timed out",
        "ConnectTimeoutError", "SSLError", "Connection reset by peer", "HTTP error 5"}) {
    if (line.find(s) != std::string_view::npos) return true;
  }
  return false;
}

// "host[:port]" of an http:// URL; "" for any other scheme.
std::string http_host(const std::string& url) {
  constexpr std::string_view kHttp = "http://";
  if (url.compare(0, kHttp.size(), kHttp) != 0) return {};
  std::string rest = url.substr(kHttp.size());
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (auto at = rest.rfind('@'); at != std::string::npos) rest = rest.substr(at + 1);
  return rest;
}

// pip learned --dry-run in 22.2.
bool pip_supports_dry_run(const std::string& version) {
  int major = 0;
  int minor = 0;
  if (std::sscanf(version.c_str(), "%d.%d", &major, &minor) < 1) return false;
  return major > 22 || (major == 22 && minor >= 2);
}

}  // namespace

BuildResult Installer::build(const BuildRequest& req, const LineSink& log) const {
  BuildResult result;
  auto started = std::chrono::steady_clock::now();
  std::string venv = store_.env_dir(req.key);
  bool trouble = false;  // pip reported a fault of the index, the network or the disk
  auto fail_because = [&](std::string why, bool service_fault) {
    (void)store_.remove_env(req.key);
    result.ok = false;
    result.failure = std::move(why);
    result.service_fault = service_fault;
    return result;
  };
  auto fail = [&](std::string why) { return fail_because(std::move(why), false); };
  auto fail_service = [&](std::string why) { return fail_because(std::move(why), true); };
  auto fail_run = [&](std::string why, const RunOutcome& run) {
    return fail_because(std::move(why), trouble || outside_fault(run));
  };

  auto work = PrivateWorkdir::create(store_.tmp_dir(), "build-" + req.key.substr(0, 12));
  if (!work) return fail_service(work.error());
  std::string req_file = work->root() + "/requirements.txt";
  {
    std::string content;
    for (const auto& r : req.requirements)
      content += r.canonical + "\n";
    auto w = write_file_atomically(req_file, content);
    if (!w) return fail_service(w.error());
  }

  SpawnOptions base;
  base.env = isolated_environment(*work);
  base.cwd = work->cwd();
  std::string first_error;  // pip's own words, for the closing line
  auto stream = [&](std::string_view line) {
    log("  " + std::string(line));
    if (first_error.empty() && line.substr(0, 6) == "ERROR:") first_error = line;
    trouble = trouble || service_trouble(line);
  };

  // 1. The venv. With the base's pip importable, the venv needs none of its own.
  bool own_pip = req.python.pip_version.empty();
  SpawnOptions mk = base;
  mk.executable = req.python.real_path;
  mk.args = {"-I", "-m", "venv", "--system-site-packages"};
  if (!own_pip) mk.args.emplace_back("--without-pip");
  mk.args.push_back(venv);
  if (own_pip)
    log(note("the base interpreter has no pip module; the venv gets its own pip (slower)"));
  auto r = runner_(mk, req.deadline, stream, {});
  if (!r.ok()) return fail_service(describe(r, "creating the venv", req.deadline_reason));
  // What venv made, before pip runs: after it, no wheel may have replaced or
  // added the venv's interpreter, activation scripts or pyvenv.cfg.
  struct stat made {};
  if (::stat((venv + "/bin/python3").c_str(), &made) != 0)
    return fail_service("the new venv has no bin/python3: " + std::string(clsi::errno_text(errno)));
  auto created = snapshot_venv(venv);
  if (!created) return fail_service(created.error());

  // 2. pip, from the file the plugin wrote. The download cache lives on the
  // volume: safe to share, because only the pinned index (and with
  // only_binary, only wheels) can fill it.
  auto pip_command = [&](std::initializer_list<std::string> extra) {
    SpawnOptions pip = base;
    pip.executable = venv + "/bin/python3";
    pip.args = {"-I",
                "-m",
                "pip",
                "install",
                "--isolated",
                "--no-input",
                "--disable-pip-version-check",
                "--no-color",
                "--progress-bar",
                "off",
                "--no-warn-script-location",
                "--cache-dir",
                store_.pip_cache_dir(),
                "--index-url",
                config_.index_url};
    // pip caches downloads only from https:// or trusted hosts; a plain-http
    // mirror has no TLS to check, and the operator chose it.
    if (auto host = http_host(config_.index_url); !host.empty()) {
      pip.args.insert(pip.args.end(), {"--trusted-host", host});
    }
    if (config_.only_binary) pip.args.emplace_back("--only-binary=:all:");
    if (config_.require_hashes) pip.args.emplace_back("--require-hashes");
    pip.args.insert(pip.args.end(), extra);
    pip.args.insert(pip.args.end(), {"-r", req_file});
    return pip;
  };

  // 2a. Resolve first: caps.max_packages counts what would really be
  // installed, dependencies included, before anything is.
  if (pip_supports_dry_run(req.python.pip_version)) {
    log(note("resolving the requirements (nothing is installed yet)"));
    std::vector<std::string> would_install;
    auto collect = [&](std::string_view line) {
      constexpr std::string_view kWould = "Would install ";
      if (line.substr(0, kWould.size()) == kWould) {
        std::string rest(line.substr(kWould.size()));
        std::istringstream words(rest);
        for (std::string w; words >> w;)
          would_install.push_back(w);
      }
      stream(line);
    };
    r = runner_(pip_command({"--dry-run"}), req.deadline, collect, {});
    if (!r.ok()) {
      std::string why = describe(r, "resolving the requirements", req.deadline_reason);
      if (!first_error.empty() && !r.timed_out) why += ": " + first_error;
      return fail_run(why, r);
    }
    if (static_cast<int>(would_install.size()) > config_.caps.max_packages) {
      return fail("the requirements would install " + std::to_string(would_install.size()) +
                  " packages, over caps.max_packages (" +
                  std::to_string(config_.caps.max_packages) + ")");
    }
  } else {
    log(note("pip " + req.python.pip_version +
             " cannot resolve without installing; caps.max_packages is checked after the install"));
  }

  // 2b. Install, watching the venv's size and file count while pip runs
  // (one walk of the tree, at most once a second).
  const std::int64_t cap_bytes = config_.caps.max_venv_mb * 1024 * 1024;
  const std::int64_t cap_files = config_.caps.max_venv_files;
  const std::string files_cap =
      "caps.max_venv_files (" + std::to_string(config_.caps.max_venv_files) + " files)";
  auto next_measure = std::chrono::steady_clock::now();
  PollHook watch_size = [&]() -> std::string {
    auto now = std::chrono::steady_clock::now();
    if (now < next_measure) return {};
    next_measure = now + std::chrono::seconds(1);
    auto usage = measure_tree(venv, cap_files);
    if (!usage) return "cannot measure the venv during the install: " + usage.error();
    if (usage->over) return "the venv grew past " + files_cap + " during the install";
    if (usage->bytes > cap_bytes) {
      return "the venv grew past caps.max_venv_mb (" + std::to_string(config_.caps.max_venv_mb) +
             " MB) during the install";
    }
    return {};
  };
  r = runner_(pip_command({}), req.deadline, stream, watch_size);
  if (!r.ok()) {
    std::string why = describe(r, "pip install", req.deadline_reason);
    if (!first_error.empty() && !r.timed_out && r.stopped_because.empty())
      why += ": " + first_error;
    return fail_run(why, r);
  }

  // 3. What got installed, read from the dist-info directories: no
  // interpreter of the venv starts once pip has installed anything (a
  // wheel's .pth would run in it, and bin/python3 may be a wheel's). Then
  // the venv is checked against what venv made, and measured.
  auto contents = inspect_venv(venv, *created, req.python.version_short, cap_files);
  if (!contents) return fail(contents.error());
  if (contents->usage.over) return fail("the venv holds more files than " + files_cap);
  std::vector<std::string> installed = installed_list(contents->distributions);

  std::int64_t size = contents->usage.bytes;
  if (size > cap_bytes) {
    return fail("the venv is " + std::to_string(size / (std::int64_t{1024} * 1024)) +
                " MB, over caps.max_venv_mb (" + std::to_string(config_.caps.max_venv_mb) + " MB)");
  }
  if (static_cast<int>(installed.size()) > config_.caps.max_packages) {
    return fail("pip installed " + std::to_string(installed.size()) +
                " packages, over caps.max_packages (" + std::to_string(config_.caps.max_packages) +
                ")");
  }

  result.ok = true;
  Record& rec = result.record;
  rec.key = req.key;
  for (const auto& q : req.requirements)
    rec.requested.push_back(q.canonical);
  rec.installed = std::move(installed);
  rec.python = req.python.version;
  rec.python_path = req.python.real_path;
  rec.pip = req.python.pip_version;
  rec.index_url = redact_credentials(config_.index_url);  // records are world-readable
  rec.only_binary = config_.only_binary;
  rec.built_at = static_cast<std::int64_t>(std::time(nullptr));
  rec.build_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  rec.size_bytes = size;
  rec.interpreter_dev = made.st_dev;
  rec.interpreter_ino = made.st_ino;
  return result;
}

}  // namespace clsi::venv
