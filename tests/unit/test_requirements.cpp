// The requirements allowlist parser: every hostile-input class from issue 4
// is refused on the right line with a `what` that names it; plain
// requirements are accepted and reduced to one canonical form.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "requirements.hpp"

using clsi::venv::format_refusal;
using clsi::venv::normalize_name;
using clsi::venv::parse_requirements;
using clsi::venv::ParsedRequirements;
using clsi::venv::ParseOptions;
using clsi::venv::Refusal;

namespace {

const std::string kHex1 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kHex2 = "fedcba9876543210fedcba9876543210fedcba9876543210fedcba9876543210";

ParsedRequirements parse(std::string_view text, bool require_hashes = false, int max_lines = 200) {
  ParseOptions o;
  o.require_hashes = require_hashes;
  o.max_requirement_lines = max_lines;
  return parse_requirements(text, o);
}

std::vector<std::string> canonical(const ParsedRequirements& p) {
  std::vector<std::string> out;
  for (const auto& r : p.requirements)
    out.push_back(r.canonical);
  return out;
}

std::string describe(const ParsedRequirements& p) {
  std::string s;
  for (const auto& r : p.refusals)
    s += format_refusal("requirements.txt", r) + "\n";
  for (const auto& r : p.requirements)
    s += "accepted line " + std::to_string(r.line) + ": " + r.canonical + "\n";
  return s;
}

struct Hostile {
  std::string line;  // placed on line 3 of a file
  std::string what;  // a substring the refusal's `what` must contain
};

// Puts `line` on line 3, between plain requirements, and checks that exactly
// that line is refused, with `what` naming the thing, and that the plain
// lines around it are still read.
void check_refused_on_line_3(const Hostile& h, bool require_hashes = false) {
  std::string pin = require_hashes ? "==1.0 --hash=sha256:" + kHex1 : "";
  std::string text =
      "# a project's requirements\nnumpy" + pin + "\n" + h.line + "\nscipy" + pin + "\n";
  auto p = parse(text, require_hashes);
  INFO("line: " << h.line);
  INFO(describe(p));
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 3);
  CHECK_THAT(p.refusals[0].what, Catch::Contains(h.what));
  CHECK_FALSE(p.refusals[0].why.empty());
  for (const auto& r : p.requirements) {
    CHECK(r.line != 3);
  }
  CHECK(p.requirements.size() == 2);
}

void check_all_refused(const std::vector<Hostile>& cases, bool require_hashes = false) {
  for (const auto& h : cases)
    check_refused_on_line_3(h, require_hashes);
}

}  // namespace

// ---------------------------------------------------------------- options

TEST_CASE("requirements: options that read other files are refused", "[requirements]") {
  check_all_refused({
      {"-r other.txt", "'-r'"},
      {"-rother.txt", "'-r'"},
      {"-c constraints.txt", "'-c'"},
      {"-c x", "'-c'"},
      {"--requirement other.txt", "'--requirement'"},
      {"--requirement=other.txt", "'--requirement'"},
      {"--constraint other.txt", "'--constraint'"},
      {"--req=other.txt", "'--req'"},
  });
}

TEST_CASE("requirements: editables and options that point pip elsewhere are refused",
          "[requirements]") {
  check_all_refused({
      {"-e .", "'-e'"},
      {"-e git+https://github.com/x/y.git#egg=y", "'-e'"},
      {"--editable=.", "'--editable'"},
      {"--index-url http://evil", "'--index-url'"},
      {"--index-url=http://evil", "'--index-url'"},
      {"-i http://evil", "'-i'"},
      {"-ihttp://evil", "'-i'"},
      {"--ind=http://evil", "'--ind'"},
      {"--extra-index-url http://evil", "'--extra-index-url'"},
      {"--extra-index-url=http://evil/simple", "'--extra-index-url'"},
      {"--find-links http://evil/", "'--find-links'"},
      {"--find-links=/tmp/wheels", "'--find-links'"},
      {"-f http://evil/", "'-f'"},
      {"--trusted-host evil", "'--trusted-host'"},
      {"--no-index", "'--no-index'"},
  });
}

TEST_CASE("requirements: options that make pip build from source are refused", "[requirements]") {
  check_all_refused({
      {"--no-binary :all:", "'--no-binary'"},
      {"--no-binary=:all:", "'--no-binary'"},
      {"--only-binary :none:", "'--only-binary'"},
      {"--prefer-binary", "'--prefer-binary'"},
      {"--use-pep517", "'--use-pep517'"},
      {"--global-option=--x", "'--global-option'"},
      {"--config-settings=a=b", "'--config-settings'"},
  });
}

TEST_CASE("requirements: any option at all is refused", "[requirements]") {
  check_all_refused({
      {"--pre", "'--pre'"},
      {"--", "'--'"},
      {"-", "'-'"},
      {"-v", "'-v'"},
      {"--some-future-option", "'--some-future-option'"},
      {"  --pre", "'--pre'"},        // leading whitespace
      {"\t-i http://evil", "'-i'"},  // leading tab
  });
}

TEST_CASE("requirements: an option after a requirement is refused", "[requirements]") {
  check_all_refused({
      {"requests --pre", "--pre"},
      {"requests --no-binary=requests", "--no-binary"},
      {"requests -e .", "-e"},
      {"requests>=2.0 --install-option=--prefix=/x", "--install-option"},
  });
  // With a URL the URL is what is reported.
  check_refused_on_line_3({"requests -i http://evil", "URL"});
  check_refused_on_line_3({"requests\t--index-url=https://evil/simple", "URL"});
}

TEST_CASE("requirements: a joined short option names only the option, not the URL",
          "[requirements]") {
  auto p = parse("-ihttp://evil\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 1);
  CHECK(p.refusals[0].what == "the option '-i'");
}

// ------------------------------------------------------- URLs and paths

TEST_CASE("requirements: direct references and URLs are refused", "[requirements]") {
  check_all_refused({
      {"pkg @ https://x/y.whl", "pkg @ https://x/y.whl"},
      {"pkg@https://x/y.whl", "URL"},
      {"pkg @ file:///etc/passwd", "URL"},
      {"pkg[extra] @ https://x/y.whl ; python_version >= \"3.8\"", "URL"},
      {"git+https://github.com/x/y.git", "git+https://github.com/x/y.git"},
      {"git+ssh://git@github.com/x/y.git#egg=y", "URL"},
      {"hg+http://x/y", "URL"},
      {"https://x/p.tar.gz", "https://x/p.tar.gz"},
      {"http://x/p-1.0-py3-none-any.whl", "URL"},
      {"file:///tmp/p.whl", "URL"},
      {"pkg @ ./local", "reference"},
      {"user@host", "reference"},
  });
}

TEST_CASE("requirements: local paths are refused", "[requirements]") {
  check_all_refused({
      {"./localdir", "local path"},
      {".", "local path"},
      {"..", "local path"},
      {"../up", "local path"},
      {"/abs/path", "local path"},
      {"/abs/path/pkg.whl", "local path"},
      {"~/pkg", "local path"},
      {"sub/dir", "local path"},
      {"./setup.py", "local path"},
  });
}

TEST_CASE("requirements: bare archive names are refused", "[requirements]") {
  check_all_refused({
      {"foo.whl", "'foo.whl'"},
      {"foo-1.0-py3-none-any.whl", "archive"},
      {"pkg.tar.gz", "'pkg.tar.gz'"},
      {"pkg.tar.bz2", "archive"},
      {"pkg.tar.xz", "archive"},
      {"pkg.tar", "archive"},
      {"pkg.tgz", "archive"},
      {"pkg.zip", "archive"},
      {"pkg.tbz", "archive"},
      {"pkg.txz", "archive"},
      {"pkg.tlz", "archive"},
      {"pkg.tar.lz", "archive"},
      {"pkg.tar.lzma", "archive"},
      {"Foo.WHL", "archive"},  // pip compares extensions case-insensitively
      {"pkg.TAR.GZ", "archive"},
      {"foo.whl[extra]", "archive"},
      {"foo.whl ; python_version >= \"3\"", "archive"},
      {"foo.whl==1.0", "archive"},
  });
}

TEST_CASE("requirements: names that merely contain an archive word are accepted",
          "[requirements]") {
  auto p = parse("backports.tarfile\nwhl-tools\nzip.py\npy.tar.utils\nfoo.wheel\n");
  INFO(describe(p));
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{"backports-tarfile", "foo-wheel", "py-tar-utils",
                                                 "whl-tools", "zip-py"});
}

// ---------------------------------------------------- variables, continuations

TEST_CASE("requirements: ${VAR} expansion is refused anywhere in a line", "[requirements]") {
  check_all_refused({
      {"${HOME}", "variable reference"},
      {"${PKG}==1.0", "'${PKG}==1.0'"},
      {"requests==${VERSION}", "'${VERSION}'"},
      {"requests>=1.0,<${MAX}", "${MAX}"},
      {"requests ; python_version >= \"${PY}\"", "${PY}"},
      {"requests[${EXTRA}]", "${EXTRA}"},
      {"requests ${INDEX}", "${INDEX}"},
  });
}

TEST_CASE("requirements: a bare $ is not a plain requirement either", "[requirements]") {
  check_all_refused({
      {"requests==$VERSION", "$VERSION"},
      {"requests ; os_name == \"$x\"", "requests"},
  });
}

TEST_CASE("requirements: a trailing backslash continuation is refused", "[requirements]") {
  // The next line is read (and judged) on its own, never joined.
  auto p = parse("numpy\nrequests \\\n-i http://evil\nscipy\n");
  INFO(describe(p));
  REQUIRE(p.refusals.size() == 2);
  CHECK(p.refusals[0].line == 2);
  CHECK_THAT(p.refusals[0].what, Catch::Contains("continuation"));
  CHECK(p.refusals[1].line == 3);
  CHECK_THAT(p.refusals[1].what, Catch::Contains("'-i'"));

  check_all_refused({
      {"requests\\", "continuation"},
      {"requests==2.0 \\  ", "continuation"},  // trailing blanks after the backslash
      {"\\", "continuation"},
  });
  // At the very end of the file, with CRLF.
  auto q = parse("numpy\r\nrequests \\\r\n");
  REQUIRE(q.refusals.size() == 1);
  CHECK(q.refusals[0].line == 2);
  CHECK_THAT(q.refusals[0].what, Catch::Contains("continuation"));
}

TEST_CASE("requirements: a backslash inside a line is refused", "[requirements]") {
  check_all_refused({
      {"req\\uests", "req\\uests"},
      {"C:\\pkg\\foo.whl", "C:\\pkg"},
  });
}

// ------------------------------------------------- characters and encodings

TEST_CASE("requirements: control characters in the middle of a line are refused",
          "[requirements]") {
  check_all_refused({
      {std::string("requests\f-i http://evil"), "control character"},
      {std::string("requests\v-i http://evil"), "control character"},
      {std::string("requests\r-i http://evil"), "control character"},
      {std::string("requests\x1c-r x"), "control character"},
      {std::string("requests\x1d"), "control character"},
      {std::string("requests\x1e"), "control character"},
      {std::string("requests\x1b[2J"), "control character"},
      {std::string("\frequests"), "control character"},
      {std::string("requests\x7f"), "control character"},
  });
}

TEST_CASE("requirements: Unicode line separators and other non-ASCII are refused",
          "[requirements]") {
  check_all_refused({
      {"requests\xe2\x80\xa8-i http://evil", "non-ASCII"},  // U+2028
      {"requests\xe2\x80\xa9-i http://evil", "non-ASCII"},  // U+2029
      {"requests\xc2\x85-i http://evil", "non-ASCII"},      // U+0085 (NEL)
      {"r\xc3\xa9quests", "non-ASCII"},                     // é
      {"requests\xef\xbb\xbf", "non-ASCII"},                // a BOM not at the start
      {"\xd0\xb0requests", "non-ASCII"},                    // Cyrillic a, a homoglyph
  });
}

TEST_CASE("requirements: invalid UTF-8 is refused", "[requirements]") {
  check_all_refused({
      {"requests\xff", "non-ASCII"},
      {"requests\xc3(", "non-ASCII"},
      {"\x80requests", "non-ASCII"},
      {"requests==1.0\xed\xa0\x80", "non-ASCII"},  // an encoded surrogate
      {"requests\xc0\xaf", "non-ASCII"},           // an overlong '/'
  });
}

TEST_CASE("requirements: a comment cannot hide a line break", "[requirements]") {
  // Python's splitlines() would start a new line at each of these, so a
  // reader other than this parser could see an option there.
  check_all_refused({
      {"# note\f-i http://evil", "control character"},
      {"# note\v-i http://evil", "control character"},
      {"# note\r-i http://evil", "control character"},
      {"# note\x1c-r other.txt", "control character"},
      {"# note\xe2\x80\xa8-i http://evil", "U+2028"},
      {"# note\xe2\x80\xa9-i http://evil", "U+2029"},
      {"# note\xc2\x85-i http://evil", "U+0085"},
      {"requests # note\f-i http://evil", "control character"},
      {"requests\r # note", "control character"},
      {"requests # note\xe2\x80\xa8--index-url=http://evil", "line separator"},
  });
}

TEST_CASE("requirements: a comment must be valid UTF-8, but may be non-ASCII", "[requirements]") {
  check_all_refused({
      {"# caf\xe9", "invalid UTF-8"},  // Latin-1, not UTF-8
      {"requests # \xff\xfe", "invalid UTF-8"},
      {"# \xed\xa0\x80", "invalid UTF-8"},  // a surrogate
      {"# \xc0\xaf", "invalid UTF-8"},      // an overlong '/'
      {"# \xe2\x80", "invalid UTF-8"},      // truncated
  });
  auto p = parse("# f\xc3\xbcr die Abbildungen \xe2\x80\x94 \xf0\x9f\x93\x88\nnumpy  # \xc3\xa9\n");
  INFO(describe(p));
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{"numpy"});
}

TEST_CASE("requirements: a NUL byte refuses the whole file", "[requirements]") {
  using namespace std::string_literals;
  for (const std::string& text :
       {"requests\0-i http://evil\n"s, "numpy\nscipy\n\0"s, "\0"s, "# comment \0\nrequests\n"s}) {
    auto p = parse(text);
    INFO(describe(p));
    REQUIRE(p.refusals.size() == 1);
    CHECK(p.refusals[0].line == 0);
    CHECK_THAT(p.refusals[0].what, Catch::Contains("NUL"));
    CHECK(p.requirements.empty());
    CHECK_THAT(format_refusal("requirements.txt", p.refusals[0]),
               Catch::StartsWith("./requirements.txt: refused: a NUL byte"));
  }
}

TEST_CASE("requirements: a UTF-8 byte-order mark is refused on line 1", "[requirements]") {
  auto p = parse("\xef\xbb\xbfrequests\nnumpy\n");
  INFO(describe(p));
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 1);
  CHECK_THAT(p.refusals[0].what, Catch::Contains("byte-order mark"));

  // UTF-16 and UTF-32 marks are non-ASCII bytes on line 1.
  for (std::string bom : {std::string("\xff\xfe"), std::string("\xfe\xff")}) {
    auto q = parse(bom + "requests\n");
    REQUIRE_FALSE(q.refusals.empty());
    CHECK(q.refusals[0].line == 1);
  }
}

TEST_CASE("requirements: an encoding declaration changes nothing", "[requirements]") {
  // The parser reads bytes as ASCII whatever a comment says.
  auto p = parse("# -*- coding: utf-16 -*-\nrequests\n");
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{"requests"});
}

// ------------------------------------------------------------------ hashes

TEST_CASE("requirements: --hash is refused when require_hashes is off", "[requirements]") {
  check_all_refused({
      {"requests==2.31.0 --hash=sha256:" + kHex1, "--hash"},
      {"requests==2.31.0 --hash sha256:" + kHex1, "--hash"},
      {"--hash=sha256:" + kHex1, "'--hash'"},
  });
}

TEST_CASE("requirements: require_hashes accepts pinned, hashed lines", "[requirements]") {
  std::string upper = kHex2;
  for (auto& c : upper)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  auto p = parse("Requests==2.31.0 --hash=sha256:" + upper + " --hash=sha256:" + kHex1 +
                     "\n"
                     "numpy===1.26.4 \t--hash=sha256:" +
                     kHex1 +
                     "  # the wheel\n"
                     "foo[B,a]==1.0 ; python_version >= \"3.8\" --hash=sha256:" +
                     kHex2 + " --hash=sha256:" + kHex2 + "\n",
                 true);
  INFO(describe(p));
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{
                            "foo[a,b]==1.0; python_version >= \"3.8\" --hash=sha256:" + kHex2,
                            "numpy===1.26.4 --hash=sha256:" + kHex1,
                            "requests==2.31.0 --hash=sha256:" + kHex1 + " --hash=sha256:" + kHex2,
                        });
}

TEST_CASE("requirements: require_hashes refuses missing hashes, loose pins and bad hashes",
          "[requirements]") {
  std::string h = " --hash=sha256:" + kHex1;
  struct Case {
    std::string line;
    std::string why;
  };
  std::vector<Case> cases = {
      {"requests==2.31.0", "--hash=sha256"},
      {"requests", "--hash=sha256"},
      {"requests>=2.0" + h, "pin an exact version"},
      {"requests" + h, "pin an exact version"},
      {"requests==2.*" + h, "pin an exact version"},
      {"requests==2.0,<3" + h, "pin an exact version"},
      {"requests~=2.0" + h, "pin an exact version"},
      {"requests==2.0 --hash=sha256:abc", "64 hex"},
      {"requests==2.0 --hash=sha256:" + kHex1 + "0", "64 hex"},
      {"requests==2.0 --hash=sha256:" + kHex1.substr(1) + "g", "64 hex"},
      {"requests==2.0 --hash=md5:d41d8cd98f00b204e9800998ecf8427e", "--hash"},
      {"requests==2.0 --hash=sha512:" + kHex1 + kHex1, "--hash"},
      {"requests==2.0 --hash sha256:" + kHex1, "--hash"},
      {"requests==2.0" + h + " --pre", "--pre"},
      {"requests==2.0" + h + " -i evil", "-i"},
      {"requests==2.0" + h + " ; python_version >= \"3\"", ";"},
  };
  for (const auto& c : cases) {
    auto p = parse("numpy==1.0" + h + "\n" + c.line + "\n", true);
    INFO("line: " << c.line);
    INFO(describe(p));
    REQUIRE(p.refusals.size() == 1);
    CHECK(p.refusals[0].line == 2);
    CHECK_THAT(p.refusals[0].what + " " + p.refusals[0].why, Catch::Contains(c.why));
    CHECK(canonical(p) == std::vector<std::string>{"numpy==1.0" + h});
  }
  // Options and URLs are refused in hash mode as well.
  check_all_refused(
      {
          {"-i http://evil", "'-i'"},
          {"--hash=sha256:" + kHex1, "'--hash'"},
          {"pkg @ https://x/y.whl" + h, "URL"},
          {"foo.whl" + h, "archive"},
      },
      true);
}

// ------------------------------------------------------------------ markers

TEST_CASE("requirements: marker strings may not carry spaces, #, $, quotes or backslashes",
          "[requirements]") {
  check_all_refused({
      {"foo ; python_version == \"3 .8\"", "foo"},
      {"foo ; os_name == \"a#b\"", "foo"},
      {"foo ; os_name == \"a #b\"", "foo"},
      {"foo ; os_name == \"$HOME\"", "foo"},
      {"foo ; os_name == \"a'b\"", "foo"},
      {"foo ; os_name == 'a\"b'", "foo"},
      {"foo ; os_name == \"a\\b\"", "foo"},
      {"foo ; os_name == \"a/b\"", "local path"},
      {"foo ; os_name == \"posix", "foo"},
      {"foo ; os_name == \"\t\"", "foo"},
  });
  auto p = parse("foo ; os_name == \"a b\"\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK_THAT(p.refusals[0].why, Catch::Contains("not allowed in a marker string"));
}

TEST_CASE("requirements: unknown marker variables and malformed markers are refused",
          "[requirements]") {
  check_all_refused({
      {"foo ; evil == \"1\"", "foo"},
      {"foo ; __import__ == \"os\"", "foo"},
      {"foo ; os.system == \"x\"", "foo"},
      {"foo ; python_version", "foo"},
      {"foo ;", "foo"},
      {"foo ; python_version >= \"3\" and", "foo"},
      {"foo ; (python_version >= \"3\"", "foo"},
      {"foo ; python_version >= \"3\")", "foo"},
      {"foo ; python_version not \"3\"", "foo"},
      {"foo ; python_version >= \"3\" junk", "foo"},
  });
  auto p = parse("foo ; evil_var == \"1\"\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK_THAT(p.refusals[0].why, Catch::Contains("unknown marker variable 'evil_var'"));
}

TEST_CASE("requirements: deeply nested markers are refused without exhausting the stack",
          "[requirements]") {
  // A hostile file under the default 64 KiB size cap.
  std::string deep =
      "foo ; " + std::string(60000, '(') + "os_name == \"posix\"" + std::string(60000, ')');
  auto p = parse("numpy\n" + deep + "\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 2);
  CHECK(canonical(p) == std::vector<std::string>{"numpy"});

  // Ordinary nesting is fine.
  auto q = parse("foo ; ((os_name == \"posix\") and (python_version >= \"3.8\"))\n");
  CHECK(q.refusals.empty());
  CHECK(canonical(q) ==
        std::vector<std::string>{"foo; ((os_name == \"posix\") and (python_version >= \"3.8\"))"});
}

TEST_CASE("requirements: markers are normalised", "[requirements]") {
  auto p = parse(
      "a;python_version>='3.8'\n"
      "b ; platform.python_implementation=='CPython'  and  os_name != \"nt\"\n"
      "c ; 'linux' in sys_platform or (extra == \"x\" and sys_platform not in 'win32')\n");
  INFO(describe(p));
  CHECK(p.refusals.empty());
  CHECK(canonical(p) ==
        std::vector<std::string>{
            "a; python_version >= \"3.8\"",
            "b; platform_python_implementation == \"CPython\" and os_name != \"nt\"",
            "c; \"linux\" in sys_platform or (extra == \"x\" and sys_platform not in \"win32\")",
        });
}

// ------------------------------------------------------------------ caps

TEST_CASE("requirements: more than max_requirement_lines lines are refused", "[requirements]") {
  // Comments and blanks do not count.
  auto p = parse("# header\n\na\n# note\nb\n\nc\nd\n", false, 2);
  INFO(describe(p));
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 7);
  CHECK_THAT(p.refusals[0].what, Catch::Contains("more than 2 requirement lines"));
  CHECK_THAT(p.refusals[0].why, Catch::Contains("max_requirement_lines"));

  auto ok = parse("# header\na\n\nb\n# trailer\n", false, 2);
  CHECK(ok.refusals.empty());
  CHECK(ok.requirements.size() == 2);

  // Refused lines count as well.
  auto q = parse("-i http://evil\n-i http://evil\n-i http://evil\n", false, 2);
  REQUIRE(q.refusals.size() == 3);
  CHECK(q.refusals[2].line == 3);
  CHECK_THAT(q.refusals[2].what, Catch::Contains("more than 2"));
}

TEST_CASE("requirements: a long file of comments parses quickly and accepts nothing",
          "[requirements]") {
  std::string text;
  for (int i = 0; i < 5000; ++i)
    text += "# comment " + std::to_string(i) + "\n\n";
  auto p = parse(text);
  CHECK(p.refusals.empty());
  CHECK(p.requirements.empty());
}

// ------------------------------------------------------------------ accepted

TEST_CASE("requirements: plain requirements are accepted", "[requirements]") {
  struct Case {
    std::string line;
    std::string canonical;
    std::string name;
  };
  std::vector<Case> cases = {
      {"requests", "requests", "requests"},
      {"Requests>=2.0,<3", "requests<3,>=2.0", "requests"},
      {"foo[bar,Baz]==1.0 ; python_version >= \"3.8\"",
       "foo[bar,baz]==1.0; python_version >= \"3.8\"", "foo"},
      {"zope.interface", "zope-interface", "zope-interface"},
      {"backports.tarfile", "backports-tarfile", "backports-tarfile"},
      {"Django (>=4.2, <5)", "django<5,>=4.2", "django"},
      {"numpy ~= 1.26", "numpy~=1.26", "numpy"},
      {"pkg!=1.0.*", "pkg!=1.0.*", "pkg"},
      {"pkg===1.0+local.1", "pkg===1.0+local.1", "pkg"},
      {"pkg==1!2.0.post1.dev3", "pkg==1!2.0.post1.dev3", "pkg"},
      {"pkg[]", "pkg", "pkg"},
      {"Foo_Bar.baz--qux", "foo-bar-baz-qux", "foo-bar-baz-qux"},
      {"  requests  ", "requests", "requests"},
      {"requests\t>=\t2", "requests>=2", "requests"},
  };
  for (const auto& c : cases) {
    auto p = parse("\n\n" + c.line + "\n");
    INFO("line: " << c.line);
    INFO(describe(p));
    CHECK(p.refusals.empty());
    REQUIRE(p.requirements.size() == 1);
    CHECK(p.requirements[0].canonical == c.canonical);
    CHECK(p.requirements[0].name == c.name);
    CHECK(p.requirements[0].line == 3);
  }
}

TEST_CASE("requirements: comments, inline comments and blank lines are ignored", "[requirements]") {
  auto p = parse(
      "# -i http://evil\n"
      "   # -r other.txt\n"
      "\n"
      "   \t  \n"
      "requests  # --index-url http://evil ${HOME} \\\n"
      "numpy>=1.0\t# pinned for ${REASON}\n"
      "#\n");
  INFO(describe(p));
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{"numpy>=1.0", "requests"});
  REQUIRE(p.requirements.size() == 2);
  CHECK(p.requirements[0].line == 6);
  CHECK(p.requirements[1].line == 5);
}

TEST_CASE("requirements: a # not preceded by whitespace is not a comment", "[requirements]") {
  check_all_refused({
      {"requests#egg=evil", "requests#egg=evil"},
      {"pkg.tar.gz#egg=pkg", "pkg.tar.gz#egg=pkg"},
  });
}

TEST_CASE("requirements: CRLF line endings are accepted", "[requirements]") {
  auto p = parse("# comment\r\nrequests>=2\r\n\r\nnumpy ; os_name == \"posix\" # c\r\n-r x\r\n");
  INFO(describe(p));
  CHECK(canonical(p) == std::vector<std::string>{"numpy; os_name == \"posix\"", "requests>=2"});
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].line == 5);
  CHECK(p.refusals[0].what == "the option '-r'");
}

TEST_CASE("requirements: an empty file or one without a final newline", "[requirements]") {
  CHECK(parse("").requirements.empty());
  CHECK(parse("").refusals.empty());
  CHECK(parse("\n\n\n").requirements.empty());
  auto p = parse("numpy\nrequests");
  CHECK(p.refusals.empty());
  CHECK(canonical(p) == std::vector<std::string>{"numpy", "requests"});
}

TEST_CASE("requirements: the same set in any order or spelling has one canonical form",
          "[requirements]") {
  auto a = parse(
      "Requests>=2.0,<3\n"
      "foo[bar,Baz]==1.0 ; python_version >= \"3.8\"\n"
      "zope.interface\n");
  auto b = parse(
      "# the same, reordered and respelt\n"
      "zope_interface\n"
      "\n"
      "FOO [ baz , BAR ] == 1.0;python_version>='3.8'   # extras\n"
      "requests < 3 , >= 2.0\r\n"
      "ZOPE-Interface\n");
  INFO(describe(a));
  INFO(describe(b));
  CHECK(a.refusals.empty());
  CHECK(b.refusals.empty());
  CHECK(canonical(a) == canonical(b));
  CHECK(canonical(a) == std::vector<std::string>{
                            "foo[bar,baz]==1.0; python_version >= \"3.8\"",
                            "requests<3,>=2.0",
                            "zope-interface",
                        });
}

TEST_CASE("requirements: duplicates are dropped and the first line is kept", "[requirements]") {
  auto p = parse("numpy\nrequests\nRequests\nrequests \nnumpy\n");
  CHECK(p.refusals.empty());
  REQUIRE(p.requirements.size() == 2);
  CHECK(p.requirements[0].canonical == "numpy");
  CHECK(p.requirements[0].line == 1);
  CHECK(p.requirements[1].canonical == "requests");
  CHECK(p.requirements[1].line == 2);
}

TEST_CASE("requirements: the canonical lines parse back to themselves", "[requirements]") {
  std::string h = " --hash=sha256:" + kHex1;
  for (bool hashes : {false, true}) {
    std::string text = hashes ? "foo[b,A]==1.0 ; python_version >= '3' and (os_name == \"posix\")" +
                                    h + "\nzope.interface===2" + h + "\n"
                              : "foo[b,A] (>=1.0, <2) ; 'x' in sys_platform\nzope.interface\nbar\n";
    auto first = parse(text, hashes);
    INFO(describe(first));
    REQUIRE(first.refusals.empty());
    std::string again;
    for (const auto& c : canonical(first))
      again += c + "\n";
    auto second = parse(again, hashes);
    INFO(describe(second));
    CHECK(second.refusals.empty());
    CHECK(canonical(second) == canonical(first));
  }
}

TEST_CASE("requirements: malformed requirements are refused as not plain", "[requirements]") {
  check_all_refused({
      {"foo[bar", "foo[bar"},
      {"foo[,]", "foo[,]"},
      {"foo==", "foo=="},
      {"foo>=1.0,", "foo"},
      {"foo (>=1.0", "foo"},
      {"foo >= -1", "foo"},
      {"foo 1.0", "foo"},
      {"_foo", "_foo"},
      {"foo bar", "foo bar"},
      {"foo=1.0", "foo"},
      {"foo;python_version>='3' ;", "foo"},
  });
  auto p = parse("foo==\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK_THAT(p.refusals[0].why, Catch::StartsWith("not a plain requirement"));
}

TEST_CASE("requirements: a long refused line is quoted only in part", "[requirements]") {
  auto p = parse("foo " + std::string(5000, 'x') + "\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK(p.refusals[0].what.size() < 100);
  CHECK_THAT(p.refusals[0].what, Catch::EndsWith("...'"));
}

// ------------------------------------------------------ normalize / format

TEST_CASE("requirements: normalize_name follows PEP 503", "[requirements]") {
  CHECK(normalize_name("Requests") == "requests");
  CHECK(normalize_name("zope.interface") == "zope-interface");
  CHECK(normalize_name("Foo_Bar.baz--qux") == "foo-bar-baz-qux");
  CHECK(normalize_name("a-_.b") == "a-b");
  CHECK(normalize_name("A1") == "a1");
  CHECK(normalize_name("friendly-bard") == normalize_name("Friendly.Bard"));
  CHECK(normalize_name("FRIENDLY__BARD") == "friendly-bard");
}

TEST_CASE("requirements: format_refusal gives the editor's annotation form", "[requirements]") {
  Refusal r{3, "the option '-i'", "options could point pip at another index"};
  CHECK(format_refusal("requirements.txt", r) ==
        "./requirements.txt:3: refused: the option '-i' (options could point pip at another "
        "index)");
  Refusal whole{0, "a NUL byte", "a requirements file is text"};
  CHECK(format_refusal("requirements.vrf", whole) ==
        "./requirements.vrf: refused: a NUL byte (a requirements file is text)");

  // End to end: the refusal of line 2 of a file.
  auto p = parse("numpy\n--index-url http://evil\n");
  REQUIRE(p.refusals.size() == 1);
  CHECK_THAT(format_refusal("requirements.txt", p.refusals[0]),
             Catch::StartsWith("./requirements.txt:2: refused: the option '--index-url' ("));
}

TEST_CASE("requirements: refusal messages never carry a line break or raw control bytes",
          "[requirements]") {
  // A log line must not be able to forge another annotation.
  auto p = parse(
      "requests\r./requirements.txt:1: fake\n"
      "foo \xe2\x80\xa8 ./requirements.txt:9: fake\n"
      "bar\f\n");
  REQUIRE(p.refusals.size() == 3);
  for (const auto& r : p.refusals) {
    for (unsigned char c : format_refusal("requirements.txt", r)) {
      CHECK((c >= 0x20 && c < 0x7f));
    }
  }
}
