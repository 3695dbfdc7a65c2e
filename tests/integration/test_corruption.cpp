// Crash and corruption, survived (issue 11), end to end: clsi-runner with the
// plugin, the build service (clsi-venvs serve), real python and pip, and a
// wheel index the tests build themselves.
//
//  1. Every kind of file and directory the store keeps, corrupted in turn in
//     every way (emptied, cut in half, garbage, a directory, a FIFO, a
//     symlink to something elsewhere, deleted): the compile neither hangs nor
//     fails, says what it did, `clsi-venvs list`, `stats` and `gc` go on
//     working for the rest of the store, and the store heals (the next
//     compile gets a working venv).
//  2. A FIFO at logs/<key>.log when the key is built.
//  3. Text from the index (metadata, yank reasons) and echoed requirement
//     lines cannot forge a line of output.log.
//  4. Random kills (clsi-runner while it waits for a build, pip, the
//     service) and corruptions, with invariants after every step; the seed
//     is printed and CLSI_CORRUPTION_SEED replays a run.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "service_client.hpp"
#include "venv_world.hpp"

namespace fs = std::filesystem;
using Catch::Contains;
using testenv::VenvWorld;

namespace {

using Clock = std::chrono::steady_clock;

const std::string kVenvsTool = std::string(CLSI_BUILD_DIR) + "/bin/clsi-venvs";
// clsi-runner --timeout of every compile here; the plugin waits for a build
// until this minus render_reserve_s.
constexpr int kCompileTimeoutS = 40;
const std::vector<std::string> kConfig = {"render_reserve_s: 10", "retry_failed_after_s: 3600"};

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// The "render": says which interpreter runs it, whether `module` imports and
// from where, and which python3 kernelspec Jupyter would start (the first
// kernels/python3/kernel.json on its data path, as jupyter_client finds it).
std::string render_code(const std::string& module, double hold_s = 0) {
  std::string c = "import json, os, sys, time\n";
  if (!module.empty()) {
    c += "try:\n"
         "    import " +
         module +
         "\n"
         "    print('RENDER imported " +
         module + " from', " + module +
         ".__file__, flush=True)\n"
         "except ImportError:\n"
         "    print('RENDER without " +
         module + "')\n";
  }
  c += "spec = None\n"
       "dirs = [d for d in os.environ.get('JUPYTER_PATH', '').split(':') if d]\n"
       "dirs += [sys.prefix + '/share/jupyter', '/usr/local/share/jupyter', "
       "'/usr/share/jupyter']\n"
       "for d in dirs:\n"
       "    f = os.path.join(d, 'kernels', 'python3', 'kernel.json')\n"
       "    if os.path.isfile(f):\n"
       "        try:\n"
       "            spec = json.load(open(f))['argv'][0]\n"
       "        except Exception:\n"
       "            spec = 'unreadable ' + f\n"
       "        break\n"
       "print('KERNEL', spec)\n";
  if (hold_s > 0) {
    c += "time.sleep(" + std::to_string(hold_s) +
         ")\n"
         "print('RENDER venv intact' if os.path.isdir(sys.prefix) and "
         "os.path.exists(sys.executable) else 'RENDER venv GONE', flush=True)\n";
  }
  return c;
}

std::vector<std::string> runner_argv(const VenvWorld& w, const std::string& dir,
                                     const std::string& code, int timeout_s = kCompileTimeoutS) {
  auto argv = w.runner_argv(dir, true, code, {"--timeout", std::to_string(timeout_s)});
  auto dash = std::find(argv.begin(), argv.end(), "--");
  dash[1] = "/bin/sh";  // by path: the render needs no PATH lookup
  return argv;
}

struct Compiled {
  std::string log;  // output.log, then clsi-runner's own output
  int status = -1;
  double seconds = 0;
};

Compiled compile(const VenvWorld& w, const std::string& dir, const std::string& module,
                 int timeout_s = kCompileTimeoutS) {
  auto start = Clock::now();
  const std::size_t before = testenv::file_size(dir + "/output.log");  // the runner appends
  auto r =
      testenv::run(runner_argv(w, dir, render_code(module), timeout_s), {}, "", timeout_s + 30);
  Compiled c;
  c.seconds = seconds_since(start);
  c.status = r.status;
  c.log = testenv::read_file_from(dir + "/output.log", before) + r.output;
  return c;
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);)
    out.push_back(l);
  return out;
}

// The value after `prefix` on the first line that starts with it; nullopt if none.
std::optional<std::string> line_value(const std::string& log, const std::string& prefix) {
  for (const auto& l : lines_of(log))
    if (l.rfind(prefix, 0) == 0) return l.substr(prefix.size());
  return std::nullopt;
}

// What a compile did, judged from its output.log: it used a venv of the
// store (then that venv's python ran the render, imported `module` from the
// venv, and Jupyter would start the venv's kernel) or it fell back with a
// reason. Anything else is a problem; so are a failed or hung compile and an
// exception inside the plugin.
struct Verdict {
  bool used_venv = false;
  bool fell_back = false;
  std::string venv;  // the venv's directory, when used
  std::vector<std::string> problems;
};

Verdict judge(const VenvWorld& w, const Compiled& c, const std::string& module,
              int timeout_s = kCompileTimeoutS) {
  Verdict v;
  auto problem = [&](const std::string& p) { v.problems.push_back(p); };
  if (c.status != 0) problem("the compile exited " + std::to_string(c.status));
  if (c.seconds > timeout_s + 2) problem("the compile took " + std::to_string(c.seconds) + " s");
  bool said = false;
  for (const auto& l : lines_of(c.log))
    said = said || l.rfind("[python-venv] ", 0) == 0;
  if (!said) problem("the plugin said nothing");
  for (const char* bad : {"failed unexpectedly", "stopped without finishing"})
    if (c.log.find(bad) != std::string::npos) problem(std::string("the log says '") + bad + "'");
  auto python = line_value(c.log, "render python: ");
  if (!python) {
    problem("the render did not run");
    return v;
  }
  const std::string envs = w.venvs + "/envs/";
  v.fell_back = c.log.find("the render runs on the base interpreter") != std::string::npos;
  v.used_venv = python->rfind(envs, 0) == 0;
  if (v.used_venv == v.fell_back)
    problem(v.used_venv ? "it both used a venv and fell back"
                        : "it neither used a venv nor fell back");
  if (v.used_venv) {
    v.venv = python->substr(0, python->size() - std::string("/bin/python3").size());
    if (c.log.find("reusing environment") == std::string::npos &&
        c.log.find(" is ready") == std::string::npos)
      problem("it used a venv without saying so");
    if (!module.empty() &&
        c.log.find("RENDER imported " + module + " from " + v.venv + "/") == std::string::npos)
      problem("the venv's python did not import " + module + " from the venv");
    if (c.log.find("KERNEL " + v.venv + "/bin/python3\n") == std::string::npos)
      problem("Jupyter would not start the venv's kernel (" +
              line_value(c.log, "KERNEL ").value_or("no KERNEL line") + ")");
  } else if (*python != "base") {
    problem("the render ran on " + *python);
  }
  return v;
}

testenv::CommandResult venvs_tool(const VenvWorld& w, std::vector<std::string> args,
                                  int timeout_s = 20) {
  args.insert(args.begin(), kVenvsTool);
  args.insert(args.begin() + 2, {"--config", w.config});
  return testenv::run(args, {}, "", timeout_s);
}

// list, stats and gc (and list --json) exit 0 in time; `keep` are keys that
// must still be listed as complete afterwards.
std::vector<std::string> admin_problems(const VenvWorld& w, const std::vector<std::string>& keep) {
  std::vector<std::string> problems;
  for (const auto& args : std::vector<std::vector<std::string>>{{"list"},
                                                                {"stats"},
                                                                {"stats", "--json"},
                                                                {"stats", "--prometheus"},
                                                                {"gc"},
                                                                {"list", "--json"}}) {
    auto r = venvs_tool(w, args);
    std::string what = "clsi-venvs";
    for (const auto& a : args)
      what += " " + a;
    if (r.status != 0) {
      problems.push_back(what + " exited " + std::to_string(r.status) + ": " + r.output);
      continue;
    }
    if (args[0] == "list" && args.size() == 2) {
      for (const auto& k : keep)
        // Whatever the JSON's layout: "key" and then its "state".
        if (!std::regex_search(r.output,
                               std::regex("\"key\": \"" + k + "\",\\s*\"state\": \"complete\"")))
          problems.push_back(what + " does not list " + k + " as complete: " + r.output);
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------
// Corruptions

enum class Harm {
  kEmptied,       // a file truncated to 0 bytes; a directory emptied
  kHalf,          // truncated half-way
  kGarbage,       // overwritten with garbage; a directory: replaced by such a file
  kDirectory,     // replaced by a (non-empty) directory
  kFifo,          // replaced by a FIFO
  kSymlink,       // replaced by a symlink to a file elsewhere (with the same content)
  kSymlinkToDir,  // a directory: replaced by a symlink to a copy of it elsewhere
  kDeleted,
};

const char* harm_name(Harm h) {
  switch (h) {
    case Harm::kEmptied:
      return "emptied";
    case Harm::kHalf:
      return "truncated half-way";
    case Harm::kGarbage:
      return "garbage";
    case Harm::kDirectory:
      return "replaced by a directory";
    case Harm::kFifo:
      return "replaced by a FIFO";
    case Harm::kSymlink:
      return "replaced by a symlink to a file elsewhere";
    case Harm::kSymlinkToDir:
      return "replaced by a symlink to a copy elsewhere";
    case Harm::kDeleted:
      return "deleted";
  }
  return "?";
}

const std::vector<Harm> kFileHarms = {Harm::kEmptied,   Harm::kHalf, Harm::kGarbage,
                                      Harm::kDirectory, Harm::kFifo, Harm::kSymlink,
                                      Harm::kDeleted};
const std::vector<Harm> kDirHarms = {Harm::kEmptied, Harm::kGarbage,      Harm::kFifo,
                                     Harm::kSymlink, Harm::kSymlinkToDir, Harm::kDeleted};

// Bytes no parser of the store accepts: NUL, newlines, invalid UTF-8, ESC,
// something that looks like YAML and a key.
std::string garbage(std::size_t n) {
  const std::string seed =
      std::string("\0\n\xff\xfe\x1b[2J key: ", 13) + std::string(64, 'f') + "\n: - [\n\r\t\x85";
  std::string out;
  while (out.size() < std::max<std::size_t>(n, 64))
    out += seed;
  return out.substr(0, std::max<std::size_t>(n, 64));
}

// Applies `h` to `path`. Never writes through a symlink that is there (the
// venv's bin/python3 points at the system's interpreter): a symlink is
// replaced by a regular file instead.
void corrupt(const std::string& path, Harm h, const std::string& elsewhere) {
  static std::atomic<int> n{0};
  struct stat st {};
  const bool exists = ::lstat(path.c_str(), &st) == 0;
  const bool regular = exists && S_ISREG(st.st_mode);
  const bool dir = exists && S_ISDIR(st.st_mode);
  const std::string content = regular ? testenv::read_file(path) : "";
  auto remove = [&] {
    std::error_code ec;
    fs::remove_all(path, ec);
  };
  auto write_regular = [&](const std::string& text) {
    if (regular) {  // in place: same inode (a lock file keeps its locks)
      int fd = ::open(path.c_str(), O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
      if (fd >= 0) {
        (void)!::write(fd, text.data(), text.size());
        ::close(fd);
      }
    } else {
      remove();
      testenv::write_file(path, text);
    }
  };
  const std::string other =
      elsewhere + "/" + std::to_string(++n) + "-" + fs::path(path).filename().string();
  switch (h) {
    case Harm::kEmptied:
      if (dir) {
        remove();
        ::mkdir(path.c_str(), 0755);
      } else {
        write_regular("");
      }
      break;
    case Harm::kHalf:
      write_regular(content.substr(0, content.size() / 2));
      break;
    case Harm::kGarbage:
      write_regular(garbage(content.size()));
      break;
    case Harm::kDirectory:
      remove();
      ::mkdir(path.c_str(), 0755);
      testenv::write_file(path + "/x", "x");
      break;
    case Harm::kFifo:
      remove();
      ::mkfifo(path.c_str(), 0644);
      break;
    case Harm::kSymlink:
      testenv::write_file(other, regular ? content : garbage(64));
      remove();
      (void)!::symlink(other.c_str(), path.c_str());
      break;
    case Harm::kSymlinkToDir:
      (void)testenv::run({"cp", "-a", path, other});
      remove();
      (void)!::symlink(other.c_str(), path.c_str());
      break;
    case Harm::kDeleted:
      remove();
      break;
  }
}

// A store with every kind of file in it, and a pristine copy to go back to.
struct Pristine {
  VenvWorld w;
  std::string snapshot = w.tmp / "pristine";
  std::string elsewhere = w.tmp / "elsewhere";
  std::string alpha_dir, gamma_dir, fail_dir;  // projects
  std::string a, gamma, f;  // keys: alpha (the victim), gamma (a bystander), a failure
  std::string key_entry_a;  // keys/<fnv> of alpha
  std::string probe;        // probes/<fnv>
  std::string setup_error;
  std::size_t log_offset = 0;  // where this case's part of the service's log starts

  Pristine() {
    ::mkdir(elsewhere.c_str(), 0755);
    w.configure(kConfig);
    alpha_dir = w.project("alpha\n");
    gamma_dir = w.project("gamma\n");
    fail_dir = w.project("no-such-package==9.9\n");
    for (const auto& [dir, module] : std::vector<std::pair<std::string, std::string>>{
             {alpha_dir, "alpha"}, {alpha_dir, "alpha"}, {gamma_dir, "gamma"}, {fail_dir, ""}}) {
      auto c = compile(w, dir, module);
      if (c.status != 0) setup_error += "setup compile failed: " + c.log;
    }
    for (const auto& k : w.env_dirs()) {
      const auto requested = testenv::record_of(w.venvs, k).requested;
      if (requested == std::vector<std::string>{"alpha"}) a = k;
      if (requested == std::vector<std::string>{"gamma"}) gamma = k;
    }
    auto failures = testenv::list_dir(w.venvs + "/failures");
    if (failures.size() == 1) f = failures[0];
    for (const auto& e : testenv::list_dir(w.venvs + "/keys"))
      if (testenv::read_file(w.venvs + "/keys/" + e).find("\nrequirements:\nalpha\n") !=
          std::string::npos)
        key_entry_a = "keys/" + e;
    auto probes = testenv::list_dir(w.venvs + "/probes");
    if (probes.size() == 1) probe = "probes/" + probes[0];
    if (a.empty() || gamma.empty() || f.empty() || key_entry_a.empty() || probe.empty())
      setup_error += "the pristine store is not what the test expects";
    w.service.reset();
    if (testenv::run({"cp", "-a", w.venvs, snapshot}).status != 0)
      setup_error += "cannot copy the store";
  }

  // Back to the pristine store, with a freshly started service.
  void restore() {
    w.service.reset();
    std::error_code ec;
    fs::remove_all(w.venvs, ec);
    (void)testenv::run({"cp", "-a", snapshot, w.venvs});
    log_offset = testenv::read_file(w.tmp / "service.log").size();
    w.start_service();
  }
};

// What is corrupted, and which compile meets it.
struct Target {
  std::string name;
  std::function<std::string(const Pristine&)> rel;  // path under the store
  bool dir = false;
  enum Asks { kAlpha, kNewKey, kFailing } asks = kAlpha;  // what the compiles after it ask for
  bool rebuild_alpha = false;    // alpha's record is removed first, so alpha is rebuilt
  bool restart_service = false;  // the service is restarted on the corrupted store
};

std::vector<Target> store_targets() {
  using P = const Pristine&;
  const std::string kernelspec = "/share/jupyter/kernels/python3/kernel.json";
  return {
      {"probe file", [](P p) { return p.probe; }},
      {"key-cache entry", [](P p) { return p.key_entry_a; }},
      {"completion record", [](P p) { return "envs/" + p.a + ".complete"; }},
      {"kernelspec", [kernelspec](P p) { return "envs/" + p.a + kernelspec; }},
      {"the venv's bin/python3", [](P p) { return "envs/" + p.a + "/bin/python3"; }},
      {"lock file", [](P p) { return "locks/" + p.a + ".lock"; }},
      {"failure record", [](P p) { return "failures/" + p.f; }, false, Target::kFailing},
      {"build log", [](P p) { return "logs/" + p.a + ".log"; }, false, Target::kAlpha, true},
      {"events.log", [](P) { return "events.log"; }},
      {"service.lock", [](P) { return "service.lock"; }, false, Target::kAlpha, false, true},
      {"the venv directory", [](P p) { return "envs/" + p.a; }, true},
      {"envs/", [](P) { return "envs"; }, true},
      {"locks/", [](P) { return "locks"; }, true},
      {"probes/", [](P) { return "probes"; }, true},
      {"keys/", [](P) { return "keys"; }, true},
      {"failures/", [](P) { return "failures"; }, true, Target::kNewKey},
      {"logs/", [](P) { return "logs"; }, true, Target::kNewKey},
      {"tmp/", [](P) { return "tmp"; }, true, Target::kNewKey},
      {"trash/", [](P) { return "trash"; }, true, Target::kAlpha, true},
      {"cache/pip/", [](P) { return "cache/pip"; }, true, Target::kNewKey},
  };
}

struct CaseResult {
  std::string name;
  std::vector<std::string> problems;
  std::string transcript;
  double seconds = 0;
};

std::string clip(const std::string& s, std::size_t n = 6000) {
  return s.size() <= n ? s : s.substr(0, n / 2) + "\n[...]\n" + s.substr(s.size() - n / 2);
}

CaseResult run_case(Pristine& p, const Target& t, Harm h) {
  CaseResult r;
  r.name = t.name + ", " + harm_name(h);
  auto start = Clock::now();
  auto problem = [&](const std::string& what) { r.problems.push_back(what); };
  try {
    p.restore();
    if (t.rebuild_alpha) ::unlink((p.w.venvs + "/envs/" + p.a + ".complete").c_str());
    corrupt(p.w.venvs + "/" + t.rel(p), h, p.elsewhere);
    if (t.restart_service) {
      try {
        p.w.start_service();
      } catch (const std::exception& e) {
        problem(std::string("the service does not start: ") + e.what());
      }
    }
    std::string reqs = "alpha\n";
    std::string module = "alpha";
    if (t.asks == Target::kNewKey) {
      reqs = "gamma==0.3\n";
      module = "gamma";
    } else if (t.asks == Target::kFailing) {
      reqs = "no-such-package==9.9\n";
      module = "";
    }
    auto dir = p.w.project(reqs);
    for (int round = 1; round <= 2; ++round) {
      auto c = compile(p.w, dir, module);
      auto v = judge(p.w, c, module);
      r.transcript += "--- compile " + std::to_string(round) + " (" + std::to_string(c.seconds) +
                      " s):\n" + clip(c.log, 3000);
      for (const auto& x : v.problems)
        problem("compile " + std::to_string(round) + ": " + x);
      if (round == 1) {
        std::vector<std::string> keep;
        if (t.rel(p) != "envs") keep.push_back(p.gamma);
        for (const auto& x : admin_problems(p.w, keep))
          problem("after compile 1: " + x);
      }
      if (round == 2 && t.asks != Target::kFailing && !v.used_venv)
        problem("the store did not heal: the second compile got no venv");
      if (t.asks == Target::kFailing && v.used_venv) problem("a failing key got a venv");
    }
    if (t.asks != Target::kAlpha) {
      auto c = compile(p.w, p.w.project("alpha\n"), "alpha");
      auto v = judge(p.w, c, "alpha");
      r.transcript += "--- alpha afterwards:\n" + clip(c.log, 2000);
      for (const auto& x : v.problems)
        problem("alpha afterwards: " + x);
      if (!v.used_venv) problem("alpha afterwards got no venv");
    }
  } catch (const std::exception& e) {
    problem(std::string("exception: ") + e.what());
  }
  if (!r.problems.empty() && p.w.service)
    r.transcript += "--- service log:\n" + clip(p.w.service->log().substr(p.log_offset), 3000);
  r.seconds = seconds_since(start);
  return r;
}

}  // namespace

TEST_CASE("corruption: each store file, corrupted in turn, never fails a compile and heals",
          "[corruption][store]") {
  struct Case {
    Target target;
    Harm harm;
  };
  std::vector<Case> cases;
  for (const auto& t : store_targets())
    for (Harm h : t.dir ? kDirHarms : kFileHarms) {
      // tmp/ and trash/ are empty between builds: emptying them is no harm.
      if (h == Harm::kEmptied && (t.name == "tmp/" || t.name == "trash/")) continue;
      // bin/python3 is a symlink: emptied, cut and garbage are all the same
      // regular file in its place.
      if ((h == Harm::kEmptied || h == Harm::kHalf) && t.name == "the venv's bin/python3") continue;
      cases.push_back({t, h});
    }
  if (const char* only = std::getenv("CLSI_CORRUPTION_ONLY")) {  // e.g. "lock file"
    cases.erase(std::remove_if(cases.begin(), cases.end(),
                               [&](const Case& c) {
                                 return (c.target.name + ", " + harm_name(c.harm)).find(only) ==
                                        std::string::npos;
                               }),
                cases.end());
  }
  // Two stores, each with its own service, share the cases: a build per
  // case is what takes the time.
  constexpr int kWorkers = 2;
  std::vector<CaseResult> results(cases.size());
  std::vector<std::string> setup_errors(kWorkers);
  std::atomic<std::size_t> next{0};
  auto start = Clock::now();
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([&, i] {
      try {
        Pristine p;
        if (!p.setup_error.empty()) {
          setup_errors[i] = p.setup_error;
          return;
        }
        for (std::size_t k; (k = next++) < cases.size();)
          results[k] = run_case(p, cases[k].target, cases[k].harm);
      } catch (const std::exception& e) {
        setup_errors[i] = e.what();
      }
    });
  }
  for (auto& t : workers)
    t.join();
  for (const auto& e : setup_errors)
    REQUIRE(e.empty());
  for (const auto& r : results) {
    if (std::getenv("CLSI_CORRUPTION_VERBOSE")) std::cout << r.seconds << " s: " << r.name << "\n";
    INFO("case: " << r.name << " (" << r.seconds << " s)\n" << r.transcript);
    std::string problems;
    for (const auto& x : r.problems)
      problems += "  " + x + "\n";
    INFO("problems:\n" << problems);
    CHECK(r.problems.empty());
  }
  std::cout << "[corruption] " << cases.size() << " corruptions in " << seconds_since(start)
            << " s\n";
}

TEST_CASE("corruption: a last-used stamp in the future or at 0 breaks neither a hit nor the admin",
          "[corruption][stamp]") {
  VenvWorld w;
  w.configure(kConfig);
  auto first = compile(w, w.project("alpha\n"), "alpha");
  REQUIRE(judge(w, first, "alpha").used_venv);
  REQUIRE(w.env_dirs().size() == 1);
  const std::string key = w.env_dirs()[0];
  const std::string record = w.venvs + "/envs/" + key + ".complete";
  for (std::time_t stamp : {std::time_t{4102444800} /* 2100 */, std::time_t{0}}) {
    INFO("stamp " << stamp);
    timespec times[2] = {{stamp, 0}, {stamp, 0}};
    REQUIRE(::utimensat(AT_FDCWD, record.c_str(), times, 0) == 0);
    auto list = venvs_tool(w, {"list", "--json"});
    INFO(list.output);
    CHECK(list.status == 0);
    CHECK_THAT(list.output, !Contains("2100-"));  // a stamp from the future counts as now
    auto admin = admin_problems(w, {key});
    std::string text;
    for (const auto& a : admin)
      text += a + "\n";
    INFO(text);
    CHECK(admin.empty());
    auto c = compile(w, w.project("alpha\n"), "alpha");
    INFO(c.log);
    auto v = judge(w, c, "alpha");
    CHECK(v.problems.empty());
    CHECK(v.used_venv);
    // The use reached the service, which stamped it again.
    struct stat st {};
    REQUIRE(::stat(record.c_str(), &st) == 0);
    CHECK(std::llabs(static_cast<long long>(st.st_mtim.tv_sec - std::time(nullptr))) < 60);
  }
}

namespace {

// ---------------------------------------------------------------------------
// Processes

struct Proc {
  int pid = 0;
  int ppid = 0;
  std::string cmdline;  // NULs as spaces
  std::string cwd;
};

std::vector<Proc> live_processes() {
  std::vector<Proc> out;
  for (const auto& e : testenv::list_dir("/proc")) {
    if (e.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string stat = testenv::read_file("/proc/" + e + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos || close + 4 > stat.size() || stat[close + 2] == 'Z') continue;
    Proc p;
    p.pid = std::stoi(e);
    p.ppid = std::atoi(stat.c_str() + close + 4);
    p.cmdline = testenv::read_file("/proc/" + e + "/cmdline");
    std::replace(p.cmdline.begin(), p.cmdline.end(), '\0', ' ');
    std::error_code ec;
    p.cwd = fs::read_symlink("/proc/" + e + "/cwd", ec).string();
    out.push_back(std::move(p));
  }
  return out;
}

// Processes that mention the test's directory (in their command line or as
// their working directory), other than `keep` and their descendants (the
// service and the builds it runs) and the index server.
std::vector<std::string> strays(const VenvWorld& w, const std::vector<int>& keep) {
  auto procs = live_processes();
  std::map<int, int> parent;
  for (const auto& p : procs)
    parent[p.pid] = p.ppid;
  auto kept = [&](int pid) {
    for (int hops = 0; pid > 1 && hops < 64; ++hops, pid = parent.count(pid) ? parent[pid] : 0)
      if (std::find(keep.begin(), keep.end(), pid) != keep.end()) return true;
    return false;
  };
  std::vector<std::string> out;
  const std::string& root = w.tmp.path();
  for (const auto& p : procs) {
    if (p.pid == ::getpid() || kept(p.pid)) continue;
    if (p.cmdline.find("serve_index.py") != std::string::npos) continue;
    if (p.cmdline.find(root) != std::string::npos || p.cwd.rfind(root, 0) == 0)
      out.push_back(std::to_string(p.pid) + " (parent " + std::to_string(p.ppid) +
                    "): " + p.cmdline.substr(0, 300));
  }
  return out;
}

// Waits up to `bound` for strays() to be empty; returns what is left.
std::vector<std::string> strays_after(const VenvWorld& w, const std::vector<int>& keep,
                                      std::chrono::milliseconds bound) {
  auto until = Clock::now() + bound;
  for (;;) {
    auto s = strays(w, keep);
    if (s.empty() || Clock::now() >= until) return s;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

std::vector<int> service_pids(const VenvWorld& w) {
  if (w.service && w.service->pid() > 0) return {w.service->pid()};
  return {};
}

std::optional<clsi::Child> spawn_compile(const VenvWorld& w, const std::string& dir,
                                         const std::string& code, const std::string& out_file,
                                         int timeout_s = kCompileTimeoutS) {
  auto argv = runner_argv(w, dir, code, timeout_s);
  clsi::SpawnOptions o;
  o.executable = argv[0];
  o.args.assign(argv.begin() + 1, argv.end());
  o.env = {"PATH=/usr/bin:/bin"};
  clsi::UniqueFd out(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  o.output_fd = out.get();
  std::error_code ec;
  return clsi::Child::spawn(o, ec);
}

// Waits for `child` at most `bound`; nullopt (and the child killed) when it
// did not end in time.
std::optional<int> wait_bounded(clsi::Child& child, std::chrono::milliseconds bound) {
  auto until = Clock::now() + bound;
  while (Clock::now() < until) {
    if (auto ws = child.try_wait()) return clsi::Child::shell_status(*ws);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  child.terminate(std::chrono::milliseconds(100));
  return std::nullopt;
}

}  // namespace

TEST_CASE("corruption: a FIFO at logs/<key>.log when the key is built does not block the build",
          "[corruption][fifo]") {
  VenvWorld w;
  w.configure(kConfig);
  // The key, from a first build; then the venv goes, so the next compile
  // builds it again, meeting the FIFO.
  auto first = compile(w, w.project("gamma\n"), "gamma");
  INFO(first.log);
  REQUIRE(judge(w, first, "gamma").used_venv);
  REQUIRE(w.env_dirs().size() == 1);
  const std::string key = w.env_dirs()[0];
  REQUIRE(venvs_tool(w, {"remove", key}).status == 0);
  REQUIRE(w.env_dirs().empty());
  const std::string fifo = w.venvs + "/logs/" + key + ".log";
  ::unlink(fifo.c_str());
  REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);

  std::optional<clsi::Child> reader;
  SECTION("nobody has the FIFO open") {}
  SECTION("a reader holds the FIFO open and never reads") {
    // Opened read-write, so the open does not wait for a writer.
    clsi::SpawnOptions o;
    o.executable = "/bin/sh";
    o.args = {"-c", "exec 3<>\"$0\"; exec sleep 300", fifo};
    o.output_fd = 2;
    std::error_code ec;
    reader = clsi::Child::spawn(o, ec);
    REQUIRE(reader);
  }
  auto dir = w.project("gamma\n");
  for (int round = 1; round <= 2; ++round) {
    auto c = compile(w, dir, "gamma");
    INFO("compile " << round << " (" << c.seconds << " s):\n" << c.log);
    auto v = judge(w, c, "gamma");
    std::string problems;
    for (const auto& p : v.problems)
      problems += p + "\n";
    INFO(problems);
    CHECK(v.problems.empty());
    CHECK(c.seconds < kCompileTimeoutS);
    // The build does not need its log: it succeeds (or, on a slow machine,
    // the first compile says the build goes on in the background).
    if (round == 2) CHECK(v.used_venv);
  }
  if (reader) reader->terminate(std::chrono::milliseconds(100));
  struct stat st {};
  CHECK((::lstat(fifo.c_str(), &st) == 0 && S_ISFIFO(st.st_mode)));  // never written through
  auto left = strays_after(w, service_pids(w), std::chrono::seconds(5));
  std::string what;
  for (const auto& s : left)
    what += s + "\n";
  INFO("processes left behind:\n" << what);
  CHECK(left.empty());
}

namespace {

// Builds an index in `dir` whose text is hostile: a yank reason (PEP 592,
// data-yanked) and METADATA Name and Summary fields holding ESC sequences,
// BEL, \v, \r, U+2028, U+2029, U+0085 and newlines that try to start lines
// a LaTeX log parser would read as errors of ./main.tex.
//   forgesum  1.0: a proper Name, hostile Summary; yanked for a hostile reason
//   forgename 1.0: a hostile Name (the venv's checks refuse it); yanked too
void make_hostile_index(const std::string& dir) {
  const std::string script = R"PY(
import base64, hashlib, html, os, sys, zipfile
out = sys.argv[1]
ESC, LS, PS, NEL, VT = "\x1b", "\u2028", "\u2029", "\x85", "\x0b"
FORGED = ("x" + ESC + "[2K" + ESC + "]0;t\x07" + LS + "./main.tex:7: Undefined control sequence" +
          NEL + "! LaTeX Error: forged" + VT + "./main.tex:8: forged" + PS + "/main.tex:9: forged" +
          "\f./main.tex:10: forged\r./main.tex:11: forged" +
          "\n./main.tex:7: Undefined control sequence\n! Emergency stop.")
def b64(d):
    return base64.urlsafe_b64encode(hashlib.sha256(d).digest()).rstrip(b"=").decode()
def fold(v):  # an RFC 822 continuation, so every line stays in the field
    return v.replace("\r", "\n").replace("\n", "\n ")
def wheel(project, meta_name, summary):
    dist = project + "-1.0.dist-info"
    meta = ("Metadata-Version: 2.1\nVersion: 1.0\nSummary: " + fold(summary) +
            "\nName: " + fold(meta_name) + "\n")
    files = {project + "/__init__.py": b"MESSAGE = 'forge'\n", dist + "/METADATA": meta.encode(),
             dist + "/WHEEL": b"Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\n"
                              b"Tag: py3-none-any\n"}
    rec = "".join("%s,sha256=%s,%d\n" % (p, b64(d), len(d)) for p, d in sorted(files.items()))
    files[dist + "/RECORD"] = (rec + dist + "/RECORD,,\n").encode()
    name = project + "-1.0-py3-none-any.whl"
    os.makedirs(out + "/files", exist_ok=True)
    with zipfile.ZipFile(out + "/files/" + name, "w") as z:
        for p in sorted(files):
            z.writestr(zipfile.ZipInfo(p, (2020, 1, 1, 0, 0, 0)), files[p])
    digest = hashlib.sha256(open(out + "/files/" + name, "rb").read()).hexdigest()
    os.makedirs(out + "/simple/" + project, exist_ok=True)
    with open(out + "/simple/" + project + "/index.html", "w", encoding="utf-8") as f:
        f.write('<!DOCTYPE html><html><body>\n<a href="../../files/%s#sha256=%s" '
                'data-yanked="%s">%s</a>\n</body></html>\n'
                % (name, digest, html.escape(FORGED, quote=True), name))
wheel("forgesum", "forgesum", "a summary " + FORGED)
# One line (a folded Name is refused for that alone), still with ESC, \v, \f,
# U+2028, U+2029 and U+0085 in it.
wheel("forgename", "forgename" + FORGED.replace("\r", " ").replace("\n", " "), "a summary " + FORGED)
with open(out + "/simple/index.html", "w") as f:
    f.write('<a href="forgesum/">forgesum</a>\n<a href="forgename/">forgename</a>\n')
)PY";
  const std::string file = dir + ".py";
  testenv::write_file(file, script);
  auto r = testenv::run({testenv::helper_python(), file, dir});
  REQUIRE(r.status == 0);
}

// Lines as a reader other than a '\n' splitter sees them: JavaScript's
// /\r\n|\r|\n|\u2028|\u2029|\u0085/ and Python's str.splitlines (which
// also splits at \v, \f and \x1c-\x1e).
std::vector<std::string> split_like(const std::string& text, const char* pattern) {
  std::vector<std::string> out;
  const std::regex sep(pattern);
  std::sregex_token_iterator it(text.begin(), text.end(), sep, -1);
  for (; it != std::sregex_token_iterator(); ++it)
    out.push_back(*it);
  return out;
}

const char* const kJsLineBreaks = "\r\n|\r|\n|\xe2\x80\xa8|\xe2\x80\xa9|\xc2\x85";
const char* const kPythonLineBreaks =
    "\r\n|\r|\n|\v|\f|\x1c|\x1d|\x1e|\xe2\x80\xa8|\xe2\x80\xa9|\xc2\x85";

// What in output.log a log parser could take for a line the plugin did not
// write: raw controls or separators, a line Overleaf's parser reads as an
// error of another file (`^([./].*):(\d+): (.*)`) or as a TeX error (`^! `).
// The plugin's own annotations name ./requirements.txt and a line of it.
std::vector<std::string> forged_lines(const std::string& log, int requirement_lines) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < log.size(); ++i) {
    auto c = static_cast<unsigned char>(log[i]);
    if ((c < 0x20 && c != '\n' && c != '\t') || c == 0x7f)
      out.push_back("a raw control byte " + std::to_string(c) + " at " + std::to_string(i));
    if (c == 0xc2 && i + 1 < log.size() && static_cast<unsigned char>(log[i + 1]) >= 0x80 &&
        static_cast<unsigned char>(log[i + 1]) <= 0x9f)
      out.push_back("a raw C1 control at " + std::to_string(i));
    if (log.compare(i, 3, "\xe2\x80\xa8") == 0 || log.compare(i, 3, "\xe2\x80\xa9") == 0)
      out.push_back("a raw U+2028/U+2029 at " + std::to_string(i));
  }
  const std::regex annotation(R"(^([./].*):(\d+): (.*))");
  for (const char* breaks : {"\n", kJsLineBreaks, kPythonLineBreaks}) {
    for (const auto& line : split_like(log, breaks)) {
      std::smatch m;
      if (std::regex_search(line, m, annotation)) {
        int n = std::atoi(m[2].str().c_str());
        if (m[1] != "./requirements.txt" || n < 1 || n > requirement_lines)
          out.push_back("an annotation of " + m[1].str() + " line " + m[2].str() + ": " + line);
      }
      if (line.rfind("! ", 0) == 0) out.push_back("a TeX error line: " + line);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("corruption: text from the index or the project cannot forge a line of output.log",
          "[corruption][forge]") {
  VenvWorld w;
  std::string hostile_index = w.tmp / "hostile-index";
  make_hostile_index(hostile_index);
  w.configure(kConfig, "file://" + hostile_index + "/simple/");
  auto check_log = [&](const std::string& what, const std::string& dir, int requirement_lines) {
    auto log = testenv::read_file(dir + "/output.log");
    INFO(what << ":\n" << log);
    auto forged = forged_lines(log, requirement_lines);
    std::string list;
    for (const auto& f : forged)
      list += f + "\n";
    INFO("forged:\n" << list);
    CHECK(forged.empty());
    return log;
  };

  SECTION("a yank reason and a Summary, in a build that succeeds") {
    auto dir = w.project("forgesum==1.0\n");
    auto c = compile(w, dir, "forgesum");
    auto v = judge(w, c, "forgesum");
    CHECK(v.problems.empty());
    CHECK(v.used_venv);
    auto log = check_log("the build", dir, 1);
    // pip's words (its warning with the yank reason) are the operator's: the
    // user sees pip condensed, and the hostile text not at all.
    CHECK_THAT(log, !Contains("Reason for being yanked"));
    CHECK_THAT(log, Contains("\n  forgesum 1.0\n"));
    auto logs = testenv::list_dir(w.venvs + "/logs");
    REQUIRE(logs.size() == 1);
    CHECK_THAT(testenv::read_file(w.venvs + "/logs/" + logs[0]),
               Contains("Reason for being yanked: x"));
  }
  SECTION("a yank reason and a Name the checks refuse, in a build that fails, then remembered") {
    auto dir = w.project("forgename==1.0\n");
    for (int round = 1; round <= 2; ++round) {
      auto c = compile(w, dir, "forgename");
      auto v = judge(w, c, "forgename");
      CHECK(v.problems.empty());
      CHECK(v.fell_back);
      auto log = check_log("compile " + std::to_string(round), dir, 1);
      CHECK_THAT(log, Contains("not a project name"));
      // The reason, remembered with its raw bytes, is escaped when it is told.
      if (round == 2) CHECK_THAT(log, Contains("the last build of environment"));
      CHECK_THAT(log, Contains("\\u2028"));
    }
  }
  SECTION("an echoed requirement line cannot be read as another file's annotation") {
    const std::string reqs =
        "x@y ./main.tex:12: LaTeX Error\n"
        "alpha==1.0 ./main.tex:13: LaTeX Error\n"
        "gamma ; ./main.tex:14: x\n"
        "--index-url ./main.tex:15: LaTeX Error\n";
    auto dir = w.project(reqs);
    auto c = compile(w, dir, "");
    auto v = judge(w, c, "");
    CHECK(v.problems.empty());
    CHECK(v.fell_back);
    auto log = check_log("the refusal", dir, 4);
    CHECK_THAT(log, Contains("./requirements.txt:1: refused:"));
    CHECK_THAT(log, Contains("./main.tex\\x3a12: LaTeX Error"));
  }
}

namespace {

// One step of the random test: what it does, for the report and a replay.
struct Step {
  std::string requirements;
  std::string module;
  enum Kill { kNone, kRunner, kPip, kService, kGcDuringRender } kill = kNone;
  int delay_ms = 0;
  std::string corrupted;  // store path, or ""
  Harm harm = Harm::kGarbage;
};

const char* kill_name(Step::Kill k) {
  switch (k) {
    case Step::kNone:
      return "no kill";
    case Step::kRunner:
      return "SIGKILL clsi-runner while it waits for the build";
    case Step::kPip:
      return "SIGKILL pip";
    case Step::kService:
      return "SIGKILL the service, then restart it";
    case Step::kGcDuringRender:
      return "gc --max-total-mb 0 during the render";
  }
  return "?";
}

// Everything in the store a corruption may hit.
std::vector<std::string> store_entries(const std::string& root) {
  std::vector<std::string> out = {"events.log", "service.lock", "envs", "locks", "probes",   "keys",
                                  "failures",   "logs",         "tmp",  "trash", "cache/pip"};
  for (const char* d : {"envs", "locks", "probes", "keys", "failures", "logs", "tmp"})
    for (const auto& e : testenv::list_dir(root + "/" + d))
      out.push_back(std::string(d) + "/" + e);
  for (const auto& e : testenv::list_dir(root + "/envs")) {
    if (e.find('.') != std::string::npos) continue;
    out.push_back("envs/" + e + "/bin/python3");
    out.push_back("envs/" + e + "/share/jupyter/kernels/python3/kernel.json");
  }
  return out;
}

// tmp/build-* left while the service is idle: a killed build's directory
// that nothing reclaimed.
std::vector<std::string> idle_build_dirs(const VenvWorld& w) {
  auto config = clsi::venv::load_config(w.config.c_str(), [](const char*) { return nullptr; });
  if (!config) return {"cannot load " + w.config};
  auto until = Clock::now() + std::chrono::seconds(30);
  for (;;) {  // builds a killed compile left go on in the service
    auto s = clsi::venv::service_status(*config);
    if (s && s->running == 0 && s->queued == 0) break;
    if (Clock::now() >= until) return {"the service did not become idle"};
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  std::vector<std::string> out;
  for (const auto& e : testenv::list_dir(w.venvs + "/tmp"))
    if (e.rfind("build-", 0) == 0) out.push_back("tmp/" + e);
  return out;
}

std::uint64_t env_number(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::strtoull(v, nullptr, 10) : fallback;
}

}  // namespace

TEST_CASE("corruption: random kills and corruptions, after each step the invariants hold",
          "[corruption][random]") {
  const std::uint64_t seed = env_number("CLSI_CORRUPTION_SEED", std::random_device{}());
  const auto budget = std::chrono::seconds(env_number("CLSI_CORRUPTION_SECONDS", 60));
  std::cout << "[corruption] random kill-and-corrupt test: seed " << seed
            << " (CLSI_CORRUPTION_SEED=" << seed << " replays it), "
            << std::chrono::duration_cast<std::chrono::seconds>(budget).count() << " s\n"
            << std::flush;
  INFO("seed " << seed << " (CLSI_CORRUPTION_SEED=" << seed << " replays this run)");
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<std::uint64_t>(n)); };

  VenvWorld w;
  testenv::IndexServer index(w.index, 60);  // builds long enough for kills to land in pip
  std::vector<std::string> config = kConfig;
  config.insert(config.end(), {"caps:", "  install_timeout_s: 60"});
  w.configure(config, index.url());
  const std::string elsewhere = w.tmp / "elsewhere";
  ::mkdir(elsewhere.c_str(), 0755);
  const std::vector<std::pair<std::string, std::string>> pool = {{"alpha\n", "alpha"},
                                                                 {"gamma\n", "gamma"},
                                                                 {"alpha\ngamma\n", "alpha"},
                                                                 {"beta\n", "beta"},
                                                                 {"gamma<1\n", "gamma"}};

  const auto start = Clock::now();
  int steps = 0;
  int corruptions = 0;
  std::vector<std::string> history;
  while (steps < 3 || Clock::now() - start < budget) {
    ++steps;
    Step s;
    std::tie(s.requirements, s.module) =
        pool[static_cast<std::size_t>(pick(static_cast<int>(pool.size())))];
    s.kill = static_cast<Step::Kill>(pick(5));
    s.delay_ms = pick(2500);
    // A kill needs a build to land in: a requirements set of its own (an
    // exclusion no version matches) makes a new key.
    if (s.kill == Step::kRunner || s.kill == Step::kPip || s.kill == Step::kService) {
      // `gamma<1` takes it as a second specifier: `gamma<1,!=0.0.N`.
      const std::string first_line = s.requirements.substr(0, s.requirements.find('\n'));
      const bool has_specifier = first_line.find_first_of("<>=!~") != std::string::npos;
      s.requirements = first_line + (has_specifier ? ",!=0.0." : "!=0.0.") + std::to_string(steps) +
                       "\n" + s.requirements.substr(first_line.size() + 1);
    }
    // Corruptions hit the store at rest, before the compile: one during a
    // compile could change the venv it is about to use, which is no fault of
    // the plugin's; nor with a render that holds its lease while gc runs.
    if (s.kill != Step::kGcDuringRender && pick(2) == 0) {
      auto entries = store_entries(w.venvs);
      s.corrupted = entries[static_cast<std::size_t>(pick(static_cast<int>(entries.size())))];
      struct stat st {};
      bool dir = ::lstat((w.venvs + "/" + s.corrupted).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
      const auto& harms = dir ? kDirHarms : kFileHarms;
      s.harm = harms[static_cast<std::size_t>(pick(static_cast<int>(harms.size())))];
    }
    std::string what =
        "step " + std::to_string(steps) + ": " +
        s.requirements.substr(0, s.requirements.size() - 1) + ", " + kill_name(s.kill) + " after " +
        std::to_string(s.delay_ms) + " ms" +
        (s.corrupted.empty() ? std::string() : ", " + s.corrupted + " " + harm_name(s.harm));
    for (auto& c : what)
      c = c == '\n' ? '+' : c;
    history.push_back(what);
    std::string& done = history.back();
    INFO(what);

    if (!s.corrupted.empty()) {
      corrupt(w.venvs + "/" + s.corrupted, s.harm, elsewhere);
      ++corruptions;
    }
    auto dir = w.project(s.requirements);
    const double hold = s.kill == Step::kGcDuringRender ? 2.0 : 0;
    auto runner = spawn_compile(w, dir, render_code(s.module, hold), w.tmp / "runner.out");
    REQUIRE(runner);
    const auto began = Clock::now();
    const auto at = began + std::chrono::milliseconds(s.delay_ms);
    auto log = [&] { return testenv::read_file(dir + "/output.log"); };
    bool killed_runner = false;
    std::string gc_output;
    int gc_status = 0;
    // Acts at the chosen moment, or as soon after it as there is something
    // to act on, while the compile runs.
    while (!runner->try_wait().has_value() && s.kill != Step::kNone) {
      const bool due = Clock::now() >= at;
      const std::string l = log();
      if (s.kill == Step::kRunner && due &&
          l.find("asking the build service") != std::string::npos &&
          l.find("render python:") == std::string::npos &&
          l.find(" is ready") == std::string::npos &&
          l.find("the render runs on") == std::string::npos) {
        ::kill(runner->pid(), SIGKILL);  // during pre-compile only: the render has not started
        killed_runner = true;
        done += " [killed]";
        break;
      }
      if (s.kill == Step::kPip && due) {
        bool hit = false;
        for (const auto& p : live_processes())
          if (p.cmdline.find(w.venvs + "/envs/") != std::string::npos && testenv::is_pip(p.pid))
            hit = ::kill(p.pid, SIGKILL) == 0 || hit;
        if (hit) {
          done += " [killed]";
          break;
        }
      }
      if (s.kill == Step::kService && due) {
        w.service->kill_now();
        done += " [killed]";
        std::this_thread::sleep_for(std::chrono::milliseconds(pick(800)));
        try {
          w.start_service();
        } catch (const std::exception& e) {
          FAIL_CHECK("the service does not start again: " << e.what());
        }
        break;
      }
      if (s.kill == Step::kGcDuringRender && l.find("RENDER imported") != std::string::npos) {
        auto gc = venvs_tool(w, {"gc", "--max-total-mb", "0"});
        gc_status = gc.status;
        gc_output = gc.output;
        done += " [gc ran]";
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto status = wait_bounded(*runner, std::chrono::seconds(kCompileTimeoutS + 15));
    Compiled c;
    c.log = log();
    c.status = status.value_or(-1);
    c.seconds = seconds_since(began);
    INFO("the compile (" << c.seconds << " s):\n" << c.log);
    CHECK(status.has_value());  // it ended, within its timeout (and a margin)
    if (killed_runner) {
      CHECK(c.status == 128 + SIGKILL);
    } else {
      auto v = judge(w, c, s.module);
      std::string problems;
      for (const auto& p : v.problems)
        problems += p + "\n";
      INFO("problems:\n" << problems);
      CHECK(v.problems.empty());
      if (s.kill == Step::kGcDuringRender) {
        INFO("gc:\n" << gc_output);
        CHECK(gc_status == 0);
        if (v.used_venv) CHECK_THAT(c.log, Contains("RENDER venv intact"));
        CHECK_THAT(c.log, !Contains("RENDER venv GONE"));
      }
    }
    // Nothing of a killed compile is left running (builds go on in the service).
    auto left = strays_after(w, service_pids(w), std::chrono::seconds(5));
    std::string left_text;
    for (const auto& p : left)
      left_text += p + "\n";
    INFO("processes left behind:\n" << left_text);
    CHECK(left.empty());
    // The next compile of the same requirements: exits 0 in time, says what it did.
    auto next = compile(w, w.project(s.requirements), s.module);
    {
      INFO("the next compile (" << next.seconds << " s):\n" << next.log);
      auto v = judge(w, next, s.module);
      std::string problems;
      for (const auto& p : v.problems)
        problems += p + "\n";
      INFO("problems:\n" << problems);
      CHECK(v.problems.empty());
    }
    // The admin commands work on whatever the store is now.
    auto admin = admin_problems(w, {});
    std::string admin_text;
    for (const auto& p : admin)
      admin_text += p + "\n";
    INFO(admin_text);
    CHECK(admin.empty());
    // Nothing here is the requirements' fault (deaths by signal are not), so
    // no failure is remembered.
    auto failures = testenv::list_dir(w.venvs + "/failures");
    std::string failures_text;
    for (const auto& f : failures)
      failures_text += testenv::read_file(w.venvs + "/failures/" + f) + "\n";
    INFO("remembered failures:\n" << failures_text);
    CHECK(failures.empty());
    // A killed build's directory does not outlive the builds after it.
    auto build_dirs = idle_build_dirs(w);
    std::string dirs_text;
    for (const auto& d : build_dirs)
      dirs_text += d + "\n";
    INFO("left in tmp/:\n" << dirs_text);
    CHECK(build_dirs.empty());
  }

  // The store heals: on a service started afresh, every requirements set of
  // the pool gets a working venv by its second compile.
  std::string all;
  for (const auto& h : history)
    all += h + "\n";
  INFO("steps:\n" << all);
  w.start_service();
  for (const auto& [reqs, module] : pool) {
    auto dir = w.project(reqs);
    Compiled c;
    for (int round = 0; round < 2; ++round)
      c = compile(w, dir, module);
    INFO(reqs << ":\n" << c.log);
    auto v = judge(w, c, module);
    CHECK(v.problems.empty());
    CHECK(v.used_venv);
  }
  int kills = 0;
  int gcs = 0;
  for (const auto& h : history) {
    kills += h.find("[killed]") != std::string::npos ? 1 : 0;
    gcs += h.find("[gc ran]") != std::string::npos ? 1 : 0;
  }
  std::cout << "[corruption] random kill-and-corrupt test: " << steps << " steps (" << kills
            << " kills landed, " << corruptions << " corruptions, " << gcs
            << " gc runs during a render) in " << seconds_since(start) << " s\n";
}
