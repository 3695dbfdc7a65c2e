// What a user reads in output.log when the requirements file has a mistake,
// end to end: clsi-runner, the build service, real pip against an index the
// test builds. Each mistake is annotated on the user's own line, in the form
// Overleaf's log panel turns into an annotation (`./requirements.txt:N: ...`,
// N as in the user's file); pip's own text goes to the operator's build log,
// and the user sees it once, condensed.
#include <fcntl.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <ctime>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <thread>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::count_occurrences;
using testenv::VenvWorld;

namespace {

// alpha depends on beta>=2 (so beta==1.0 conflicts with it); quillwort is a
// near name of the typo quilwort; srconly (added by add_sdist_only) has no wheel.
const char* const kPackages = R"([
  {"name": "alpha", "version": "1.0", "requires": ["beta>=2"],
   "files": {"alpha/__init__.py": "import beta\nMESSAGE = 'alpha ' + beta.VERSION\n"}},
  {"name": "beta", "version": "1.0", "files": {"beta/__init__.py": "VERSION = '1.0'\n"}},
  {"name": "beta", "version": "2.1", "files": {"beta/__init__.py": "VERSION = '2.1'\n"}},
  {"name": "gamma", "version": "0.3", "files": {"gamma/__init__.py": "MESSAGE = 'gamma here'\n"}},
  {"name": "quillwort", "version": "1.0", "files": {"quillwort/__init__.py": "V = '1.0'\n"}},
  {"name": "quillwort", "version": "1.1", "files": {"quillwort/__init__.py": "V = '1.1'\n"}},
  {"name": "bulky", "version": "1.0", "files": {"bulky/__init__.py": "X = 1\n"},
   "pad_bytes": 3000000},
  {"name": "bulkier", "version": "1.0", "files": {"bulkier/__init__.py": "X = 2\n"},
   "pad_bytes": 3000000}
])";

const char* const kBase = "render python: base";

// The lines of output.log that the editor's log panel reads as file:line
// annotations (Overleaf's parser: `^([./].*):(\d+): (.*)`).
std::vector<std::string> annotations(const std::string& log) {
  static const std::regex annotation(R"(^([./].*):(\d+): (.*)$)");
  std::vector<std::string> out;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);)
    if (std::regex_match(line, annotation)) out.push_back(line);
  return out;
}

std::string joined(const std::vector<std::string>& lines) {
  std::string s;
  for (const auto& l : lines)
    s += l + "\n";
  return s;
}

// Adds a project published only as a source distribution, whose setup.py
// leaves `marker` behind if anything ever builds it.
void add_sdist_only(const VenvWorld& w, const std::string& marker) {
  const std::string script =
      "import io, sys, tarfile\n"
      "out, marker = sys.argv[1], sys.argv[2]\n"
      "files = {'srconly-1.0/PKG-INFO': 'Metadata-Version: 2.1\\nName: srconly\\nVersion: "
      "1.0\\n',\n"
      "         'srconly-1.0/setup.py': 'open(%r, \"w\").write(\"built\")\\n"
      "from setuptools import setup\\nsetup(name=\"srconly\", version=\"1.0\")\\n' % marker}\n"
      "with tarfile.open(out, 'w:gz') as t:\n"
      "    for name, text in files.items():\n"
      "        data = text.encode()\n"
      "        info = tarfile.TarInfo(name)\n"
      "        info.size = len(data)\n"
      "        t.addfile(info, io.BytesIO(data))\n";
  auto r = testenv::run(
      {testenv::helper_python(), "-c", script, w.index + "/files/srconly-1.0.tar.gz", marker});
  REQUIRE(r.status == 0);
  testenv::make_index(w.index, "[]");  // rewrites the pages from files/
  REQUIRE_THAT(testenv::read_file(w.index + "/simple/srconly/index.html"),
               Contains("srconly-1.0.tar.gz"));
}

// Every request the index server saw for a path starting with `prefix`.
int requests_for(const testenv::IndexServer& server, const std::string& prefix) {
  int n = 0;
  for (const auto& r : server.requests())
    n += r.find(" " + prefix) != std::string::npos ? 1 : 0;
  return n;
}

// The user's log holds no line twice (blank lines aside).
std::optional<std::string> repeated_line(const std::string& log) {
  std::map<std::string, int> seen;
  std::istringstream in(log);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    if (++seen[line] == 2) return line;
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("user mistakes: a typo'd package is annotated on its line, with the near name",
          "[user-messages][typo]") {
  VenvWorld w(kPackages);
  w.configure();
  auto dir = w.project("# analysis\n\ngamma\nquilwort\n");
  int status = -1;
  auto log = w.compile(dir, true, "print('RENDER ran')", {}, {}, &status);
  INFO(log);
  CHECK(status == 0);
  CHECK(annotations(log) ==
        std::vector<std::string>{"./requirements.txt:4: no package named 'quilwort' on the index "
                                 "(did you mean 'quillwort'?)"});
  CHECK_THAT(log, Contains("could not be built: pip cannot install quilwort"));
  // pip's raw words are the operator's; the user got the annotation.
  CHECK_THAT(log, !Contains("Could not find a version"));
  CHECK_THAT(log, !Contains("ERROR:"));
  CHECK_THAT(log, Contains(kBase));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK(w.env_dirs().empty());

  // Remembered: the next compile is told the same, on its own line, without pip.
  auto again = w.compile(w.project("quilwort  # typo?\ngamma\n"), true, "print('RENDER ran')");
  INFO(again);
  CHECK_THAT(again, Contains("the last build of environment"));
  CHECK_THAT(again, !Contains("resolving"));
  CHECK(annotations(again) ==
        std::vector<std::string>{"./requirements.txt:1: no package named 'quilwort' on the index "
                                 "(did you mean 'quillwort'?)"});
}

TEST_CASE("user mistakes: a version the index does not have lists the versions it has",
          "[user-messages][version]") {
  VenvWorld w(kPackages);
  w.configure();
  auto log = w.compile(w.project("# pinned\nquillwort==9.9\n"), true, "print('RENDER ran')");
  INFO(log);
  CHECK(annotations(log) == std::vector<std::string>{"./requirements.txt:2: no version of "
                                                     "quillwort matches ==9.9 (available: 1.0, "
                                                     "1.1)"});
  CHECK_THAT(log, !Contains("ERROR:"));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK(w.env_dirs().empty());
}

TEST_CASE("user mistakes: a package published only as source says so, and nothing builds it",
          "[user-messages][sdist]") {
  VenvWorld w(kPackages);
  std::string marker = w.tmp / "sdist-was-built";
  add_sdist_only(w, marker);
  w.configure();
  auto log = w.compile(w.project("gamma\n\nsrconly\n"), true, "print('RENDER ran')");
  INFO(log);
  CHECK(annotations(log) ==
        std::vector<std::string>{"./requirements.txt:3: srconly is published only as source; "
                                 "only pre-built wheels are installed here"});
  CHECK_THAT(log, !Contains("ERROR:"));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK_FALSE(testenv::exists(marker));
  CHECK(w.env_dirs().empty());
}

TEST_CASE("user mistakes: a conflict names both of the user's lines, as in the user's file",
          "[user-messages][conflict]") {
  VenvWorld w(kPackages);
  w.configure();
  // pip reads the service's sorted copy (alpha on its line 1, beta==1.0 on
  // line 2); the user's lines are 2 and 5.
  auto dir = w.project("# plots\nalpha\n\n# pinned for reproducibility\nbeta==1.0\n");
  auto log = w.compile(dir, true, "print('RENDER ran')");
  INFO(log);
  CHECK(annotations(log) ==
        std::vector<std::string>{
            "./requirements.txt:2: alpha conflicts with line 5 (beta==1.0): alpha 1.0 depends on "
            "beta>=2",
            "./requirements.txt:5: beta==1.0 conflicts with line 2 (alpha): alpha 1.0 depends on "
            "beta>=2"});
  CHECK_THAT(log, Contains("could not be built: pip cannot install alpha together with beta==1.0"));
  CHECK_THAT(log, !Contains("(line 1)"));  // pip's line of its own copy
  CHECK_THAT(log, !Contains(w.venvs + "/tmp"));
  CHECK_THAT(log, Contains("RENDER ran"));

  // The same set in another project, its lines elsewhere: remembered, and
  // annotated on that file's lines.
  auto other = w.compile(w.project("beta == 1.0\nALPHA\n"), true, "print('RENDER ran')");
  INFO(other);
  CHECK_THAT(other, Contains("the last build of environment"));
  CHECK(annotations(other) ==
        std::vector<std::string>{
            "./requirements.txt:2: alpha conflicts with line 1 (beta==1.0): alpha 1.0 depends on "
            "beta>=2",
            "./requirements.txt:1: beta==1.0 conflicts with line 2 (alpha): alpha 1.0 depends on "
            "beta>=2"});
}

TEST_CASE("user mistakes: more distinct packages than caps.max_packages are refused before pip",
          "[user-messages][caps]") {
  VenvWorld w(kPackages);
  testenv::IndexServer server(w.index);
  w.configure({"caps:", "  max_packages: 100"}, server.url());
  std::string text = "# a long list\n";
  for (int i = 1; i <= 150; ++i)
    text += "package" + std::to_string(i) + "\n";
  auto log = w.compile(w.project(text), true, "print('RENDER ran')");
  INFO(log);
  CHECK(annotations(log) ==
        std::vector<std::string>{"./requirements.txt:102: refused: more than 100 distinct "
                                 "packages (caps.max_packages is 100, and dependencies count "
                                 "too)"});
  CHECK_THAT(log, Contains("not installing Python packages"));
  CHECK_THAT(log, Contains("RENDER ran"));
  // pip never ran: the index saw nothing, the service was not even asked.
  CHECK(server.requests().empty());
  CHECK(w.untouched());
  CHECK(testenv::list_dir(w.venvs + "/logs").empty());
  CHECK_THAT(log, !Contains("asking the build service"));
}

TEST_CASE("user mistakes: with both files present, one line says which one is used",
          "[user-messages][files]") {
  VenvWorld w(kPackages);
  w.configure();
  auto dir = w.project("gamma\n", "requirements.vrf");
  testenv::write_file(dir + "/requirements.txt", "alpha\n");
  const std::string says =
      "[python-venv] using ./requirements.vrf; ./requirements.txt is there too and is not read "
      "(the first of python_venv.requirements_files that is present is used)";
  auto log = w.compile(dir, true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(log);
  CHECK(count_occurrences(log, says) == 1);
  CHECK_THAT(log, Contains("RENDER gamma here"));
  // And on a reuse as well.
  auto again = w.compile(dir, true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(again);
  CHECK_THAT(again, Contains("reusing environment"));
  CHECK(count_occurrences(again, says) == 1);
  // One file alone: nothing said.
  auto single = w.compile(w.project("gamma\n"), true, "print(1)");
  CHECK_THAT(single, !Contains("is there too"));
}

TEST_CASE("pip resolves once, its output is shown once, condensed, with progress while slow",
          "[user-messages][once]") {
  VenvWorld w(kPackages);
  // Every response takes 3 s: the resolve (two pages, two wheels) is longer
  // than the 10 s after which the user hears how long it has been.
  testenv::IndexServer slow(w.index, 3000);
  w.configure({}, slow.url());
  auto dir = w.project("alpha\n");
  w.compile(dir);
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK_THAT(log, Contains("RENDER alpha 2.1"));
  auto twice = repeated_line(log);
  CHECK(twice.value_or("") == "");
  // One line per package, pip's words kept for the operator.
  CHECK_THAT(log, Contains("\n  alpha 1.0\n"));
  CHECK_THAT(log, Contains("\n  beta 2.1 (for alpha)\n"));
  CHECK_THAT(log, !Contains("Looking in indexes"));
  CHECK_THAT(log, !Contains("Successfully installed"));
  CHECK_THAT(log, Contains("[python-venv] still resolving after 1"));
  REQUIRE(w.env_dirs().size() == 1);
  auto build_log = testenv::read_file(w.venvs + "/logs/" + w.env_dirs()[0] + ".log");
  INFO(build_log);
  CHECK_THAT(build_log, Contains("Looking in indexes"));
  CHECK_THAT(build_log, Contains("Successfully downloaded alpha beta"));
  CHECK_THAT(build_log, Contains("unpacked alpha 1.0"));
  // One resolve: each project page was read once; the download took the
  // resolved files by URL.
  CHECK(requests_for(slow, "/simple/alpha/") == 1);
  CHECK(requests_for(slow, "/simple/beta/") == 1);
  auto record = testenv::read_file(w.venvs + "/envs/" + w.env_dirs()[0] + ".complete");
  CHECK_THAT(record, Contains("beta==2.1"));
}

TEST_CASE("the install takes exactly the resolved files: one changed since fails on its hash",
          "[user-messages][hash]") {
  VenvWorld w(kPackages);
  // A gamma 0.3 with other bytes, to put in the index's place mid-build.
  std::string other = w.tmp / "other-index";
  testenv::make_index(other, R"([{"name": "gamma", "version": "0.3",
      "files": {"gamma/__init__.py": "MESSAGE = 'a different gamma'\n"}}])");
  testenv::IndexServer slow(w.index, 1500);
  w.configure({}, slow.url());
  auto dir = w.project("gamma\n");
  clsi::SpawnOptions o;
  auto argv = w.runner_argv(dir, true, "print('RENDER ran')");
  o.executable = argv[0];
  o.args.assign(argv.begin() + 1, argv.end());
  o.env = {"PATH=/usr/bin:/bin"};
  o.output_fd = 2;
  std::error_code ec;
  auto host = clsi::Child::spawn(o, ec);
  REQUIRE(host);
  // Resolved: the install's next request is 1.5 s away. ("Would install" is
  // what a build that showed pip's own words printed here.)
  bool resolved = false;
  for (int i = 0; i < 1500 && !resolved; ++i) {
    auto so_far = testenv::read_file(dir + "/output.log");
    resolved = so_far.find("[python-venv] installing ") != std::string::npos ||
               so_far.find("Would install ") != std::string::npos;
    if (!resolved) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(resolved);
  // The mirror publishes another file under the same name, and its page
  // with the new sha256, as a mirror that re-syncs would.
  const std::string wheel = "/files/gamma-0.3-py3-none-any.whl";
  const std::string page = "/simple/gamma/index.html";
  for (const auto& f : {wheel, page}) {
    testenv::write_file(w.index + f + ".new", testenv::read_file(other + f));
    REQUIRE(::rename((w.index + f + ".new").c_str(), (w.index + f).c_str()) == 0);
  }
  int status = clsi::Child::shell_status(host->wait());
  auto log = testenv::read_file(dir + "/output.log");
  INFO(log);
  CHECK(status == 0);
  CHECK_THAT(log, Contains("the index served gamma with another sha256 than pip resolved"));
  CHECK_THAT(log, Contains("this is a problem of the compile service, not of ./requirements.txt"));
  CHECK_THAT(log, Contains(kBase));
  CHECK_THAT(log, Contains("RENDER ran"));
  CHECK(w.env_dirs().empty());
  // No second resolve: the page was read once, the wheel fetched twice.
  CHECK(requests_for(slow, "/simple/gamma/") == 1);
  CHECK(requests_for(slow, wheel) == 2);
  // Not remembered against the requirements: the next compile resolves again.
  CHECK(testenv::list_dir(w.venvs + "/failures").empty());
}

TEST_CASE("the resolve does not hash again a wheel the store holds by its sha256, others it does",
          "[user-messages][hash][held]") {
  VenvWorld w(kPackages);
  w.configure({});
  auto first =
      w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(first);
  REQUIRE_THAT(first, Contains("RENDER gamma here"));
  // The mirror's file for gamma 0.3 now holds other bytes while its page
  // still names the first file's sha256: a wheel pip reads whole to check
  // would fail. The store holds that sha256, so the check is not needed:
  // the venv gets the store's copy, never these bytes.
  std::string other = w.tmp / "other-index";
  testenv::make_index(other, R"([{"name": "gamma", "version": "0.3",
      "files": {"gamma/__init__.py": "MESSAGE = 'a different gamma'\n"}},
      {"name": "beta", "version": "2.1",
      "files": {"beta/__init__.py": "VERSION = 'a different beta'\n"}}])");
  for (const char* f : {"/files/gamma-0.3-py3-none-any.whl", "/files/beta-2.1-py3-none-any.whl"}) {
    testenv::write_file(w.index + f, testenv::read_file(other + f));
  }
  auto second = w.compile(w.project("gamma\nquillwort==1.1\n"), true,
                          "import gamma, quillwort; print('RENDER', gamma.MESSAGE, quillwort.V)");
  INFO(second);
  CHECK_THAT(second, Contains("RENDER gamma here 1.1"));
  CHECK(w.env_dirs().size() == 2);
  std::string logs;
  for (const auto& l : testenv::list_dir(w.venvs + "/logs"))
    logs += testenv::read_file(w.venvs + "/logs/" + l);
  CHECK_THAT(logs,
             Contains("clsi-venvs: not hashed again: 1 wheel(s) whose sha256 the store holds"));
  // A file:// index's wheel is copied by the service, not by pip download.
  CHECK_THAT(logs, Contains("copied quillwort 1.1 from " + w.index +
                            "/files/quillwort-1.1-py3-none-any.whl, sha256 checked"));
  CHECK_THAT(logs, !Contains("Saved "));
  // A wheel the store does not hold is checked as pip always does: beta's
  // file no longer has the sha256 its page names.
  auto third =
      w.compile(w.project("beta==2.1\n"), true, "import beta; print('RENDER', beta.VERSION)");
  INFO(third);
  CHECK_THAT(third, Contains("the index served beta with another sha256"));
  CHECK_THAT(third, !Contains("RENDER a different beta"));
  CHECK_THAT(third, !Contains("RENDER 2.1"));
  CHECK(w.env_dirs().size() == 2);
  // A page that names, for gamma's file, the sha256 of quillwort 1.1 (which
  // the store holds): the store's copy is not what was resolved.
  const std::string page = w.index + "/simple/gamma/index.html";
  const std::string quill = testenv::read_file(w.index + "/simple/quillwort/index.html");
  std::smatch m;
  REQUIRE(std::regex_search(quill, m, std::regex("quillwort-1\\.1-[^#]*#sha256=([0-9a-f]{64})")));
  testenv::write_file(
      page, std::regex_replace(testenv::read_file(page), std::regex("sha256=[0-9a-f]{64}"),
                               "sha256=" + m[1].str()));
  auto fourth = w.compile(w.project("gamma\nquillwort==1.0\n"), true,
                          "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(fourth);
  CHECK_THAT(fourth, Contains("the index's file for gamma 0.3 claims the sha256 of quillwort 1.1"));
  CHECK_THAT(fourth, !Contains("RENDER"));
  CHECK(w.env_dirs().size() == 2);
}

TEST_CASE("the resolve reads the metadata of a wheel the store holds from the store's copy",
          "[user-messages][hash][held]") {
  VenvWorld w(kPackages);
  w.configure({});
  auto first =
      w.compile(w.project("gamma\n"), true, "import gamma; print('RENDER', gamma.MESSAGE)");
  INFO(first);
  REQUIRE_THAT(first, Contains("RENDER gamma here"));
  // The mirror's file for gamma 0.3 now holds other bytes, whose METADATA
  // requires a distribution no index has, under the sha256 of the first: a
  // resolve reading that file would fail. What the venv gets is the store's
  // copy, and the resolve now reads the store's copy's METADATA too.
  std::string other = w.tmp / "other-index";
  testenv::make_index(other,
                      R"([{"name": "gamma", "version": "0.3", "requires": ["nowhere-to-be-found"],
      "files": {"gamma/__init__.py": "MESSAGE = 'a different gamma'\n"}}])");
  testenv::write_file(w.index + "/files/gamma-0.3-py3-none-any.whl",
                      testenv::read_file(other + "/files/gamma-0.3-py3-none-any.whl"));
  auto second = w.compile(w.project("gamma\nquillwort\n"), true,
                          "import gamma, quillwort; print('RENDER', gamma.MESSAGE, quillwort.V)");
  INFO(second);
  CHECK_THAT(second, Contains("RENDER gamma here 1.1"));
  CHECK_THAT(second, !Contains("nowhere"));
  std::string logs;
  for (const auto& l : testenv::list_dir(w.venvs + "/logs"))
    logs += testenv::read_file(w.venvs + "/logs/" + l);
  CHECK_THAT(logs, Contains("clsi-venvs: not hashed again: the metadata of 1 of them read from "
                            "the store"));
}

TEST_CASE("gc and other store-wide messages reach the operator's log, never a user's",
          "[user-messages][gc]") {
  VenvWorld w(kPackages);
  w.configure({"eviction:", "  max_total_mb: 5", "  gc_interval_s: 1"});
  auto first = w.compile(w.project("bulky\n"), true, "print(1)");
  REQUIRE(w.env_dirs().size() == 1);
  const std::string first_key = w.env_dirs()[0];
  // Makes the first venv the least recently used.
  timespec old[2] = {{std::time(nullptr) - 600, 0}, {std::time(nullptr) - 600, 0}};
  REQUIRE(::utimensat(AT_FDCWD, (w.venvs + "/envs/" + first_key + ".complete").c_str(), old, 0) ==
          0);
  // Nothing shared with the first (a shared distribution is on disk once).
  auto second = w.compile(w.project("bulkier\ngamma\n"), true, "print(1)");
  std::this_thread::sleep_for(std::chrono::milliseconds(2500));  // scheduled gc runs too
  auto third = w.compile(w.project("gamma\n"), true, "print(1)");
  auto service_log = w.service->log();
  INFO(service_log);
  CHECK_THAT(service_log, Contains("gc: removed " + first_key.substr(0, 12)));
  for (const auto& log : {first, second, third}) {
    INFO(log);
    CHECK_THAT(log, !Contains("gc:"));
    CHECK_THAT(log, !Contains("evict"));
    CHECK_THAT(log, !Contains("max_total_mb"));
  }
  // No other project's venv is named.
  CHECK_THAT(second + third, !Contains(first_key.substr(0, 12)));
  CHECK_THAT(joined(annotations(first + second + third)), Catch::Equals(""));
}
