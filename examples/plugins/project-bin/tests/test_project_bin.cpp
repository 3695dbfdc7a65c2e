// project-bin through the real ABI, with the SDK's installed test kit (a fake
// host on clsi::PluginHost), and once through the installed clsi-runner.
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "clsi/testkit/fake_host.hpp"
#include "clsi/testkit/temp_dir.hpp"

extern char** environ;

namespace fs = std::filesystem;
using clsi::testkit::FakeCompile;
using clsi::testkit::FakeHost;
using clsi::testkit::TempDir;

namespace {

const std::string kBasePath = "PATH=/usr/local/bin:/usr/bin:/bin";

void write_file(const std::string& path, const std::string& text, bool executable = false) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
  if (executable)
    fs::permissions(path, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                              fs::perms::others_read | fs::perms::others_exec);
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void add_tool(const std::string& dir, const std::string& name) {
  write_file(dir + "/" + name, "#!/bin/sh\necho \"hello from the project's " + name + "\"\n", true);
}

// A plugin instance created with `config` (file contents; "" for none).
std::unique_ptr<FakeHost> host_with(const TempDir& scratch, const std::string& config = "") {
  auto host = std::make_unique<FakeHost>(PROJECT_BIN_PLUGIN);
  std::string path;
  if (!config.empty()) {
    path = scratch / "project-bin.conf";
    write_file(path, config);
  }
  std::string why;
  const bool created = host->create(path, &why);
  INFO(why);
  REQUIRE(created);
  return host;
}

FakeCompile& compile_in(FakeCompile& c, const std::string& dir) {
  c.compile_dir = dir;
  c.base_env = {kBasePath, "HOME=/nonexistent"};
  return c;
}

}  // namespace

TEST_CASE("a project without bin/ is left alone, silently") {
  TempDir scratch, project;
  auto host = host_with(scratch);
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_NOTHING_TO_DO);
  CHECK(c.changes.empty());
  CHECK(c.output.empty());
  CHECK(c.command_env("PATH") == "/usr/local/bin:/usr/bin:/bin");
  CHECK(host->post(c) == CLSI_STATUS_NOTHING_TO_DO);
}

TEST_CASE("bin/ goes first on PATH, in front of what the command would have had") {
  TempDir scratch, project;
  add_tool(project / "bin", "hello");
  write_file(project / "bin/README", "not a program");
  auto host = host_with(scratch);
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_OK);
  CHECK(c.env["PATH"] == project / "bin" + ":/usr/local/bin:/usr/bin:/bin");
  REQUIRE(c.changes.size() == 1);
  CHECK(c.changes[0].op == CLSI_ENV_PREPEND);
  CHECK(c.changes[0].plugin == "project-bin");
  CHECK(c.changes[0].value == project / "bin");
  CHECK(c.output == "[project-bin] putting ./bin first on PATH (1 program: hello)\n");
  CHECK(host->post(c, 0) == CLSI_STATUS_NOTHING_TO_DO);
}

TEST_CASE("without a PATH in the base environment, PATH is bin/ alone") {
  TempDir scratch, project;
  fs::create_directories(project / "bin");
  auto host = host_with(scratch);
  FakeCompile c;
  c.compile_dir = project.path();
  REQUIRE(host->pre(c) == CLSI_STATUS_OK);
  CHECK(c.env["PATH"] == project / "bin");
  CHECK(c.output == "[project-bin] putting ./bin first on PATH (no programs yet)\n");
}

TEST_CASE("a symbolic link that stays in the project is used by the path it resolves to") {
  TempDir scratch, project;
  add_tool(project / "tools/scripts", "b");
  add_tool(project / "tools/scripts", "a");
  fs::create_directory_symlink("tools/scripts", project / "bin");
  auto host = host_with(scratch);
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_OK);
  CHECK(c.env["PATH"] == project / "tools/scripts" + ":/usr/local/bin:/usr/bin:/bin");
  CHECK(c.output == "[project-bin] putting ./bin first on PATH (2 programs: a, b)\n");
}

TEST_CASE("a bin/ that leaves the project is refused, and the log does not say where it leads") {
  TempDir scratch, project, elsewhere;
  add_tool(elsewhere / "bin", "latexmk");
  auto host = host_with(scratch);

  SECTION("an absolute link") {
    fs::create_directory_symlink(elsewhere / "bin", project / "bin");
  }
  SECTION("a relative link up and out") {
    fs::create_directory_symlink("../" + fs::path(elsewhere.path()).filename().string() + "/bin",
                                 project / "bin");
  }
  SECTION("a link to the directory above") {
    fs::create_directory_symlink("..", project / "bin");
  }

  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_FELL_BACK);
  CHECK(c.changes.empty());
  CHECK(c.command_env("PATH") == "/usr/local/bin:/usr/bin:/bin");
  CHECK(c.output ==
        "[project-bin] ./bin leads outside the project (a symbolic link); PATH is left "
        "unchanged\n");
  CHECK(c.output.find(elsewhere.path()) == std::string::npos);
  CHECK(host->post(c) == CLSI_STATUS_NOTHING_TO_DO);
}

TEST_CASE("a link in a parent of the configured dir that leaves the project is refused") {
  TempDir scratch, project, elsewhere;
  add_tool(elsewhere / "bin", "tool");
  fs::create_directory_symlink(elsewhere.path(), project / "tools");
  auto host = host_with(scratch, "dir: tools/bin\n");
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_FELL_BACK);
  CHECK(c.changes.empty());
  CHECK(c.output.find("./tools/bin leads outside the project") != std::string::npos);
}

TEST_CASE("a dangling link and a bin that is a file are refused") {
  TempDir scratch, project;
  auto host = host_with(scratch);
  std::string expected;
  SECTION("dangling") {
    fs::create_directory_symlink("nowhere", project / "bin");
    expected = "[project-bin] ./bin is a symbolic link that leads nowhere";
  }
  SECTION("a file") {
    write_file(project / "bin", "#!/bin/sh\n", true);
    expected = "[project-bin] ./bin is not a directory; PATH is left unchanged\n";
  }
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_FELL_BACK);
  CHECK(c.changes.empty());
  CHECK(c.output.rfind(expected, 0) == 0);
}

TEST_CASE("a compile directory whose path has a ':' cannot go on PATH") {
  TempDir scratch, project("clsi:colon");
  fs::create_directories(project / "bin");
  auto host = host_with(scratch);
  FakeCompile c;
  REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_FELL_BACK);
  CHECK(c.changes.empty());
  CHECK(c.output.find("contains ':'") != std::string::npos);
}

TEST_CASE("require_permission: only compiles granted the permission get bin/") {
  TempDir scratch, project;
  add_tool(project / "bin", "hello");
  auto host = host_with(scratch, "# only for trusted projects\nrequire_permission: project.bin\n");
  FakeCompile c;
  compile_in(c, project.path());
  SECTION("not granted") {
    REQUIRE(host->pre(c) == CLSI_STATUS_FELL_BACK);
    CHECK(c.changes.empty());
    CHECK(c.output ==
          "[project-bin] ./bin is not used: this compile lacks the permission 'project.bin'; "
          "PATH is left unchanged\n");
  }
  SECTION("granted") {
    c.permissions = {"project.bin"};
    REQUIRE(host->pre(c) == CLSI_STATUS_OK);
    CHECK(c.env["PATH"] == project / "bin" + ":/usr/local/bin:/usr/bin:/bin");
  }
  SECTION("python.install is not the permission") {
    c.allow_python_install = true;
    CHECK(host->pre(c) == CLSI_STATUS_FELL_BACK);
  }
}

TEST_CASE("the configuration: enabled, dir, and errors that name the key and the line") {
  TempDir scratch, project;
  add_tool(project / "bin", "hello");
  add_tool(project / "scripts", "build-figures");

  SECTION("enabled: false") {
    auto host = host_with(scratch, "enabled: false\n");
    FakeCompile c;
    CHECK(host->pre(compile_in(c, project.path())) == CLSI_STATUS_NOTHING_TO_DO);
    CHECK(c.changes.empty());
  }
  SECTION("dir: scripts/") {
    auto host = host_with(scratch, "enabled: true   # the default\ndir: scripts/\n");
    FakeCompile c;
    REQUIRE(host->pre(compile_in(c, project.path())) == CLSI_STATUS_OK);
    CHECK(c.env["PATH"] == project / "scripts" + ":/usr/local/bin:/usr/bin:/bin");
    CHECK(c.output == "[project-bin] putting ./scripts first on PATH (1 program: build-figures)\n");
  }

  struct Bad {
    std::string text, says;
  };
  for (const auto& bad : std::vector<Bad>{
           {"colour: blue\n", ":1: unknown key 'colour'"},
           {"\nenabled: yes\n", ":2: enabled must be true or false, not 'yes'"},
           {"dir: ../other/bin\n", ":1: dir must be a relative path inside the project"},
           {"dir: /usr/bin\n", ":1: dir must be a relative path inside the project"},
           {"dir:\n", ":1: dir must be a relative path"},
           {"just words\n", ":1: expected 'key: value'"},
       }) {
    DYNAMIC_SECTION("refused: " << bad.text) {
      FakeHost host(PROJECT_BIN_PLUGIN);
      const std::string path = scratch / "bad.conf";
      write_file(path, bad.text);
      std::string why;
      CHECK_FALSE(host.create(path, &why));
      CHECK_FALSE(why.empty());
      bool named = false;
      for (const auto& line : host.logs())
        named = named || line.find(path + bad.says) != std::string::npos;
      INFO("operator log: " << (host.logs().empty() ? "" : host.logs().back()));
      CHECK(named);
    }
  }
  SECTION("a configuration file that does not exist") {
    FakeHost host(PROJECT_BIN_PLUGIN);
    CHECK_FALSE(host.create(scratch / "missing.conf"));
  }
}

TEST_CASE("many compiles of one instance at once, each with its own project") {
  TempDir scratch;
  auto host = host_with(scratch);
  constexpr int kCompiles = 16;
  std::vector<std::unique_ptr<TempDir>> projects;
  std::vector<std::unique_ptr<FakeCompile>> compiles;
  for (int i = 0; i < kCompiles; ++i) {
    projects.push_back(std::make_unique<TempDir>());
    if (i % 2 == 0) add_tool(*projects.back() / "bin", "tool" + std::to_string(i));
    compiles.push_back(std::make_unique<FakeCompile>());
    compile_in(*compiles.back(), projects.back()->path());
    compiles.back()->project_id = "project-" + std::to_string(i);
  }
  std::vector<clsi_status> statuses(kCompiles, CLSI_STATUS_ERROR);
  std::vector<std::thread> threads;
  for (int i = 0; i < kCompiles; ++i) {
    threads.emplace_back([&, i] {
      statuses[i] = host->pre(*compiles[i]);
      host->post(*compiles[i]);
    });
  }
  for (auto& t : threads)
    t.join();
  for (int i = 0; i < kCompiles; ++i) {
    INFO("compile " << i);
    if (i % 2 == 0) {
      CHECK(statuses[i] == CLSI_STATUS_OK);
      CHECK(compiles[i]->env["PATH"] == *projects[i] / "bin" + ":/usr/local/bin:/usr/bin:/bin");
    } else {
      CHECK(statuses[i] == CLSI_STATUS_NOTHING_TO_DO);
      CHECK(compiles[i]->changes.empty());
    }
  }
}

// The installed reference host runs a command that finds the project's tool
// by name; the runner's own output.log lines name the plugin.
TEST_CASE("through clsi-runner: the command runs the project's own program") {
  TempDir scratch, project;
  add_tool(project / "bin", "make-figures");
  const std::string config = scratch / "project-bin.conf";
  write_file(config, "dir: bin\n");
  std::vector<std::string> args = {CLSI_RUNNER,
                                   "--plugin",
                                   PROJECT_BIN_PLUGIN,
                                   "--plugin-config",
                                   config,
                                   "--compile-dir",
                                   project.path(),
                                   "--",
                                   "sh",
                                   "-c",
                                   "make-figures && command -v make-figures"};
  std::vector<char*> argv;
  for (auto& a : args)
    argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(::posix_spawn(&pid, CLSI_RUNNER, nullptr, nullptr, argv.data(), environ) == 0);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  const std::string log = read_file(project / "output.log");
  INFO("output.log:\n" << log);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(log.find("[project-bin] putting ./bin first on PATH (1 program: make-figures)") !=
        std::string::npos);
  CHECK(log.find("environment: PATH prepended to by project-bin") != std::string::npos);
  CHECK(log.find("hello from the project's make-figures") != std::string::npos);
  CHECK(log.find(project / "bin/make-figures") != std::string::npos);
}
