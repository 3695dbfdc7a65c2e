// Reading a venv without running it: METADATA headers, the dist-info
// directories of site-packages, and the check after pip against what venv
// created. The venvs here are plain directory trees; no python runs.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <string>
#include <vector>

#include "dist_info.hpp"
#include "store.hpp"
#include "test_env.hpp"

using Catch::Contains;
using clsi::venv::find_site_packages;
using clsi::venv::inspect_venv;
using clsi::venv::installed_list;
using clsi::venv::is_venv_own_file;
using clsi::venv::measure_tree;
using clsi::venv::parse_metadata;
using clsi::venv::read_distributions;
using clsi::venv::snapshot_venv;

namespace fs = std::filesystem;

namespace {

const char* const kSite = "lib/python3.11/site-packages";

std::string metadata(const std::string& name, const std::string& version) {
  return "Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version +
         "\nSummary: a package\n\nThe long description.\n";
}

// A tree shaped like `python -m venv --without-pip` output.
struct FakeVenv {
  testenv::TempDir tmp;
  std::string root = tmp / "venv";
  std::string site = root + "/" + kSite;

  FakeVenv() {
    fs::create_directories(site);
    fs::create_directories(root + "/include");
    fs::create_directories(root + "/bin");
    REQUIRE(::symlink("/usr/bin/python3", (root + "/bin/python").c_str()) == 0);
    REQUIRE(::symlink("python", (root + "/bin/python3").c_str()) == 0);
    REQUIRE(::symlink("python", (root + "/bin/python3.11").c_str()) == 0);
    REQUIRE(::symlink("lib", (root + "/lib64").c_str()) == 0);
    testenv::write_file(root + "/bin/activate", "# activate\n");
    testenv::write_file(root + "/bin/Activate.ps1", "# ps1\n");
    testenv::write_file(root + "/pyvenv.cfg", "home = /usr/bin\n");
  }

  // A dist-info as pip leaves it; `record` rows are added to its own files.
  std::string add_dist(const std::string& name, const std::string& version,
                       const std::vector<std::string>& record = {}) {
    std::string dir = name + "-" + version + ".dist-info";
    testenv::write_file(site + "/" + dir + "/METADATA", metadata(name, version));
    std::string rec = dir + "/METADATA,sha256=x,10\n" + dir + "/RECORD,,\n";
    for (const auto& r : record)
      rec += r + ",,\n";
    testenv::write_file(site + "/" + dir + "/RECORD", rec);
    return dir;
  }

  void replace_with_file(const std::string& rel, const std::string& content) {
    ::unlink((root + "/" + rel).c_str());
    testenv::write_file(root + "/" + rel, content);
  }
};

std::string refusal(const FakeVenv& v, const clsi::venv::VenvSnapshot& before) {
  auto c = inspect_venv(v.root, before, "3.11", 1000);
  REQUIRE_FALSE(c.ok());
  return c.error();
}

}  // namespace

TEST_CASE("dist-info: METADATA headers give Name and Version", "[dist-info]") {
  SECTION("plain") {
    auto h = parse_metadata(metadata("Alpha_Pkg", "1.0.post1+local.2"));
    REQUIRE(h.ok());
    CHECK(h->name == "Alpha_Pkg");
    CHECK(h->version == "1.0.post1+local.2");
  }
  SECTION("CRLF, any case, folded other headers, and a body that looks like headers") {
    auto h = parse_metadata(
        "metadata-version: 2.1\r\nNAME:   beta  \r\nSummary: one\r\n  two\r\nversion: 2!3.0\r\n"
        "\r\nName: not-this\nVersion: 9\n");
    REQUIRE(h.ok());
    CHECK(h->name == "beta");
    CHECK(h->version == "2!3.0");
  }
  SECTION("no body at all") {
    auto h = parse_metadata("Name: g\nVersion: 0.3");
    REQUIRE(h.ok());
    CHECK(h->version == "0.3");
  }
}

TEST_CASE("dist-info: malformed METADATA is an error that says what is wrong", "[dist-info]") {
  struct Bad {
    std::string text;
    std::string error;
  };
  for (const auto& b : std::vector<Bad>{
           {"Name: a\nSummary: x\n", "no Version header"},
           {"Version: 1\n", "no Name header"},
           {"Name: a\nVersion: 1\nName: b\n", "two Name headers"},
           {"Name: a\nVersion: 1\nVersion: 2\n", "two Version headers"},
           {"Name: a\nthis is not a header\nVersion: 1\n", "line 2: not a 'Header: value' line"},
           {": value\nName: a\nVersion: 1\n", "line 1: not a 'Header: value' line"},
           {"Bad Field: x\nName: a\nVersion: 1\n", "line 1: not a 'Header: value' line"},
           {" continued\nName: a\nVersion: 1\n", "line 1: a continuation line"},
           {"Name: a\n b\nVersion: 1\n", "Name header folded"},
           {"Name: a b\nVersion: 1\n", "not a project name"},
           {"Name: -a\nVersion: 1\n", "not a project name"},
           {"Name: \nVersion: 1\n", "not a project name"},
           {"Name: a\nVersion: 1 beta\n", "not a version"},
           {"Name: a\nVersion: 1\x1b[2J\n", "not a version"},
           {std::string("Name: a\nVersion: 1\n\0", 21), "NUL"},
           {"", "no Name header"},
           {"\nName: a\nVersion: 1\n", "no Name header"},  // blank first line: no headers
       }) {
    INFO("METADATA: " << b.text);
    auto h = parse_metadata(b.text);
    REQUIRE_FALSE(h.ok());
    CHECK_THAT(h.error(), Contains(b.error));
  }
}

TEST_CASE("dist-info: site-packages holds the installed distributions, sorted", "[dist-info]") {
  FakeVenv v;
  v.add_dist("zeta", "1.0");
  v.add_dist("Alpha", "2.1");
  testenv::write_file(v.site + "/legacy-0.1.egg-info/PKG-INFO", metadata("legacy", "0.1"));
  testenv::write_file(v.site + "/alpha/__init__.py", "");
  auto sp = find_site_packages(v.root, "");
  REQUIRE(sp.ok());
  CHECK(*sp == kSite);
  auto d = read_distributions(v.root, *sp);
  REQUIRE(d.ok());
  REQUIRE(d->size() == 3);
  CHECK((*d)[0].dir == "Alpha-2.1.dist-info");
  CHECK((*d)[0].wheel() == "Alpha-2.1");
  CHECK(installed_list(*d) == std::vector<std::string>{"Alpha==2.1", "legacy==0.1", "zeta==1.0"});
}

TEST_CASE("dist-info: a malformed distribution is an error naming its directory", "[dist-info]") {
  FakeVenv v;
  v.add_dist("good", "1.0");
  SECTION("missing Version") {
    testenv::write_file(v.site + "/bad-1.0.dist-info/METADATA", "Name: bad\n\nbody\n");
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("bad-1.0.dist-info"));
    CHECK_THAT(d.error(), Contains("METADATA has no Version header"));
  }
  SECTION("malformed header line") {
    testenv::write_file(v.site + "/bad-1.0.dist-info/METADATA", "Name: bad\nno colon here\n");
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("bad-1.0.dist-info: METADATA line 2"));
  }
  SECTION("no METADATA") {
    fs::create_directories(v.site + "/bad-1.0.dist-info");
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("bad-1.0.dist-info: no METADATA file"));
  }
  SECTION("METADATA is a directory") {
    fs::create_directories(v.site + "/bad-1.0.dist-info/METADATA");
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("bad-1.0.dist-info: METADATA is not a regular file"));
  }
  SECTION("a dist-info that is a file") {
    testenv::write_file(v.site + "/bad-1.0.dist-info", metadata("bad", "1.0"));
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("bad-1.0.dist-info: it is not a directory"));
  }
}

TEST_CASE("dist-info: only the headers of a huge METADATA are read, and they are bounded",
          "[dist-info]") {
  FakeVenv v;
  SECTION("a huge body after the headers is never read") {
    // 20 MB of description, with no blank line in it to stop at.
    testenv::write_file(v.site + "/big-1.0.dist-info/METADATA",
                        "Name: big\nVersion: 1.0\n\n" + std::string(20 * 1024 * 1024, 'x'));
    auto d = read_distributions(v.root, kSite);
    REQUIRE(d.ok());
    CHECK(installed_list(*d) == std::vector<std::string>{"big==1.0"});
  }
  SECTION("headers over the bound are an error, read only up to it") {
    std::string many;
    while (many.size() < 20 * 1024 * 1024)
      many += "Classifier: Programming Language :: Python\n";
    testenv::write_file(v.site + "/huge-1.0.dist-info/METADATA",
                        "Name: huge\n" + many + "Version: 1.0\n");
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("huge-1.0.dist-info"));
    CHECK_THAT(d.error(), Contains("headers are longer than 262144 bytes"));
  }
  SECTION("a bound of the caller's") {
    testenv::write_file(v.site + "/mid-1.0.dist-info/METADATA",
                        "Summary: " + std::string(5000, 's') + "\nName: mid\nVersion: 1.0\n\n");
    CHECK(read_distributions(v.root, kSite).ok());
    auto d = read_distributions(v.root, kSite, 1024);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("longer than 1024 bytes"));
  }
}

TEST_CASE("dist-info: symlinks are never followed out of the venv", "[dist-info]") {
  FakeVenv v;
  testenv::TempDir outside;
  testenv::write_file(outside / "real-1.0.dist-info/METADATA", metadata("real", "1.0"));
  SECTION("a symlinked dist-info directory") {
    REQUIRE(::symlink((outside / "real-1.0.dist-info").c_str(),
                      (v.site + "/linked-1.0.dist-info").c_str()) == 0);
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("linked-1.0.dist-info: it is a symbolic link"));
  }
  SECTION("a symlinked METADATA") {
    fs::create_directories(v.site + "/linked-1.0.dist-info");
    REQUIRE(::symlink((outside / "real-1.0.dist-info/METADATA").c_str(),
                      (v.site + "/linked-1.0.dist-info/METADATA").c_str()) == 0);
    auto d = read_distributions(v.root, kSite);
    REQUIRE_FALSE(d.ok());
    CHECK_THAT(d.error(), Contains("linked-1.0.dist-info: METADATA is a symbolic link"));
  }
  SECTION("a symlinked site-packages or lib is not used") {
    fs::remove_all(v.root + "/lib/python3.11");
    fs::create_directories(outside / "python3.11/site-packages");
    REQUIRE(::symlink((outside / "python3.11").c_str(), (v.root + "/lib/python3.11").c_str()) == 0);
    CHECK_FALSE(find_site_packages(v.root, "3.11").ok());
    CHECK_FALSE(find_site_packages(v.root, "").ok());
    CHECK_FALSE(read_distributions(v.root, kSite).ok());
    fs::remove_all(v.root + "/lib");
    ::unlink((v.root + "/lib").c_str());
    REQUIRE(::symlink(outside.path().c_str(), (v.root + "/lib").c_str()) == 0);
    CHECK_FALSE(find_site_packages(v.root, "3.11").ok());
  }
  SECTION("the venv itself as a symlink") {
    std::string link = v.tmp / "venv-link";
    REQUIRE(::symlink(v.root.c_str(), link.c_str()) == 0);
    CHECK_FALSE(find_site_packages(link, "3.11").ok());
  }
}

TEST_CASE("dist-info: site-packages is found by listing lib/", "[dist-info]") {
  FakeVenv v;
  fs::create_directories(v.root + "/lib/python3.12/site-packages");
  auto sp = find_site_packages(v.root, "3.11");
  REQUIRE(sp.ok());
  CHECK(*sp == kSite);
  CHECK(find_site_packages(v.root, "3.12").ok());
  CHECK_FALSE(find_site_packages(v.root, "").ok());  // two: which one?
  CHECK_FALSE(find_site_packages(v.root, "3.9").ok());
}

TEST_CASE("dist-info: the venv's own files", "[dist-info]") {
  for (const char* own :
       {"pyvenv.cfg", "bin/python", "bin/python3", "bin/python3.11", "bin/python3.12",
        "bin/activate", "bin/activate.fish", "bin/Activate.ps1", "bin/activate.csh"}) {
    INFO(own);
    CHECK(is_venv_own_file(own));
  }
  // Scripts of real packages (argcomplete) that merely start alike.
  for (const char* other : {"bin/python-argcomplete-check-easy-install-script",
                            "bin/activate-global-python-argcomplete", "bin/pythonista", "bin/pip",
                            "lib/pyvenv.cfg", "bin/sub/python3", "python3", "bin/"}) {
    INFO(other);
    CHECK_FALSE(is_venv_own_file(other));
  }
}

TEST_CASE("dist-info: a venv pip left alone passes the check", "[dist-info]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  CHECK(before->entries.count("bin/python3") == 1);
  CHECK(before->entries.at("bin/python3").link_target == "python");
  v.add_dist("alpha", "1.0", {"alpha/__init__.py", "../../../bin/alpha-cli", "\"odd,name.py\""});
  testenv::write_file(v.site + "/alpha/__init__.py", "X = 1\n");
  testenv::write_file(v.root + "/bin/alpha-cli", "#!/bin/sh\n");
  // Scripts of real packages whose names start like the venv's own.
  testenv::write_file(v.root + "/bin/python-argcomplete-check-easy-install-script", "#!/bin/sh\n");
  testenv::write_file(v.root + "/bin/activate-global-python-argcomplete", "#!/bin/sh\n");
  testenv::write_file(v.root + "/share/jupyter/kernels/alpha/kernel.json", "{}\n");
  // A link that stays inside, even through lib64 -> lib.
  REQUIRE(::symlink("../../../../lib64/python3.11", (v.site + "/alpha/inside").c_str()) == 0);
  REQUIRE(::symlink(v.site.c_str(), (v.root + "/share/abs-inside").c_str()) == 0);
  auto c = inspect_venv(v.root, *before, "3.11", 1000);
  INFO((c.ok() ? "" : c.error()));
  REQUIRE(c.ok());
  CHECK_FALSE(c->usage.over);
  CHECK(c->site_packages == kSite);
  CHECK(installed_list(c->distributions) == std::vector<std::string>{"alpha==1.0"});
  CHECK(c->usage.entries == static_cast<std::int64_t>(testenv::list_tree(v.root).size()));
  CHECK(c->usage.bytes == clsi::venv::disk_usage(v.root));
}

TEST_CASE("dist-info: a wheel that replaced or added the venv's own files is named",
          "[dist-info]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  SECTION("bin/python3 replaced (what .data/scripts/python3 does)") {
    v.add_dist("evil", "1.0", {"../../../bin/python3"});
    v.replace_with_file("bin/python3", "#!/bin/sh\n");
    CHECK_THAT(refusal(v, *before), Contains("the wheel evil-1.0 replaced bin/python3"));
  }
  SECTION("pyvenv.cfg rewritten in place, same size (what .data/data/pyvenv.cfg does)") {
    v.add_dist("evil", "1.0", {"../../../pyvenv.cfg"});
    testenv::write_file(v.root + "/pyvenv.cfg", "home = /tmp/xxx\n");
    CHECK_THAT(refusal(v, *before), Contains("the wheel evil-1.0 replaced pyvenv.cfg"));
  }
  SECTION("bin/python3.12 added") {
    v.add_dist("evil", "1.0", {"../../../bin/python3.12"});
    testenv::write_file(v.root + "/bin/python3.12", "#!/bin/sh\n");
    CHECK_THAT(refusal(v, *before), Contains("the wheel evil-1.0 added bin/python3.12"));
  }
  SECTION("bin/activate replaced, by nobody's RECORD") {
    v.add_dist("quiet", "1.0");
    v.replace_with_file("bin/activate", "# evil\n");
    auto r = refusal(v, *before);
    CHECK_THAT(r, Contains("the install replaced bin/activate (no wheel's RECORD lists it)"));
  }
  SECTION("a top-level directory swapped for a link") {
    fs::remove_all(v.root + "/include");
    REQUIRE(::symlink("lib", (v.root + "/include").c_str()) == 0);
    CHECK_THAT(refusal(v, *before), Contains("replaced include"));
  }
  SECTION("a RECORD that claims bin/python3 without changing it") {
    v.add_dist("liar", "1.0", {"../../../bin/python3"});
    CHECK_THAT(refusal(v, *before), Contains("the wheel liar-1.0 lists bin/python3 in its RECORD"));
  }
}

TEST_CASE("dist-info: a RECORD path outside the venv is refused, naming the wheel", "[dist-info]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  v.add_dist("alpha", "1.0", {"alpha/__init__.py"});
  SECTION("relative") {
    v.add_dist("evil", "1.0", {"../../../../x"});
    CHECK_THAT(refusal(v, *before),
               Contains("the wheel evil-1.0 lists '../../../../x' in its RECORD, a path outside "
                        "the venv"));
  }
  SECTION("relative, climbing back in lexically does not help") {
    v.add_dist("evil", "1.0", {"../../../../venv/../../etc/x"});
    CHECK_THAT(refusal(v, *before), Contains("the wheel evil-1.0 lists"));
  }
  SECTION("absolute") {
    v.add_dist("evil", "1.0", {"/etc/passwd"});
    CHECK_THAT(refusal(v, *before), Contains("the wheel evil-1.0 lists '/etc/passwd'"));
  }
  SECTION("quoted, with a newline inside (kept out of the message)") {
    v.add_dist("evil", "1.0", {"\"../../../../a,\nb\"\"c\""});
    auto r = refusal(v, *before);
    CHECK_THAT(r, Contains("the wheel evil-1.0 lists '../../../../a,?b\"c'"));
  }
}

TEST_CASE("dist-info: a symlink pointing outside the venv is refused", "[dist-info]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  v.add_dist("evil", "1.0", {"evil/etc"});
  fs::create_directories(v.site + "/evil");
  SECTION("absolute") {
    REQUIRE(::symlink("/etc", (v.site + "/evil/etc").c_str()) == 0);
    CHECK_THAT(refusal(v, *before),
               Contains("the wheel evil-1.0 installed " + std::string(kSite) +
                        "/evil/etc, a symbolic link pointing outside the venv (to /etc)"));
  }
  SECTION("relative, climbing out") {
    REQUIRE(::symlink("../../../../../..", (v.site + "/evil/up").c_str()) == 0);
    CHECK_THAT(refusal(v, *before), Contains("the install created " + std::string(kSite) +
                                             "/evil/up, a symbolic link pointing outside"));
  }
  SECTION("through another link that points out") {
    REQUIRE(::symlink("/tmp", (v.root + "/share-tmp").c_str()) == 0);
    REQUIRE(::symlink("../../../../share-tmp/x", (v.site + "/evil/via").c_str()) == 0);
    auto r = refusal(v, *before);
    CHECK_THAT(r, Contains("share-tmp, a symbolic link pointing outside"));
    CHECK_THAT(r, Contains("evil/via, a symbolic link pointing outside"));
  }
  SECTION("to the base interpreter, through venv's own link") {
    REQUIRE(::symlink("../../../../bin/python", (v.site + "/evil/py").c_str()) == 0);
    CHECK_THAT(refusal(v, *before), Contains("evil/py, a symbolic link pointing outside"));
  }
  SECTION("a loop") {
    REQUIRE(::symlink("b", (v.site + "/evil/a").c_str()) == 0);
    REQUIRE(::symlink("a", (v.site + "/evil/b").c_str()) == 0);
    CHECK_THAT(refusal(v, *before), Contains("a symbolic link pointing outside"));
  }
  SECTION("venv's own links pointing out are fine") {
    auto c = inspect_venv(v.root, *before, "3.11", 1000);
    INFO((c.ok() ? "" : c.error()));
    CHECK(c.ok());
  }
}

TEST_CASE("dist-info: entries are counted, and the count stops past the limit", "[dist-info]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  for (int i = 0; i < 50; ++i)
    testenv::write_file(v.site + "/many/f" + std::to_string(i), "x");
  auto all = static_cast<std::int64_t>(testenv::list_tree(v.root).size());
  auto u = measure_tree(v.root, 1000000);
  REQUIRE(u.ok());
  CHECK(u->entries == all);
  CHECK_FALSE(u->over);
  CHECK(u->bytes == clsi::venv::disk_usage(v.root));
  auto capped = measure_tree(v.root, 20);
  REQUIRE(capped.ok());
  CHECK(capped->over);
  CHECK(capped->entries == 21);
  auto c = inspect_venv(v.root, *before, "3.11", 20);
  REQUIRE(c.ok());
  CHECK(c->usage.over);
  auto exact = inspect_venv(v.root, *before, "3.11", all);
  REQUIRE(exact.ok());
  CHECK_FALSE(exact->usage.over);
}

TEST_CASE("dist-info: a linked venv is checked for what venv made, its links counted by the linker",
          "[dist-info][linked]") {
  FakeVenv v;
  auto before = snapshot_venv(v.root);
  REQUIRE(before.ok());
  v.add_dist("alpha", "1.0");
  for (int i = 0; i < 50; ++i)
    testenv::write_file(v.site + "/alpha/f" + std::to_string(i), "x");
  // What the linker says it placed: 51 files and a directory, 1,000 bytes.
  const clsi::venv::TreeUsage linked{1000, 52, false};
  SECTION("what it placed is not walked: its count and size are the linker's") {
    auto c = inspect_venv(v.root, *before, "3.11", 1000, &linked);
    INFO((c.ok() ? "" : c.error()));
    REQUIRE(c.ok());
    CHECK(installed_list(c->distributions) == std::vector<std::string>{"alpha==1.0"});
    CHECK(c->usage.entries == linked.entries + static_cast<std::int64_t>(before->entries.size()));
    CHECK(c->usage.bytes > linked.bytes);
    CHECK(c->usage.bytes < clsi::venv::disk_usage(v.root));
    CHECK_FALSE(c->usage.over);
    // Not walked, so not seen: the linker makes no symbolic link (a walk of
    // a venv pip installed refuses this one, above).
    REQUIRE(::symlink("/etc", (v.site + "/alpha/out").c_str()) == 0);
    CHECK(inspect_venv(v.root, *before, "3.11", 1000, &linked).ok());
    CHECK_FALSE(inspect_venv(v.root, *before, "3.11", 1000).ok());
  }
  SECTION("the caps hold on the linker's count") {
    auto c = inspect_venv(v.root, *before, "3.11", 40, &linked);
    REQUIRE(c.ok());
    CHECK(c->usage.over);
  }
  SECTION("what venv made is still checked") {
    v.replace_with_file("bin/python3", "#!/bin/sh\n");
    auto c = inspect_venv(v.root, *before, "3.11", 1000, &linked);
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Contains("replaced bin/python3"));
  }
  SECTION("a file added as the venv's own is still found") {
    testenv::write_file(v.root + "/bin/python3.12", "#!/bin/sh\n");
    auto c = inspect_venv(v.root, *before, "3.11", 1000, &linked);
    REQUIRE_FALSE(c.ok());
    CHECK_THAT(c.error(), Contains("added bin/python3.12"));
  }
}

TEST_CASE("dist-info: a RECORD row outside the venv, or naming its own files, is refused by name",
          "[dist-info][linked]") {
  using clsi::venv::record_path_refusal;
  CHECK(record_path_refusal(kSite, "a-1.0", "a/__init__.py").empty());
  CHECK(record_path_refusal(kSite, "a-1.0", "../../../bin/a-cli").empty());
  CHECK(record_path_refusal(kSite, "a-1.0", "../../../share/a/x").empty());
  CHECK_THAT(record_path_refusal(kSite, "a-1.0", "../../../../outside"),
             Contains("the wheel a-1.0 lists '../../../../outside' in its RECORD, a path outside"));
  CHECK_THAT(record_path_refusal(kSite, "a-1.0", "/etc/passwd"), Contains("a path outside"));
  CHECK_THAT(record_path_refusal(kSite, "a-1.0", ""), Contains("a path outside"));
  CHECK_THAT(record_path_refusal(kSite, "a-1.0", "../../../bin/python3"),
             Contains("lists bin/python3 in its RECORD"));
  CHECK_THAT(record_path_refusal(kSite, "a-1.0", "../../../pyvenv.cfg"),
             Contains("lists pyvenv.cfg in its RECORD"));
}
