// Wheels that attack the builder, end to end through clsi-runner with real
// python and pip: no code from the venv or a wheel runs while the venv is
// built, and a wheel that replaces the venv's own files, writes outside it or
// unpacks to too many files is refused, its venv removed, and the render
// falls back to the base interpreter.
//
// The wheels come from examples/tools/mkindex.py (keys pth_marker, data,
// many_files, record_extra), in an index of the test's own.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "venv_world.hpp"

using Catch::Contains;
using testenv::VenvWorld;

namespace {

const char* const kPipRan = "[python-venv] installing ";
const char* const kBasePython = "render python: base";

std::string json(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out + "\"";
}

// A store, a directory for markers, and an index holding the given wheels.
struct Malicious {
  VenvWorld w;
  std::string markers = w.tmp / "markers";
  std::string index_dir = w.tmp / "malicious-index";

  Malicious() { ::mkdir(markers.c_str(), 0755); }

  // `wheels`: JSON objects of a mkindex spec, comma-separated.
  void serve(const std::string& wheels, const std::vector<std::string>& config_extra = {}) {
    testenv::make_index(index_dir, "[" + wheels + "]");
    w.configure(config_extra, "file://" + index_dir + "/simple/");
  }

  [[nodiscard]] std::vector<std::string> markers_left() const { return testenv::list_dir(markers); }
};

struct Compiled {
  std::string log;
  int status = -1;
};

// One compile whose "render" first says whether `marker` exists: the build
// has completed by then, and no render has run yet.
Compiled compile_checking(const VenvWorld& w, const std::string& dir, const std::string& marker,
                          const std::string& code) {
  auto argv = w.runner_argv(dir, true, code);
  argv[argv.size() - 2] = "if [ -e '" + marker +
                          "' ]; then echo 'marker check: PRESENT before the render'; "
                          "else echo 'marker check: absent before the render'; fi; "
                          "echo \"render python: ${QUARTO_PYTHON:-base}\"; "
                          "\"${QUARTO_PYTHON:-/usr/bin/python3}\" -c \"$0\"";
  const std::size_t before = testenv::file_size(dir + "/output.log");  // the runner appends
  auto r = testenv::run(argv, {}, "", 300);
  return {testenv::read_file_from(dir + "/output.log", before) + r.output, r.status};
}

void wait_until_no_process_mentions(const std::string& needle, int seconds) {
  for (int i = 0; i < seconds * 20 && !testenv::leftovers_mentioning(needle).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// What every refusal leaves: the compile succeeded on the base interpreter,
// nothing of the venv is kept, nothing is left running.
void check_refused_and_fell_back(const Malicious& m, const Compiled& r) {
  CHECK(r.status == 0);
  CHECK_THAT(r.log, Contains(kPipRan));  // pip did install it; the check after refused it
  CHECK_THAT(r.log, Contains("failed"));
  CHECK_THAT(r.log, Contains(kBasePython));
  CHECK_THAT(r.log, Contains("RENDER ran"));
  CHECK(m.w.env_dirs().empty());
  for (const auto& e : testenv::list_dir(m.w.venvs + "/envs"))
    CHECK_THAT(e, !Contains(".complete"));
  wait_until_no_process_mentions(m.w.venvs, 10);
  const auto left = testenv::leftovers_mentioning(m.w.venvs);
  INFO(testenv::command_lines(left));
  CHECK(left.empty());
}

}  // namespace

TEST_CASE("malicious wheel: a .pth never runs while the venv is built, only in the render",
          "[malicious-wheel][pth]") {
  Malicious m;
  std::string builder;
  SECTION("default builder") {
    builder = "auto";
  }
  SECTION("inline builder") {
    builder = "inline";
  }
  std::string marker = m.markers + "/pth-ran";
  m.serve(R"({"name": "pthmark", "version": "1.0",
              "files": {"pthmark/__init__.py": "MESSAGE = 'pthmark here'\n"},
              "pth_marker": )" +
              json(marker) + "}",
          {"builder: " + builder});
  auto dir = m.w.project("pthmark\n");
  auto r = compile_checking(m.w, dir, marker, "import pthmark; print('RENDER', pthmark.MESSAGE)");
  INFO("builder: " << builder);
  INFO(r.log);
  CHECK(r.status == 0);
  CHECK_THAT(r.log, Contains(kPipRan));
  CHECK_THAT(r.log, Contains("built environment"));
  // Right after the build, before the render: no interpreter of the venv ran.
  CHECK_THAT(r.log, Contains("marker check: absent before the render"));
  CHECK_THAT(r.log, !Contains("marker check: PRESENT"));
  CHECK_THAT(r.log, Contains("render python: " + m.w.venvs + "/envs/"));
  CHECK_THAT(r.log, Contains("RENDER pthmark here"));
  // The render's interpreter did run it (the user's own code, by design): the
  // .pth works, so its absence before the render means the build never ran it.
  CHECK(testenv::exists(marker));
  REQUIRE(m.w.env_dirs().size() == 1);
  auto record = testenv::read_file(m.w.venvs + "/envs/" + m.w.env_dirs()[0] + ".complete");
  CHECK_THAT(record, Contains("\"pthmark==1.0\""));
}

TEST_CASE("malicious wheel: .data/scripts/python3 replacing the venv's interpreter is refused",
          "[malicious-wheel][interpreter]") {
  Malicious m;
  std::string marker = m.markers + "/wheel-python3-ran";
  // A working interpreter, so that a builder that ran it would not notice.
  std::string script = "#!/bin/sh\necho ran > '" + marker + "'\nexec /usr/bin/python3 \"$@\"\n";
  m.serve(R"({"name": "evil", "version": "1.0", "files": {"evil/__init__.py": "X = 1\n"},
              "data": {"scripts/python3": )" +
          json(script) + "}}");
  auto dir = m.w.project("evil\n");
  auto r = compile_checking(m.w, dir, marker, "print('RENDER ran')");
  INFO(r.log);
  // Refused as it is unpacked: nothing of it reaches a venv.
  CHECK_THAT(r.log, Contains("the wheel evil-1.0 would replace the venv's own bin/python3"));
  check_refused_and_fell_back(m, r);
  // Nothing ever ran the wheel's python3: not the builder, not the render.
  CHECK_THAT(r.log, Contains("marker check: absent before the render"));
  CHECK(m.markers_left().empty());
}

TEST_CASE("malicious wheel: .data/data/pyvenv.cfg replacing the venv's configuration is refused",
          "[malicious-wheel][pyvenv]") {
  Malicious m;
  // Plausible enough that an interpreter would still start with it.
  std::string cfg =
      "home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.11.2\n"
      "# rewritten by a wheel\n";
  m.serve(R"({"name": "evilcfg", "version": "1.0", "files": {"evilcfg/__init__.py": "X = 1\n"},
              "data": {"data/pyvenv.cfg": )" +
          json(cfg) + "}}");
  auto dir = m.w.project("evilcfg\n");
  auto r = compile_checking(m.w, dir, m.markers + "/none", "print('RENDER ran')");
  INFO(r.log);
  CHECK_THAT(r.log, Contains("the wheel evilcfg-1.0 would replace the venv's own pyvenv.cfg"));
  check_refused_and_fell_back(m, r);
}

TEST_CASE("malicious wheel: a RECORD that lists a path outside the venv is refused",
          "[malicious-wheel][record]") {
  Malicious m;
  // pip keeps RECORD rows it did not install; `pip uninstall` would delete them.
  m.serve(R"({"name": "liar", "version": "1.0", "files": {"liar/__init__.py": "X = 1\n"},
              "record_extra": ["../../../../../outside-the-venv"]})");
  auto dir = m.w.project("liar\n");
  auto r = compile_checking(m.w, dir, m.markers + "/none", "print('RENDER ran')");
  INFO(r.log);
  CHECK_THAT(r.log, Contains("the wheel liar-1.0 lists '../../../../../outside-the-venv' in its "
                             "RECORD, a path outside the venv"));
  check_refused_and_fell_back(m, r);
}

TEST_CASE("malicious wheel: 60,000 files are refused before one is unpacked by caps.max_venv_files",
          "[malicious-wheel][caps]") {
  Malicious m;
  m.serve(R"({"name": "manyfiles", "version": "1.0",
              "files": {"manyfiles/__init__.py": "X = 1\n"}, "many_files": 60000})",
          {"caps:", "  max_venv_files: 10000"});
  auto dir = m.w.project("manyfiles\n");
  auto start = std::chrono::steady_clock::now();
  auto r = compile_checking(m.w, dir, m.markers + "/none", "print('RENDER ran')");
  auto took = std::chrono::steady_clock::now() - start;
  INFO(r.log);
  CHECK_THAT(r.log, Contains("the wheel manyfiles-1.0 holds 60004 files, over "
                             "caps.max_venv_files (10000)"));
  // Refused from the archive's directory: nothing was unpacked or stored.
  auto logs = testenv::list_dir(m.w.venvs + "/logs");
  REQUIRE(logs.size() == 1);
  auto build_log = testenv::read_file(m.w.venvs + "/logs/" + logs[0]);
  CHECK_THAT(build_log, !Contains("unpacked manyfiles"));
  CHECK(testenv::list_dir(m.w.venvs + "/dists").empty());
  CHECK(took < std::chrono::seconds(120));
  check_refused_and_fell_back(m, r);
}
