// Wheels unpacked by our own code, the store of installed distributions, and
// venvs linked from it. The wheels are zip files made here with libzip; no
// python runs (the pip-vs-link comparison with real pip is an integration
// test).
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zip.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "digest.hpp"
#include "dist_store.hpp"
#include "eviction.hpp"
#include "manifest_cache.hpp"
#include "store.hpp"
#include "test_env.hpp"
#include "venv_linker.hpp"
#include "wheel_archive.hpp"

using Catch::Contains;
using namespace clsi::venv;
namespace fs = std::filesystem;

namespace {

struct Member {
  std::string data;
  mode_t mode = 0100644;
};

// A zip of `members`, in name order.
void write_zip(const std::string& path, const std::map<std::string, Member>& members) {
  int err = 0;
  zip_t* z = zip_open(path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &err);
  REQUIRE(z != nullptr);
  for (const auto& [name, m] : members) {
    zip_source_t* src = zip_source_buffer(z, m.data.data(), m.data.size(), 0);
    REQUIRE(src != nullptr);
    zip_int64_t i = zip_file_add(z, name.c_str(), src, ZIP_FL_ENC_UTF_8);
    REQUIRE(i >= 0);
    REQUIRE(zip_file_set_external_attributes(z, static_cast<zip_uint64_t>(i), 0, ZIP_OPSYS_UNIX,
                                             static_cast<zip_uint32_t>(m.mode) << 16) == 0);
  }
  REQUIRE(zip_close(z) == 0);
}

const char* const kWheelFile = "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n";

std::string row(const std::string& path, const std::string& data) {
  return record_csv_row({path, record_hash_of(data), std::to_string(data.size())});
}

// A well-formed wheel: files plus dist-info (METADATA, WHEEL, RECORD).
std::map<std::string, Member> wheel(const std::string& name, const std::string& version,
                                    std::map<std::string, Member> files) {
  const std::string info = name + "-" + version + ".dist-info/";
  files[info + "METADATA"] = {"Metadata-Version: 2.1\nName: " + name + "\nVersion: " + version +
                              "\n"};
  files[info + "WHEEL"] = {kWheelFile};
  std::string record;
  for (const auto& [path, m] : files)
    record += row(path, m.data);
  record += info + "RECORD,,\r\n";
  files[info + "RECORD"] = {record};
  return files;
}

const UnpackLimits kRoomy{100000, std::int64_t{1} << 30};

std::string read(const std::string& path) {
  return testenv::read_file(path);
}

struct Fixture {
  testenv::TempDir tmp;
  std::string whl = tmp / "w.whl";
  std::string out = tmp / "out";
  Expected<WheelContents> unpack(const std::map<std::string, Member>& members,
                                 UnpackLimits limits = kRoomy) {
    write_zip(whl, members);
    return unpack_wheel(whl, out, limits);
  }
};

}  // namespace

TEST_CASE("a wheel unpacks into the parts of a venv, as pip places its files", "[wheel]") {
  Fixture f;
  auto c = f.unpack(
      wheel("demo", "1.0",
            {{"demo/__init__.py", {"X = 1\n"}},
             {"demo/tool.sh", {"#!/bin/sh\n", 0100755}},
             {"demo-1.0.data/purelib/extra.py", {"Y = 2\n"}},
             {"demo-1.0.data/platlib/plat.py", {"Z = 3\n"}},
             {"demo-1.0.data/scripts/run", {"#!python\nprint(1)\n", 0100755}},
             {"demo-1.0.data/scripts/demo-cli", {"#!python\nwrapper\n", 0100755}},
             {"demo-1.0.data/headers/demo.h", {"int x;\n"}},
             {"demo-1.0.data/data/share/demo/a.txt", {"data\n"}},
             {"demo-1.0.dist-info/entry_points.txt",
              {"[console_scripts]\ndemo-cli = demo.cli:main [fast]\n\n[gui_scripts]\ndemo-gui = "
               "demo:obj.run\n"}}}));
  REQUIRE(c);
  CHECK(c->name == "demo");
  CHECK(c->version == "1.0");
  CHECK(c->dist_info == "demo-1.0.dist-info");
  CHECK(read(f.out + "/lib/demo/__init__.py") == "X = 1\n");
  CHECK(read(f.out + "/lib/extra.py") == "Y = 2\n");
  CHECK(read(f.out + "/lib/plat.py") == "Z = 3\n");
  CHECK(read(f.out + "/scripts/run") == "#!python\nprint(1)\n");
  CHECK(read(f.out + "/headers/demo.h") == "int x;\n");
  CHECK(read(f.out + "/data/share/demo/a.txt") == "data\n");
  std::map<std::string, WheelFile> by_path;
  for (const auto& w : c->files)
    by_path[w.archive_path] = w;
  CHECK(by_path["demo/tool.sh"].executable);
  CHECK_FALSE(by_path["demo/__init__.py"].executable);
  CHECK(by_path["demo-1.0.data/scripts/run"].python_shebang);
  CHECK_FALSE(by_path["demo-1.0.data/scripts/run"].skipped);
  // setuptools' wrapper for an entry point: pip writes its own instead.
  CHECK(by_path["demo-1.0.data/scripts/demo-cli"].skipped);
  CHECK(c->console_scripts.at("demo-cli") == "demo.cli:main [fast]");
  CHECK(c->gui_scripts.at("demo-gui") == "demo:obj.run");
  CHECK(c->record.size() == 12);
}

TEST_CASE("a wheel with a hostile or broken name, layout or size is refused before it lands",
          "[wheel][hostile]") {
  Fixture f;
  auto refused = [&](std::map<std::string, Member> files, const std::string& words,
                     UnpackLimits limits = kRoomy) {
    auto c = f.unpack(wheel("bad", "1.0", std::move(files)), limits);
    fs::remove_all(f.out);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error(), Contains(words));
  };
  refused({{"../escape.py", {"x"}}}, "(a \"..\" component)");
  refused({{"a/./b.py", {"x"}}}, "(a \".\" component)");
  refused({{"a//b.py", {"x"}}}, "an empty path component");
  refused({{"/etc/passwd", {"x"}}}, "an absolute path");
  refused({{"a\\b.py", {"x"}}}, "a backslash");
  refused({{"bad-1.0.data/elsewhere/x", {"x"}}}, "in the unknown scheme elsewhere (purelib");
  refused({{"bad-1.0.data/scripts/python3", {"#!/bin/sh\n"}}},
          "would replace the venv's own bin/python3");
  refused({{"bad-1.0.data/data/pyvenv.cfg", {"home = /tmp\n"}}},
          "would replace the venv's own pyvenv.cfg");
  refused({{"bad-1.0.data/scripts/sub/x", {"x"}}}, "in a subdirectory");
  refused({{"bad-1.0.dist-info/entry_points.txt", {"[console_scripts]\n../evil = a:b\n"}}},
          "which is not a file name");
  refused({{"bad-1.0.dist-info/entry_points.txt", {"[console_scripts]\npython3 = a:b\n"}}},
          "would replace the venv's own bin/python3");
  refused({{"bad-1.0.dist-info/entry_points.txt", {"[console_scripts]\ntool = a.b\n"}}},
          "names no callable");
  refused({{"other-2.0.dist-info/METADATA", {"Name: other\nVersion: 2.0\n"}}},
          "has 2 .dist-info directories");
  refused({{"a.py", {"x"}}, {"b.py", {"y"}}}, "holds 5 files, over caps.max_venv_files (4)",
          {4, std::int64_t{1} << 30});
  // A bomb: 8 MiB of zeros compress to almost nothing; stopped at 1 MiB.
  refused({{"zeros.bin", {std::string(std::size_t{8} << 20, '\0')}}},
          "unpacks to more than caps.max_venv_mb (1 MB)", {100, std::int64_t{1} << 20});

  SECTION("no dist-info, or one without WHEEL") {
    write_zip(f.whl, {{"a.py", {"x"}}});
    auto c = unpack_wheel(f.whl, f.out, kRoomy);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error(), Contains("has no .dist-info directory"));
    fs::remove_all(f.out);
    write_zip(f.whl, {{"x-1.dist-info/METADATA", {"Name: x\nVersion: 1\n"}}});
    c = unpack_wheel(f.whl, f.out, kRoomy);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error(), Contains("has no x-1.dist-info/WHEEL"));
  }
  SECTION("not a zip at all") {
    testenv::write_file(f.whl, "not a zip");
    auto c = unpack_wheel(f.whl, f.out, kRoomy);
    REQUIRE_FALSE(c);
    CHECK_THAT(c.error(), Contains("is not a readable zip archive"));
  }
}

TEST_CASE("RECORD rows are read and written as Python's csv module does", "[wheel][record]") {
  auto rows = parse_record_csv("a.py,sha256=x,3\r\n\"we,ird\"\"name\",,\nlast,h,1");
  REQUIRE(rows);
  REQUIRE(rows->size() == 3);
  CHECK((*rows)[1].path == "we,ird\"name");
  CHECK((*rows)[1].hash.empty());
  CHECK((*rows)[2].size == "1");
  CHECK(record_csv_row((*rows)[1]) == "\"we,ird\"\"name\",,\r\n");
  CHECK(record_csv_row({"a.py", "sha256=x", "3"}) == "a.py,sha256=x,3\r\n");
  CHECK_FALSE(parse_record_csv("\"open,,\n"));
  // RECORD's hash: urlsafe base64 of the digest, no padding.
  CHECK(record_hash_of("") == "sha256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
}

TEST_CASE("console scripts are pip's: distlib's template, pip's versioned names",
          "[wheel][scripts]") {
  auto e = parse_script_entry("pkg.cli:obj.main [extra1, extra2]");
  REQUIRE(e);
  CHECK(e->module == "pkg.cli");
  CHECK(e->import_name == "obj");
  CHECK(e->func == "obj.main");
  CHECK(console_script_text("/v/bin/python3", *e) ==
        "#!/v/bin/python3\n"
        "# -*- coding: utf-8 -*-\n"
        "import re\n"
        "import sys\n"
        "from pkg.cli import obj\n"
        "if __name__ == '__main__':\n"
        "    sys.argv[0] = re.sub(r'(-script\\.pyw|\\.exe)?$', '', sys.argv[0])\n"
        "    sys.exit(obj.main())\n");
  // Too long for a kernel's #! line: through /bin/sh, as distlib does.
  std::string long_exe = "/" + std::string(130, 'x') + "/bin/python3";
  auto text = console_script_text(long_exe, *e);
  CHECK(text.rfind("#!/bin/sh\n'''exec' " + long_exe + " \"$0\" \"$@\"\n' '''# -*- coding", 0) ==
        0);
  CHECK_FALSE(parse_script_entry("pkg.cli"));
  CHECK_FALSE(parse_script_entry("pkg:main; rm -rf /"));
  auto names = console_script_names(
      {{"pip", "pip._internal:main"}, {"pip3.9", "x:y"}, {"tool", "t:m"}}, "3.11");
  CHECK(names == std::map<std::string, std::string>{{"pip", "pip._internal:main"},
                                                    {"pip3", "pip._internal:main"},
                                                    {"pip3.11", "pip._internal:main"},
                                                    {"tool", "t:m"}});
}

namespace {

// A store with one distribution published, and a venv-shaped directory.
struct Linked {
  testenv::TempDir tmp;
  Store store{tmp / "store"};
  DistStore dists{store};
  std::string venv = tmp / "store/envs/v1";
  const char* site = "lib/python3.11/site-packages";

  Linked() {
    REQUIRE(store.ensure_layout());
    fs::create_directories(venv + "/" + site);
    fs::create_directories(venv + "/bin");
  }
  bool with_shared_files = false;  // as DistInstaller stores them: own/ (venv_linker.hpp)
  std::optional<DistLease> publish(const std::map<std::string, Member>& members) {
    std::string whl = tmp / "x.whl";
    write_zip(whl, members);
    auto sha = file_sha256_hex(whl);
    REQUIRE(sha);
    std::string staged = store.tmp_dir() + "/staged-" + sha->substr(0, 8);
    auto c = unpack_wheel(whl, staged, kRoomy);
    REQUIRE(c);
    Dist d;
    d.sha256 = *sha;
    d.python = "3.11";
    d.contents = std::move(*c);
    if (with_shared_files) REQUIRE(write_shared_own_files(staged, d));
    auto lease = dists.publish(staged, d);
    REQUIRE(lease);
    return std::move(*lease);
  }
};

struct stat stat_of(const std::string& p) {
  struct stat st {};
  REQUIRE(::lstat(p.c_str(), &st) == 0);
  return st;
}

}  // namespace

TEST_CASE("a venv is linked from the store: shared read-only files, its own RECORD and scripts",
          "[wheel][link]") {
  Linked l;
  auto lease = l.publish(wheel("demo", "1.0",
                               {{"demo/__init__.py", {"X = 1\n"}},
                                {"demo-1.0.data/scripts/run", {"#!python -u\nprint(1)\n", 0100755}},
                                {"demo-1.0.data/data/share/demo/a.txt", {"data\n"}},
                                {"demo-1.0.dist-info/INSTALLER", {"someone\n"}},
                                {"demo-1.0.dist-info/entry_points.txt",
                                 {"[console_scripts]\ndemo-cli = demo:main [fast]\n"}}}));
  const std::string sha = lease->dist().sha256;
  const std::string dist = l.dists.dir(sha);
  VenvLinker linker(l.venv, l.site, "3.11");
  REQUIRE(linker.add(*lease, true));
  const std::string sp = l.venv + "/" + l.site;

  // Hard links to the store's read-only file.
  auto in_venv = stat_of(sp + "/demo/__init__.py");
  auto in_store = stat_of(dist + "/lib/demo/__init__.py");
  CHECK(in_venv.st_ino == in_store.st_ino);
  CHECK((in_store.st_mode & 0777) == 0444);
  CHECK(stat_of(l.venv + "/share/demo/a.txt").st_ino ==
        stat_of(dist + "/data/share/demo/a.txt").st_ino);
  // The venv's own files; the wheel's INSTALLER in the store is untouched.
  CHECK(read(sp + "/demo-1.0.dist-info/INSTALLER") == "clsi-venvs\n");
  CHECK(read(dist + "/lib/demo-1.0.dist-info/INSTALLER") == "someone\n");
  CHECK(stat_of(sp + "/demo-1.0.dist-info/INSTALLER").st_nlink == 1);
  CHECK(testenv::exists(sp + "/demo-1.0.dist-info/REQUESTED"));
  CHECK(read(l.venv + "/bin/run") == "#!" + l.venv + "/bin/python3\nprint(1)\n");
  CHECK((stat_of(l.venv + "/bin/run").st_mode & 0777) == 0755);
  const std::string cli = read(l.venv + "/bin/demo-cli");
  CHECK(cli.rfind("#!" + l.venv + "/bin/python3\n", 0) == 0);
  CHECK_THAT(cli, Contains("from demo import main\n"));

  // RECORD: the wheel's rows at the venv's paths, changed and generated files
  // hashed again, sorted, as pip writes it.
  const std::string run_text = "#!" + l.venv + "/bin/python3\nprint(1)\n";
  std::vector<std::string> rows = {
      row("../../../bin/demo-cli", cli),
      row("../../../bin/run", run_text),
      row("../../../share/demo/a.txt", "data\n"),
      row("demo-1.0.dist-info/INSTALLER", "clsi-venvs\n"),  // generated
      row("demo-1.0.dist-info/INSTALLER", "someone\n"),     // the wheel's row, kept as pip keeps it
      row("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n"),
      "demo-1.0.dist-info/RECORD,,\r\n",
      row("demo-1.0.dist-info/REQUESTED", ""),
      row("demo-1.0.dist-info/WHEEL", kWheelFile),
      row("demo-1.0.dist-info/entry_points.txt",
          "[console_scripts]\ndemo-cli = demo:main [fast]\n"),
      row("demo/__init__.py", "X = 1\n")};
  // pip sorts (path, hash, size) tuples: with no comma in these paths, the
  // rows' text sorts the same way.
  std::sort(rows.begin(), rows.end());
  std::string expected;
  for (const auto& r : rows)
    expected += r;
  CHECK(read(sp + "/demo-1.0.dist-info/RECORD") == expected);
  CHECK(linker.stats().linked >= 5);
  CHECK(linker.stats().copied == 0);
}

TEST_CASE("a distribution leaves the store only when no venv links it and no build holds it",
          "[wheel][dists][gc]") {
  Linked l;
  std::string sha;
  {
    auto lease = l.publish(wheel("demo", "1.0", {{"demo/__init__.py", {"X = 1\n"}}}));
    sha = lease->dist().sha256;
    // Held by a build: kept, even though nothing links it yet.
    auto kept = l.dists.remove_if_unlinked(sha, false);
    REQUIRE(kept);
    CHECK(*kept == 0);
    VenvLinker linker(l.venv, l.site, "3.11");
    REQUIRE(linker.add(*lease, false));
  }
  CHECK(l.dists.linked(sha));
  auto kept = l.dists.remove_if_unlinked(sha, false);
  REQUIRE(kept);
  CHECK(*kept == 0);
  CHECK(testenv::exists(l.dists.dir(sha)));
  fs::remove_all(l.venv);
  CHECK_FALSE(l.dists.linked(sha));
  auto would = l.dists.remove_if_unlinked(sha, true);
  REQUIRE(would);
  CHECK(*would > 0);
  CHECK(testenv::exists(l.dists.dir(sha)));
  auto freed = l.dists.remove_if_unlinked(sha, false);
  REQUIRE(freed);
  CHECK(*freed > 0);
  CHECK_FALSE(testenv::exists(l.dists.dir(sha)));
  CHECK(l.dists.list().empty());
}

TEST_CASE("a damaged manifest makes the distribution be made again, not trusted",
          "[wheel][dists]") {
  Linked l;
  auto lease = l.publish(wheel("demo", "1.0", {{"demo/__init__.py", {"X = 1\n"}}}));
  const std::string sha = lease->dist().sha256;
  lease.reset();
  REQUIRE(l.dists.open(sha, "3.11"));
  // Another interpreter version: not this build's, but left for its own.
  CHECK_FALSE(l.dists.open(sha, "3.12"));
  CHECK(testenv::exists(l.dists.dir(sha)));
  const std::string manifest = l.dists.dir(sha) + "/manifest.json";
  REQUIRE(::chmod(manifest.c_str(), 0644) == 0);
  testenv::write_file(manifest, "{\"format\": 1, \"files\": [{\"rel\": \"../../x\"}]}");
  CHECK_FALSE(l.dists.open(sha, "3.11"));
  CHECK_FALSE(testenv::exists(l.dists.dir(sha)));
}

TEST_CASE("the store's size counts a linked file once, a published distribution is walked once",
          "[wheel][dists][gc]") {
  Linked l;
  auto lease = l.publish(wheel("demo", "1.0", {{"demo/__init__.py", {std::string(100000, 'x')}}}));
  const std::string v2 = l.tmp / "store/envs/v2";
  fs::create_directories(v2 + "/" + l.site);
  fs::create_directories(v2 + "/bin");
  for (const auto& v : {l.venv, v2}) {
    VenvLinker linker(v, l.site, "3.11");
    REQUIRE(linker.add(*lease, false));
  }
  auto du = [&] { return testenv::du_bytes(l.store.root()); };
  VenvSizeMemo memo;
  auto first = measure_store(l.store, &memo);
  REQUIRE(first);
  CHECK(first->total_bytes == du());
  CHECK(first->part_bytes["dists"] >= 100000);
  CHECK(first->part_bytes["envs"] < 100000);  // the venvs' own directories and RECORD
  auto unmemoized = measure_store(l.store);
  REQUIRE(unmemoized);
  CHECK(unmemoized->total_bytes == first->total_bytes);
  // A published distribution never changes, so the memo is trusted for its
  // directory: a file put there behind the service's back is not seen.
  const std::string dir = l.dists.dir(lease->dist().sha256);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  testenv::write_file(dir + "/extra", std::string(50000, 'y'));
  auto again = measure_store(l.store, &memo);
  REQUIRE(again);
  CHECK(again->part_bytes["dists"] == first->part_bytes["dists"]);
  auto walked = measure_store(l.store);
  REQUIRE(walked);
  CHECK(walked->part_bytes["dists"] >= first->part_bytes["dists"] + 50000);
  CHECK(walked->total_bytes == du());
}

TEST_CASE("a RECORD the same in every venv is made once with the distribution and linked",
          "[wheel][dists]") {
  Linked l;
  l.with_shared_files = true;
  auto plain = l.publish(wheel("demo", "1.0", {{"demo/__init__.py", {"X = 1\n"}}}));
  auto tool = l.publish(
      wheel("tool", "2.0",
            {{"tool/__init__.py", {"def main(): pass\n"}},
             {"tool-2.0.dist-info/entry_points.txt", {"[console_scripts]\ntool = tool:main\n"}}}));
  const std::string v2 = l.tmp / "store/envs/v2";
  fs::create_directories(v2 + "/" + l.site);
  fs::create_directories(v2 + "/bin");
  {
    VenvLinker one(l.venv, l.site, "3.11");
    REQUIRE(one.add(*plain, true));
    REQUIRE(one.add(*tool, true));
    VenvLinker two(v2, l.site, "3.11");
    REQUIRE(two.add(*plain, false));
  }
  const std::string demo_dir = l.dists.dir(plain->dist().sha256);
  auto same_inode = [](const std::string& a, const std::string& b) {
    return stat_of(a).st_ino == stat_of(b).st_ino;
  };
  const std::string info = "/" + std::string(l.site) + "/demo-1.0.dist-info/";
  // Named by the requirements in one venv, a dependency in the other: each
  // links the RECORD of its kind, and both the one INSTALLER.
  CHECK(same_inode(l.venv + info + "RECORD", demo_dir + "/" + kSharedRecordRequested));
  CHECK(same_inode(v2 + info + "RECORD", demo_dir + "/" + kSharedRecordDependency));
  CHECK(same_inode(l.venv + info + "INSTALLER", v2 + info + "INSTALLER"));
  CHECK(read(l.venv + info + "RECORD") != read(v2 + info + "RECORD"));
  CHECK_THAT(read(l.venv + info + "RECORD"), Contains("demo-1.0.dist-info/REQUESTED,"));
  CHECK_THAT(read(v2 + info + "RECORD"), !Contains("REQUESTED"));
  CHECK(testenv::exists(l.venv + info + "REQUESTED"));
  CHECK_FALSE(testenv::exists(v2 + info + "REQUESTED"));
  // A console script has the venv's interpreter in it, and so in RECORD's
  // hash of it: nothing shared, RECORD is the venv's own.
  const std::string tool_dir = l.dists.dir(tool->dist().sha256);
  CHECK_FALSE(testenv::exists(tool_dir + "/own"));
  CHECK(stat_of(l.venv + "/" + l.site + "/tool-2.0.dist-info/RECORD").st_nlink == 1);
  CHECK_THAT(read(l.venv + "/" + l.site + "/tool-2.0.dist-info/RECORD"),
             Contains("../../../bin/tool,sha256="));

  // A shared RECORD that does not hold the bytes this venv needs (here: one
  // changed behind the service's back) is not linked: the venv writes its own.
  const std::string shared = demo_dir + "/" + kSharedRecordRequested;
  const std::string expected = read(shared);
  REQUIRE(::chmod((demo_dir + "/own").c_str(), 0755) == 0);
  REQUIRE(::unlink(shared.c_str()) == 0);
  testenv::write_file(shared, "demo/__init__.py,,\n");
  const std::string v3 = l.tmp / "store/envs/v3";
  fs::create_directories(v3 + "/" + l.site);
  fs::create_directories(v3 + "/bin");
  VenvLinker three(v3, l.site, "3.11");
  REQUIRE(three.add(*plain, true));
  CHECK(stat_of(v3 + info + "RECORD").st_nlink == 1);
  CHECK(read(v3 + info + "RECORD") == expected);
  CHECK(read(v3 + info + "RECORD") == *shared_record(plain->dist(), true, l.site, "3.11"));
}

TEST_CASE("a manifest is parsed once while it is the same file, and checked again once it is not",
          "[wheel][manifest-cache]") {
  Linked l;
  auto lease = l.publish(wheel("demo", "1.0", {{"demo/__init__.py", {"X = 1\n"}}}));
  REQUIRE(lease);
  const std::string sha = lease->dist().sha256;
  // What publish wrote is what the next open gets, the very object: not read again.
  auto a = l.dists.open(sha, "3.11");
  auto b = l.dists.open(sha, "3.11");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(&a->dist() == &b->dist());
  CHECK(a->dist().contents.name == "demo");
  a.reset();
  b.reset();
  lease.reset();

  // Another file in its place (its inode, size and ctime change): read
  // again, and what it says checked again; here it names a path outside the
  // distribution, so the distribution is moved out of the way.
  const std::string manifest = l.dists.dir(sha) + "/manifest.json";
  std::string text = read(manifest);
  const std::string from = "\"rel\":\"demo/__init__.py\"";
  auto at = text.find(from);
  REQUIRE(at != std::string::npos);
  text.replace(at, from.size(), "\"rel\":\"../../../etc/x.py\"");
  ::chmod(l.dists.dir(sha).c_str(), 0755);
  REQUIRE(::unlink(manifest.c_str()) == 0);
  testenv::write_file(manifest, text);
  CHECK_FALSE(l.dists.open(sha, "3.11"));
  CHECK_FALSE(testenv::exists(l.dists.dir(sha)));
}

TEST_CASE("the manifest cache keeps at most its files, least recently used out first",
          "[wheel][manifest-cache]") {
  testenv::TempDir tmp;
  auto dist_of = [](std::size_t files) {
    auto d = std::make_shared<Dist>();
    d->contents.files.resize(files);
    return std::shared_ptr<const Dist>(d);
  };
  auto stat_at = [&](const std::string& name) {
    testenv::write_file(tmp / name, name);
    return stat_of(tmp / name);
  };
  ManifestCache cache(100);
  auto s1 = stat_at("one");
  auto s2 = stat_at("two");
  auto s3 = stat_at("three");
  cache.put(s1, dist_of(39));  // 40 with the manifest itself
  cache.put(s2, dist_of(39));
  CHECK(cache.files() == 80);
  CHECK(cache.find(s1));  // one is now the more recently used
  cache.put(s3, dist_of(39));
  CHECK(cache.find(s1));
  CHECK_FALSE(cache.find(s2));
  CHECK(cache.find(s3));
  CHECK(cache.files() == 80);
  cache.put(stat_at("huge"), dist_of(100));  // more than the whole cache: not kept
  CHECK(cache.entries() == 2);
  // The same path, another file: not what was kept.
  testenv::write_file(tmp / "one", "other bytes");
  CHECK_FALSE(cache.find(stat_of(tmp / "one")));
}

TEST_CASE("a distribution of thousands of files is linked on several threads, each file its own",
          "[wheel][link]") {
  Linked l;
  std::map<std::string, Member> files;
  for (int d = 0; d < 40; ++d)
    for (int f = 0; f < 75; ++f)  // 3,000 files: over the threshold for threads
      files["big/d" + std::to_string(d) + "/m" + std::to_string(f) + ".py"] = {
          "X = " + std::to_string(d * 1000 + f) + "\n"};
  auto lease = l.publish(wheel("big", "1.0", files));
  const std::string dist = l.dists.dir(lease->dist().sha256);
  VenvLinker linker(l.venv, l.site, "3.11");
  REQUIRE(linker.add(*lease, true));
  CHECK(linker.stats().linked >= 3000);
  CHECK(linker.stats().copied == 0);
  const std::string sp = l.venv + "/" + l.site;
  for (int d = 0; d < 40; ++d) {
    for (int f = 0; f < 75; ++f) {
      const std::string rel = "big/d" + std::to_string(d) + "/m" + std::to_string(f) + ".py";
      INFO(rel);
      REQUIRE(stat_of(sp + "/" + rel).st_ino == stat_of(dist + "/lib/" + rel).st_ino);
    }
  }
  CHECK_THAT(read(sp + "/big-1.0.dist-info/RECORD"), Catch::Contains("big/d39/m74.py,sha256="));
}
