// Real Jupyter kernels: a render that starts its kernel the way Quarto does
// (by kernelspec name from the Jupyter path, with the driver run by
// $QUARTO_PYTHON) must run the cells in the project's venv, whatever other
// python3 kernelspecs the machine or the compile's HOME carry.
#include <sys/stat.h>
#include <catch2/catch.hpp>

#include "venv_world.hpp"

using Catch::Contains;

namespace {

const std::string kRenderer = CLSI_SOURCE_DIR "/examples/tools/quarto-standin";

// A python3 kernelspec under `data_dir` whose argv[0] is `python`.
void write_spec(const std::string& data_dir, const std::string& name, const std::string& python) {
  std::string dir = data_dir + "/kernels/" + name;
  REQUIRE(testenv::run({"mkdir", "-p", dir}).status == 0);
  testenv::write_file(dir + "/kernel.json",
                      R"({"argv": [")" + python +
                          R"(", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                          "display_name": "not the venv", "language": "python"})");
}

struct KernelWorld : testenv::VenvWorld {
  std::string home = tmp / "home";
  KernelWorld() {
    configure();
    ::mkdir(home.c_str(), 0755);
  }

  // A project whose document imports a package only the venv has and says
  // where its kernel runs.
  std::string document(const std::string& front_matter) {
    std::string dir = project("alpha\n");
    testenv::write_file(dir + "/doc.qmd",
                        "---\ntitle: kernel\n" + front_matter +
                            "---\n\n```{python}\n"
                            "import os, sys, alpha\n"
                            "print('KERNEL', sys.executable)\n"
                            "print('JUPYTER_PATH', os.environ.get('JUPYTER_PATH'))\n"
                            "print('RENDER', alpha.MESSAGE)\n"
                            "```\n");
    return dir;
  }

  std::string render(const std::string& dir, const std::map<std::string, std::string>& env,
                     int* status) const {
    std::vector<std::string> argv = {CLSI_RUNNER_PATH,
                                     "--plugin",
                                     CLSI_PLUGIN_PATH,
                                     "--plugin-config",
                                     config,
                                     "--compile-dir",
                                     dir,
                                     "--allow-python-install",
                                     "--timeout",
                                     "280",
                                     "--",
                                     kRenderer,
                                     "render",
                                     "doc.qmd"};
    const std::size_t before = testenv::file_size(dir + "/output.log");  // the runner appends
    auto r = testenv::run(argv, env);
    *status = r.status;
    return testenv::read_file_from(dir + "/output.log", before) + r.output;
  }
};

void expect_venv_kernel(const KernelWorld& w, const std::string& out, int status) {
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Contains("KERNEL " + w.venvs + "/envs/"));
  CHECK_THAT(out, Contains("JUPYTER_PATH " + w.venvs + "/envs/"));
  CHECK_THAT(out, Contains("RENDER alpha 2.1"));
  CHECK_THAT(out, !Contains("ModuleNotFoundError"));
}

}  // namespace

TEST_CASE("kernel: Debian's /usr/share/jupyter python3 spec does not take the kernel away",
          "[kernel]") {
  // Debian's python3-ipykernel ships this spec, naming /usr/bin/python3.
  REQUIRE(testenv::exists("/usr/share/jupyter/kernels/python3/kernel.json"));
  REQUIRE_THAT(testenv::read_file("/usr/share/jupyter/kernels/python3/kernel.json"),
               Contains("/usr/bin/python3"));
  KernelWorld w;
  auto front = GENERATE(std::string(), std::string("jupyter: python3\n"));
  INFO("front matter: " << front);
  std::string dir = w.document(front);
  int status = -1;
  auto out = w.render(dir, {{"HOME", w.home}, {"JUPYTER_PATH", ""}}, &status);
  expect_venv_kernel(w, out, status);
  CHECK_THAT(out, Contains("JUPYTER_PATH " + w.venvs));
}

TEST_CASE("kernel: a user-level python3 spec in the compile's HOME does not win", "[kernel]") {
  KernelWorld w;
  // What `python3 -m ipykernel install --user` leaves in a compile user's HOME.
  write_spec(w.home + "/.local/share/jupyter", "python3", "/usr/bin/python3");
  auto front = GENERATE(std::string(), std::string("jupyter: python3\n"));
  INFO("front matter: " << front);
  std::string dir = w.document(front);
  int status = -1;
  auto out = w.render(dir, {{"HOME", w.home}, {"JUPYTER_PATH", ""}}, &status);
  expect_venv_kernel(w, out, status);
}

TEST_CASE("kernel: the host's JUPYTER_PATH stays behind the venv's, pip-style spec included",
          "[kernel]") {
  KernelWorld w;
  // A /usr/local-like data dir with pip's wheel-layout spec (argv[0] "python")
  // and a kernel of another name that documents may still ask for.
  std::string usr_local = w.tmp / "usr-local/share/jupyter";
  write_spec(usr_local, "python3", "python");
  write_spec(usr_local, "hostkernel", "/usr/bin/python3");
  auto front = GENERATE(std::string(), std::string("jupyter: python3\n"));
  INFO("front matter: " << front);
  std::string dir = w.document(front);
  int status = -1;
  auto out = w.render(dir, {{"HOME", w.home}, {"JUPYTER_PATH", usr_local}}, &status);
  expect_venv_kernel(w, out, status);
  // Prepended, not overwritten: the host's entry is still on the path.
  CHECK_THAT(out, Contains("/share/jupyter:" + usr_local));
}

TEST_CASE("kernel: a document naming another kernel gets that kernel", "[kernel]") {
  KernelWorld w;
  std::string usr_local = w.tmp / "usr-local/share/jupyter";
  write_spec(usr_local, "hostkernel", "/usr/bin/python3");
  std::string dir = w.project("alpha\n");
  testenv::write_file(dir + "/doc.qmd",
                      "---\njupyter: hostkernel\n---\n\n```{python}\nimport sys\n"
                      "print('KERNEL', sys.executable)\n```\n");
  int status = -1;
  auto out = w.render(dir, {{"HOME", w.home}, {"JUPYTER_PATH", usr_local}}, &status);
  INFO(out);
  CHECK(status == 0);
  CHECK_THAT(out, Contains("KERNEL /usr/bin/python3"));
}
