// The venv's own kernelspec: what it says, and that a wheel's file or a
// planted symlink cannot decide where it is written or what it runs.
#include <sys/stat.h>
#include <unistd.h>
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "kernelspec.hpp"
#include "test_env.hpp"

using Catch::Contains;

TEST_CASE("kernelspec: argv starts with the venv's own python3", "[kernelspec]") {
  testenv::TempDir tmp;
  std::string venv = tmp / "env";
  ::mkdir(venv.c_str(), 0755);
  REQUIRE(clsi::venv::write_kernelspec(venv, "Python 3 (project environment abc)").ok());
  auto path = clsi::venv::kernelspec_path(venv);
  CHECK(path == venv + "/share/jupyter/kernels/python3/kernel.json");
  auto spec = nlohmann::json::parse(testenv::read_file(path));
  CHECK(spec["argv"] == nlohmann::json::array({venv + "/bin/python3", "-m", "ipykernel_launcher",
                                               "-f", "{connection_file}"}));
  CHECK(spec["language"] == "python");
  CHECK(spec["display_name"] == "Python 3 (project environment abc)");
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0644);
}

TEST_CASE("kernelspec: a kernel.json a wheel installed is replaced", "[kernelspec]") {
  testenv::TempDir tmp;
  std::string venv = tmp / "env";
  std::string dir = venv + "/share/jupyter/kernels/python3";
  REQUIRE(testenv::run({"mkdir", "-p", dir}).status == 0);
  testenv::write_file(dir + "/kernel.json", R"({"argv": ["/tmp/evil", "{connection_file}"]})");
  REQUIRE(clsi::venv::write_kernelspec(venv, "x").ok());
  CHECK_THAT(testenv::read_file(dir + "/kernel.json"), Contains(venv + "/bin/python3"));
  CHECK_THAT(testenv::read_file(dir + "/kernel.json"), !Contains("/tmp/evil"));
  CHECK(testenv::list_dir(dir) == std::vector<std::string>{"kernel.json"});
}

TEST_CASE("kernelspec: a symlinked directory on the way is refused, nothing written outside",
          "[kernelspec]") {
  testenv::TempDir tmp;
  std::string venv = tmp / "env";
  std::string outside = tmp / "outside";
  REQUIRE(testenv::run({"mkdir", "-p", venv + "/share", outside}).status == 0);
  REQUIRE(::symlink(outside.c_str(), (venv + "/share/jupyter").c_str()) == 0);
  auto r = clsi::venv::write_kernelspec(venv, "x");
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.error(), Contains(venv));
  CHECK(testenv::list_tree(outside).empty());
}

TEST_CASE("kernelspec: JUPYTER_PATH puts the venv in front of what the compile had",
          "[kernelspec]") {
  CHECK(clsi::venv::jupyter_path_with("/s/envs/k", "") == "/s/envs/k/share/jupyter");
  CHECK(clsi::venv::jupyter_path_with("/s/envs/k", "/opt/a:/opt/b") ==
        "/s/envs/k/share/jupyter:/opt/a:/opt/b");
}
