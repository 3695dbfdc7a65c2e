// Hostile projects, end to end: a requirements file written by an anonymous
// user, compiled by the owner (--allow-python-install) through clsi-runner.
//
// Every case asserts four things:
//  (a) the refusal line in output.log, in the form the editor annotates:
//      ./requirements.txt:N: refused: ...  (or ./requirements.txt: refused: ...
//      for the file as a whole);
//  (b) the render still ran, on the base interpreter;
//  (c) nothing but the pinned index was contacted: every hostile URL points at
//      a second, "evil" index server, which must see no request at all;
//  (d) no half-built venv is left (for refusals: the store is not even created).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <sstream>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::IndexServer;
using testenv::VenvWorld;

namespace {

const char* const kPipRan = "[python-venv] installing ";
const char* const kBasePython = "render python: base";

// A line of output.log that starts with the given text.
class LineStartingWith : public Catch::MatcherBase<std::string> {
 public:
  explicit LineStartingWith(std::string prefix) : prefix_(std::move(prefix)) {}
  bool match(const std::string& log) const override {
    std::istringstream in(log);
    for (std::string line; std::getline(in, line);) {
      if (line.rfind(prefix_, 0) == 0) return true;
    }
    return false;
  }
  std::string describe() const override { return "has a line starting with \"" + prefix_ + "\""; }

 private:
  std::string prefix_;
};

LineStartingWith HasLine(const std::string& prefix) {
  return LineStartingWith(prefix);
}

std::string py_str(const std::string& s) {
  return "'" + s + "'";  // test paths hold no quotes or backslashes
}

// Python code that, when imported or run, leaves a marker file behind.
std::string writes_marker(const std::string& marker) {
  return "open(" + py_str(marker) + ", 'w').write('imported')\n";
}

// "http://127.0.0.1:PORT" of a server.
std::string base_url(const IndexServer& server) {
  std::string url = server.url();
  return url.substr(0, url.size() - std::string("/simple/").size());
}

std::string make_evil_index(const VenvWorld& w) {
  std::string dir = w.tmp / "evil-index";
  // A higher version than the pinned index has: pip would prefer it if it
  // ever looked here, and importing it leaves a marker.
  std::string marker = w.tmp / "markers/evil-alpha-imported";
  testenv::make_index(
      dir, R"([{"name": "alpha", "version": "9.9", "files": {"alpha/__init__.py": ")" +
               std::string("open('") + marker + R"(', 'w').write('x')\nMESSAGE = 'evil'\n"}}])");
  return dir;
}

// A world with a pinned index served on loopback and an evil one next to it.
struct Hostile {
  VenvWorld w;
  IndexServer good{w.index};
  std::string evil_index = make_evil_index(w);
  IndexServer evil{evil_index};
  std::string E = base_url(evil);  // every hostile URL points here
  std::string markers = w.tmp / "markers";

  explicit Hostile(const std::vector<std::string>& config_extra = {}) {
    ::mkdir(markers.c_str(), 0755);
    w.configure(config_extra, good.url());
  }

  [[nodiscard]] std::vector<std::string> markers_left() const { return testenv::list_dir(markers); }
};

struct Compiled {
  std::string log;  // output.log, then clsi-runner's own output
  int status = -1;
  double seconds = 0;
};

// One compile through clsi-runner. With isolated_render, the render's python
// runs with -I, so it never imports anything from the project directory or
// from PYTHON* variables: any marker left behind was left by the install.
Compiled compile(const VenvWorld& w, const std::string& dir, const std::string& code,
                 const std::map<std::string, std::string>& env = {}, bool isolated_render = false,
                 int timeout_s = 120) {
  auto argv = w.runner_argv(dir, true, code);
  if (isolated_render) {
    argv[argv.size() - 2] =
        "echo \"render python: ${QUARTO_PYTHON:-base}\"; "
        "\"${QUARTO_PYTHON:-/usr/bin/python3}\" -I -c \"$0\"";
  }
  auto start = std::chrono::steady_clock::now();
  const std::size_t before = testenv::file_size(dir + "/output.log");  // the runner appends
  auto r = testenv::run(argv, env, "", timeout_s);
  Compiled c;
  c.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  c.status = r.status;
  c.log = testenv::read_file_from(dir + "/output.log", before) + r.output;
  return c;
}

struct Case {
  std::string name;
  std::string text;                   // requirements.txt
  std::vector<std::string> refusals;  // lines output.log must hold (prefixes)
  std::function<void(const std::string& dir)> setup = nullptr;  // plants files
  bool write_file = true;  // false: setup creates requirements.txt
};

// Compiles each case in its own project and checks (a)-(d).
void expect_refused(Hostile& h, const std::vector<Case>& cases,
                    const std::map<std::string, std::string>& env = {}) {
  for (const auto& c : cases) {
    INFO("case: " << c.name);
    auto dir = h.w.project(c.text, c.write_file ? "requirements.txt" : "");
    if (c.setup) c.setup(dir);
    auto r = compile(h.w, dir, "print('RENDER ran')", env, false, 30);
    INFO(r.log);
    CHECK(r.status == 0);
    CHECK(r.seconds < 10);
    // (a) what was refused, on which line.
    for (const auto& refusal : c.refusals)
      CHECK_THAT(r.log, HasLine(refusal));
    CHECK_THAT(r.log, Contains("not installing Python packages"));
    // (b) the render ran, on the base interpreter.
    CHECK_THAT(r.log, Contains(kBasePython));
    CHECK_THAT(r.log, Contains("RENDER ran"));
    CHECK_THAT(r.log, !Contains(kPipRan));
    // (c) no index was contacted: not the evil one, not even the pinned one.
    CHECK(h.evil.requests().empty());
    CHECK(h.good.requests().empty());
    // (d) nothing was built: the store was not even created.
    CHECK(h.w.untouched());
    CHECK(h.markers_left().empty());
  }
}

std::string refused(int line, const std::string& what) {
  return "./requirements.txt:" + std::to_string(line) + ": refused: " + what;
}

std::string option(int line, const std::string& opt) {
  return refused(line, "the option '" + opt + "'");
}

}  // namespace

TEST_CASE("hostile: option lines are refused before pip runs", "[hostile][options]") {
  Hostile h;
  const std::string& E = h.E;
  // A setup.py that would run if anything built the project.
  auto plant_setup_py = [&](const std::string& dir) {
    testenv::write_file(dir + "/setup.py", writes_marker(h.markers + "/setup-py-ran"));
  };
  std::vector<Case> cases = {
      {"--index-url", "alpha\n--index-url " + E + "/simple\n", {option(2, "--index-url")}},
      {"-i URL", "alpha\n-i " + E + "/simple\n", {option(2, "-i")}},
      {"-iURL (joined short option)", "alpha\n-i" + E + "/simple\n", {option(2, "-i")}},
      {"--ind= (abbreviation)", "alpha\n--ind=" + E + "/simple\n", {option(2, "--ind")}},
      {"--extra-index-url",
       "alpha\n--extra-index-url " + E + "/simple\n",
       {option(2, "--extra-index-url")}},
      {"-f", "alpha\n-f " + E + "/files/\n", {option(2, "-f")}},
      {"--find-links", "alpha\n--find-links=" + E + "/files/\n", {option(2, "--find-links")}},
      {"-r other.txt",
       "alpha\n-r other.txt\n",
       {option(2, "-r")},
       [&](const std::string& dir) {
         testenv::write_file(dir + "/other.txt", "--index-url " + E + "/simple\nalpha\n");
       }},
      {"-c constraints.txt",
       "alpha\n-c constraints.txt\n",
       {option(2, "-c")},
       [&](const std::string& dir) {
         testenv::write_file(dir + "/constraints.txt", "alpha==9.9\n");
       }},
      {"-e .", "alpha\n-e .\n", {option(2, "-e")}, plant_setup_py},
      {"--editable=.", "--editable=.\n", {option(1, "--editable")}, plant_setup_py},
      {"--no-binary :all:", "alpha\n--no-binary :all:\n", {option(2, "--no-binary")}},
      {"--only-binary :none:", "alpha\n--only-binary :none:\n", {option(2, "--only-binary")}},
      {"--trusted-host", "alpha\n--trusted-host 127.0.0.1\n", {option(2, "--trusted-host")}},
      {"indented option", "alpha\n \t--index-url " + E + "/simple\n", {option(2, "--index-url")}},
      {"options on several lines, each refused",
       "-i " + E + "/simple\nalpha\n--pre\n--extra-index-url=" + E + "/simple\n",
       {option(1, "-i"), option(3, "--pre"), option(4, "--extra-index-url")}},
  };
  expect_refused(h, cases);
}

TEST_CASE("hostile: URLs, direct references and local paths are refused", "[hostile][urls]") {
  Hostile h;
  const std::string& E = h.E;
  std::string wheel = "alpha-1.0-py3-none-any.whl";
  auto plant_wheel = [&](const std::string& name) {
    return [&, name](const std::string& dir) {
      testenv::write_file(dir + "/" + name, testenv::read_file(h.w.index + "/files/" + wheel));
    };
  };
  auto plant_vendored = [&](const std::string& dir) {
    testenv::write_file(dir + "/vendored/setup.py", writes_marker(h.markers + "/vendored-built"));
  };
  const std::string url_ref = "a URL or direct reference ";
  const std::string local = "a local path or archive ";
  std::vector<Case> cases = {
      {"name @ URL",
       "alpha @ " + E + "/files/alpha-9.9-py3-none-any.whl\n",
       {refused(1, url_ref + "'alpha @ " + E + "/files/")}},
      {"bare URL", "beta\n" + E + "/x.whl\n", {refused(2, url_ref + "'" + E + "/x.whl'")}},
      {"git+http", "git+" + E + "/repo\n", {refused(1, url_ref + "'git+" + E + "/repo'")}},
      {"git+ with #egg", "git+" + E + "/repo#egg=alpha\n", {refused(1, url_ref + "'git+" + E)}},
      {"name @ file://",
       "alpha @ file:///etc/passwd\n",
       {refused(1, url_ref + "'alpha @ file:///etc/passwd'")}},
      {"./vendored", "./vendored\n", {refused(1, local + "'./vendored'")}, plant_vendored},
      {"vendored/ (relative, no dot)",
       "vendored/\n",
       {refused(1, local + "'vendored/'")},
       plant_vendored},
      {"/etc/passwd", "/etc/passwd\n", {refused(1, local + "'/etc/passwd'")}},
      {"~/x", "~/x\n", {refused(1, local + "'~/x'")}},
      {"bare wheel name in the project root",
       wheel + "\n",
       {refused(1, local + "'" + wheel + "'")},
       plant_wheel(wheel)},
      {"bare wheel name, upper case",
       "ALPHA-1.0-PY3-NONE-ANY.WHL\n",
       {refused(1, local + "'ALPHA-1.0-PY3-NONE-ANY.WHL'")},
       plant_wheel("ALPHA-1.0-PY3-NONE-ANY.WHL")},
      {"sdist name", "alpha-1.0.tar.gz\n", {refused(1, local + "'alpha-1.0.tar.gz'")}},
  };
  expect_refused(h, cases);
}

TEST_CASE("hostile: variable expansion, continuations and hidden line breaks are refused",
          "[hostile][lines]") {
  Hostile h;
  const std::string& E = h.E;
  const std::string evil_index = "--index-url " + E + "/simple";
  std::vector<Case> cases = {
      {"${HOME}", "alpha==${HOME}\n", {refused(1, "a variable reference '${HOME}'")}},
      {"${PIP_INDEX_URL}",
       "beta\n${PIP_INDEX_URL}\n",
       {refused(2, "a variable reference '${PIP_INDEX_URL}'")}},
      {"trailing backslash joining an option",
       "alpha \\\n" + evil_index + "\n",
       {refused(1, "a line continuation (trailing backslash)"), option(2, "--index-url")}},
      {"trailing backslash without a space",
       "alpha\\\n-i" + E + "/simple\n",
       {refused(1, "a line continuation (trailing backslash)"), option(2, "-i")}},
      {"form feed", "alpha\f" + evil_index + "\n", {refused(1, "a control character (byte 12)")}},
      {"vertical tab",
       "alpha\v" + evil_index + "\n",
       {refused(1, "a control character (byte 11)")}},
      {"CR inside a line",
       "alpha\r" + evil_index + "\n",
       {refused(1, "a control character (byte 13)")}},
      {"CR line endings only",
       "alpha\r" + evil_index + "\r",
       {refused(1, "a control character (byte 13)")}},
      {"file separator (\\x1c)",
       "alpha\x1c" + evil_index + "\n",
       {refused(1, "a control character (byte 28)")}},
      {"U+2028",
       "alpha\xe2\x80\xa8" + evil_index + "\n",
       {refused(1, "a non-ASCII line separator (U+2028)")}},
      {"U+2029",
       "alpha\xe2\x80\xa9" + evil_index + "\n",
       {refused(1, "a non-ASCII line separator (U+2029)")}},
      {"U+0085",
       "alpha\xc2\x85" + evil_index + "\n",
       {refused(1, "a non-ASCII line separator (U+0085)")}},
      {"line separator hidden in a comment",
       "alpha  # note\xe2\x80\xa8" + evil_index + "\n",
       {refused(1, "a non-ASCII line separator (U+2028)")}},
      {"form feed hidden in a comment line",
       "# note\f" + evil_index + "\nalpha\n",
       {refused(1, "a control character (byte 12)")}},
  };
  // The service's environment has the variables the lines refer to.
  expect_refused(h, cases, {{"PIP_INDEX_URL", E + "/simple"}});
}

TEST_CASE("hostile: requirements files that are not plain small UTF-8 regular files are refused",
          "[hostile][files]") {
  Hostile h;
  const std::string& E = h.E;
  const std::string not_regular = "./requirements.txt: refused: it is ";
  auto symlink_to = [](const std::string& target) {
    return [target](const std::string& dir) {
      if (target[0] != '/') testenv::write_file(dir + "/" + target, "alpha\n");
      REQUIRE(::symlink(target.c_str(), (dir + "/requirements.txt").c_str()) == 0);
    };
  };
  std::vector<Case> cases = {
      {"symlink to a file in the project",
       "",
       {not_regular + "a symbolic link"},
       symlink_to("real.txt"),
       false},
      {"symlink to /etc/passwd",
       "",
       {not_regular + "a symbolic link"},
       symlink_to("/etc/passwd"),
       false},
      {"a directory",
       "",
       {not_regular + "a directory"},
       [](const std::string& dir) {
         testenv::write_file(dir + "/requirements.txt/alpha", "alpha\n");
       },
       false},
      {"a FIFO (nobody writes to it)",
       "",
       {not_regular + "a named pipe"},
       [](const std::string& dir) {
         REQUIRE(::mkfifo((dir + "/requirements.txt").c_str(), 0644) == 0);
       },
       false},
      {"a socket",
       "",
       {not_regular + "a socket"},
       [](const std::string& dir) {
         std::string path = dir + "/requirements.txt";
         sockaddr_un addr{};
         addr.sun_family = AF_UNIX;
         REQUIRE(path.size() < sizeof addr.sun_path);
         std::copy(path.begin(), path.end(), addr.sun_path);
         int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
         REQUIRE(fd >= 0);
         CHECK(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
         ::close(fd);
       },
       false},
      {"a sparse 8 GB file (never read whole)",
       "",
       {"./requirements.txt: refused: the file is larger than caps.max_requirements_bytes (65536 "
        "bytes)"},
       [](const std::string& dir) {
         std::string path = dir + "/requirements.txt";
         testenv::write_file(path, "alpha\n");
         REQUIRE(::truncate(path.c_str(), 8LL << 30) == 0);
       },
       false},
      {"1 MB",
       "alpha\n" + std::string(1 << 20, '#') + "\n",
       {"./requirements.txt: refused: the file is larger than caps.max_requirements_bytes (65536 "
        "bytes)"}},
      {"a NUL byte",
       "alpha\n" + std::string(1, '\0') + "--index-url " + E + "/simple\n",
       {"./requirements.txt: refused: a NUL byte"}},
      {"UTF-16 with a BOM",
       std::string("\xff\xfe-\0-\0i\0 \0", 10) + "\n",
       {"./requirements.txt: refused: a NUL byte"}},
      {"invalid UTF-8", "alpha\ncaf\xe9\n", {refused(2, "invalid UTF-8")}},
      {"invalid UTF-8 before an option",
       "alpha\n\xff" + std::string("-i ") + E + "/simple\n",
       {refused(2, "invalid UTF-8")}},
      {"overlong UTF-8 encoding of '-'",
       "\xc0\xad" + std::string("-index-url ") + E + "\n",
       {refused(1, "invalid UTF-8")}},
      {"UTF-8 BOM",
       "\xef\xbb\xbf"
       "alpha\n",
       {refused(1, "a byte-order mark")}},
  };
  expect_refused(h, cases);
  // Refusing a symlink to /etc/passwd must not show its content either.
  auto dir = h.w.project("", "");
  REQUIRE(::symlink("/etc/passwd", (dir + "/requirements.txt").c_str()) == 0);
  auto r = compile(h.w, dir, "print('RENDER ran')");
  CHECK_THAT(r.log, !Contains("root:"));
}

TEST_CASE("hostile: modules planted in the project root are never imported by the install",
          "[hostile][planted]") {
  Hostile h;
  std::string builder;
  SECTION("background builder (clsi-venvs)") {
    builder = "auto";
  }
  SECTION("inline builder") {
    builder = "inline";
  }
  h.w.configure({"builder: " + builder}, h.good.url());
  auto dir = h.w.project("alpha\n");
  const std::vector<std::pair<std::string, std::string>> plants = {
      {"pip/__init__.py", "pip"},
      {"pip/__main__.py", "pip-main"},
      {"venv.py", "venv"},
      {"ensurepip/__init__.py", "ensurepip"},
      {"ensurepip/__main__.py", "ensurepip-main"},
      {"sitecustomize.py", "sitecustomize"},
      {"usercustomize.py", "usercustomize"},
      {"setup.py", "setup-py"},
  };
  for (const auto& [file, marker] : plants)
    testenv::write_file(dir + "/" + file, writes_marker(h.markers + "/" + marker));

  // The plants work: a python started in the project directory imports them.
  {
    auto py = testenv::base_python();
    testenv::run({py, "-m", "pip", "--version"}, {}, dir, 30);
    testenv::run({py, "-m", "venv", "--help"}, {}, dir, 30);
    testenv::run({py, "-m", "ensurepip", "--version"}, {}, dir, 30);
    testenv::run({py, "-c", "pass"}, {{"PYTHONPATH", dir}}, dir, 30);
    auto seen = h.markers_left();
    INFO("markers left by the self-check: " << seen.size());
    for (const char* m : {"pip", "venv", "ensurepip", "sitecustomize"}) {
      INFO(m);
      CHECK(std::find(seen.begin(), seen.end(), m) != seen.end());
    }
    for (const auto& m : seen)
      ::unlink((h.markers + "/" + m).c_str());
    REQUIRE(h.markers_left().empty());
  }

  auto r = compile(h.w, dir, "import alpha; print('RENDER', alpha.MESSAGE)", {}, true);
  INFO("builder: " << builder);
  INFO(r.log);
  CHECK(r.status == 0);
  CHECK_THAT(r.log, Contains(kPipRan));
  CHECK_THAT(r.log, Contains("RENDER alpha 2.1"));
  CHECK_THAT(r.log, Contains("render python: " + h.w.venvs + "/envs/"));
  CHECK(h.markers_left().empty());
  CHECK(h.evil.requests().empty());
  REQUIRE(h.w.env_dirs().size() == 1);
  CHECK(testenv::exists(h.w.venvs + "/envs/" + h.w.env_dirs()[0] + ".complete"));
}

TEST_CASE("hostile: a service environment that tries to redirect pip has no effect on the install",
          "[hostile][environment]") {
  Hostile h;
  std::string builder;
  SECTION("background builder (clsi-venvs)") {
    builder = "auto";
  }
  SECTION("inline builder") {
    builder = "inline";
  }
  h.w.configure({"builder: " + builder}, h.good.url());
  const std::string& E = h.E;
  std::string svc = h.w.tmp / "service";
  std::string conf = "[global]\nindex-url = " + E + "/simple/\nextra-index-url = " + E +
                     "/simple/\nfind-links = " + E +
                     "/files/\ntrusted-host = 127.0.0.1\nproxy = " + E +
                     "\n[install]\nindex-url = " + E + "/simple/\nextra-index-url = " + E +
                     "/simple/\ntarget = " + h.w.tmp / "hijacked" + "\n";
  testenv::write_file(svc + "/pip.conf", conf);
  testenv::write_file(svc + "/home/.config/pip/pip.conf", conf);
  testenv::write_file(svc + "/home/.pip/pip.conf", conf);
  testenv::write_file(svc + "/xdg/pip/pip.conf", conf);
  testenv::write_file(svc + "/xdg-dirs/pip/pip.conf", conf);
  for (const char* mod : {"pip/__init__.py", "venv.py", "ensurepip/__init__.py", "sitecustomize.py",
                          "usercustomize.py"}) {
    testenv::write_file(
        svc + "/pythonpath/" + mod,
        writes_marker(h.markers + "/pythonpath-" +
                      std::string(mod).substr(0, std::string(mod).find_first_of("/."))));
  }
  testenv::write_file(svc + "/startup.py", writes_marker(h.markers + "/pythonstartup"));
  // The per-user site directory PYTHONUSERBASE would add.
  auto usersite = testenv::run(
      {testenv::base_python(), "-c", "import site; print(site.getusersitepackages(), end='')"},
      {{"PYTHONUSERBASE", svc + "/userbase"}});
  REQUIRE(usersite.status == 0);
  testenv::write_file(usersite.output.substr(0, usersite.output.find('\n')) + "/usercustomize.py",
                      writes_marker(h.markers + "/userbase-usercustomize"));

  std::map<std::string, std::string> env = {
      {"PIP_INDEX_URL", E + "/simple/"},
      {"PIP_EXTRA_INDEX_URL", E + "/simple/"},
      {"PIP_FIND_LINKS", E + "/files/"},
      {"PIP_TRUSTED_HOST", "127.0.0.1"},
      {"PIP_PROXY", E},
      {"PIP_TARGET", h.w.tmp / "hijacked"},
      {"PIP_CONFIG_FILE", svc + "/pip.conf"},
      {"HOME", svc + "/home"},
      {"XDG_CONFIG_HOME", svc + "/xdg"},
      {"XDG_CONFIG_DIRS", svc + "/xdg-dirs"},
      {"PYTHONPATH", svc + "/pythonpath"},
      {"PYTHONSTARTUP", svc + "/startup.py"},
      {"PYTHONUSERBASE", svc + "/userbase"},
      {"_PIP_RUNNING_IN_SUBPROCESS", "1"},
      // Proxies would send every request of pip to the evil server.
      {"http_proxy", E},
      {"HTTP_PROXY", E},
      {"https_proxy", E},
      {"HTTPS_PROXY", E},
      {"all_proxy", E},
      {"ALL_PROXY", E},
      {"no_proxy", ""},
      {"NO_PROXY", ""},
  };
  // The environment really is hostile: a python or a pip that inherited it
  // would be redirected (so the assertions below can fail).
  {
    auto py = testenv::base_python();
    auto without_pythonpath = env;
    without_pythonpath.erase("PYTHONPATH");
    testenv::run({py, "-c", "pass"}, env, svc, 30);
    testenv::run({py, "-c", "pass"}, without_pythonpath, svc, 30);
    testenv::run({py, "-m", "pip", "download", "--no-deps", "--dest", h.w.tmp / "self-check",
                  "--index-url", h.good.url(), "alpha"},
                 without_pythonpath, svc, 60);
    auto seen = h.markers_left();
    for (const char* m : {"pythonpath-sitecustomize", "userbase-usercustomize"}) {
      INFO("self-check marker " << m);
      CHECK(std::find(seen.begin(), seen.end(), m) != seen.end());
    }
    CHECK_FALSE(h.evil.requests().empty());
    for (const auto& m : seen)
      ::unlink((h.markers + "/" + m).c_str());
    testenv::write_file(h.evil_index + ".requests.log", "");
    REQUIRE(h.markers_left().empty());
    REQUIRE(h.evil.requests().empty());
  }

  auto dir = h.w.project("alpha\n");
  auto r = compile(h.w, dir, "import alpha; print('RENDER', alpha.MESSAGE)", env, true);
  INFO("builder: " << builder);
  INFO(r.log);
  CHECK(r.status == 0);
  CHECK_THAT(r.log, Contains(kPipRan));
  CHECK_THAT(r.log, Contains("RENDER alpha 2.1"));  // not 'evil'
  CHECK_THAT(r.log, Contains("render python: " + h.w.venvs + "/envs/"));
  auto evil_requests = h.evil.requests();
  std::string evil_saw;
  for (const auto& req : evil_requests)
    evil_saw += req + "\n";
  INFO("the evil server saw:\n" << evil_saw);
  CHECK(evil_requests.empty());
  bool saw_alpha = false;
  for (const auto& req : h.good.requests())
    saw_alpha |= req.find("/simple/alpha/") != std::string::npos;
  CHECK(saw_alpha);
  CHECK(h.markers_left().empty());
  CHECK_FALSE(testenv::exists(h.w.tmp / "hijacked"));
  REQUIRE(h.w.env_dirs().size() == 1);
  auto record = testenv::read_file(h.w.venvs + "/envs/" + h.w.env_dirs()[0] + ".complete");
  CHECK_THAT(record, Contains("alpha==1.0"));
  CHECK(testenv::leftovers_mentioning(h.w.venvs).empty());
}

TEST_CASE(
    "hostile: caps.max_packages counts dependencies and is checked before anything is installed",
    "[hostile][caps]") {
  Hostile h({"caps:", "  max_packages: 1"});
  auto dir = h.w.project("alpha\n");  // alpha depends on beta: 2 packages
  auto r = compile(h.w, dir, "print('RENDER ran')");
  INFO(r.log);
  CHECK(r.status == 0);
  CHECK_THAT(r.log, Contains("would install 2 packages, over caps.max_packages (1)"));
  CHECK_THAT(r.log, Contains(kBasePython));
  CHECK_THAT(r.log, Contains("RENDER ran"));
  // Nothing was installed: pip never got past resolving.
  CHECK_THAT(r.log, !Contains(kPipRan));
  CHECK_THAT(r.log, !Contains("Successfully installed"));
  CHECK(h.w.env_dirs().empty());
  CHECK(h.evil.requests().empty());
  bool resolved = false;
  for (const auto& req : h.good.requests())
    resolved |= req.find("/simple/beta/") != std::string::npos;
  CHECK(resolved);  // the dependency was looked up: the count includes it
  CHECK_THAT(r.log, Contains("\n  alpha 1.0\n  beta 2.1 (for alpha)\n"));
  // pip 23 does download the wheels while resolving (the index serves no
  // PEP 658 metadata), so the pinned server does see GET /files/...; what
  // holds is that nothing was installed (above) and nothing was kept.
  CHECK(testenv::leftovers_mentioning(h.w.venvs).empty());
}

TEST_CASE(
    "hostile: caps.max_requirement_lines and caps.max_requirements_bytes name the cap and its "
    "value",
    "[hostile][caps]") {
  SECTION("max_requirement_lines") {
    Hostile h({"caps:", "  max_requirement_lines: 2"});
    expect_refused(
        h, {{"three requirement lines",
             "# comments and blanks do not count\n\nalpha\nbeta\ngamma\n",
             {refused(5, "more than 2 requirement lines (caps.max_requirement_lines is 2)")}},
            {"many option lines",
             std::string("-i x\n-i y\n-i z\n-i w\n"),
             {option(1, "-i"), option(2, "-i"),
              refused(3, "more than 2 requirement lines (caps.max_requirement_lines is 2)")}}});
  }
  SECTION("max_requirements_bytes") {
    Hostile h({"caps:", "  max_requirements_bytes: 100"});
    expect_refused(h, {{"101 bytes",
                        "alpha\n" + std::string(94, '#') + "\n",
                        {"./requirements.txt: refused: the file is larger than "
                         "caps.max_requirements_bytes (100 bytes)"}}});
    // At the cap exactly: read and parsed (and it lists nothing).
    auto dir = h.w.project("#" + std::string(98, ' ') + "\n");
    auto r = compile(h.w, dir, "print('RENDER ran')");
    INFO(r.log);
    CHECK_THAT(r.log, !Contains("refused"));
    CHECK_THAT(r.log, Contains("lists no packages"));
    CHECK_THAT(r.log, Contains("RENDER ran"));
  }
}

TEST_CASE(
    "hostile: the index is told pip's version and the platform, not what else the build host has",
    "[hostile][agent]") {
  Hostile h;
  auto dir = h.w.project("alpha\n");
  auto r = compile(h.w, dir, "import alpha; print('RENDER', alpha.MESSAGE)");
  INFO(r.log);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.log, Contains("RENDER alpha"));
  auto agents = h.good.agents();
  REQUIRE_FALSE(agents.empty());
  for (const auto& a : agents) {
    INFO("User-Agent: " << a);
    CHECK(a.rfind("pip/", 0) == 0);
    CHECK_THAT(a, Contains("\"installer\":{\"name\":\"pip\""));
    CHECK_THAT(a, Contains("\"python\":\""));
    // pip's own would name the distribution (from lsb_release) and, where
    // they are installed, setuptools' and rustc's versions.
    CHECK_THAT(
        a, !Contains("distro") && !Contains("setuptools_version") && !Contains("rustc_version"));
  }
}
