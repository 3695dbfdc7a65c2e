// pip's output read for the user (pip_messages.hpp), pip's report read for
// the pinned install (pip_report.hpp), and the problems that become
// annotations on the user's own lines. The pip texts are what pip 23.0.1
// (Debian bookworm) prints for each mistake.
#include <catch2/catch.hpp>

#include <regex>
#include <string>
#include <vector>

#include "builder.hpp"
#include "pip_messages.hpp"
#include "pip_report.hpp"
#include "protocol.hpp"
#include "requirements.hpp"

using clsi::venv::close_names;
using clsi::venv::explain_failure;
using clsi::venv::ExplainContext;
using clsi::venv::format_problem;
using clsi::venv::parse_pip_report;
using clsi::venv::parse_requirements;
using clsi::venv::pinned_requirements;
using clsi::venv::PipOutput;
using clsi::venv::ProjectPage;
using clsi::venv::Requirement;
using clsi::venv::RequirementProblem;

namespace {

const std::string kFile = "/var/lib/venvs/tmp/build-1234-abc/requirements.txt";

PipOutput read_pip(const std::string& text) {
  PipOutput out;
  std::size_t start = 0;
  while (start <= text.size()) {
    auto nl = text.find('\n', start);
    out.add(std::string_view(text).substr(
        start, nl == std::string::npos ? std::string::npos : nl - start));
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  return out;
}

// The requirements as a compile has them: parsed from the user's file.
std::vector<Requirement> user_file(const std::string& text) {
  auto p = parse_requirements(text, {});
  REQUIRE(p.refusals.empty());
  return p.requirements;
}

ExplainContext context_for(const std::vector<Requirement>& written, ProjectPage page = {},
                           std::vector<std::string> projects = {}) {
  ExplainContext c;
  c.written = written;
  c.project = [page](const std::string&) { return page; };
  c.projects = [projects] { return projects; };
  c.python_version = "3.11";
  return c;
}

std::vector<std::string> lines_for(const std::string& text, const RequirementProblem& p) {
  return format_problem("requirements.txt", user_file(text), p);
}

// Overleaf's log parser, greedy as it is.
const std::regex kAnnotation(R"(^([./].*):(\d+): (.*)$)");

}  // namespace

TEST_CASE("pip messages: a typo'd name, with a near name on the index", "[pip-messages]") {
  auto out = read_pip(
      "Looking in indexes: file:///srv/index/simple/\n"
      "WARNING: Location 'file:///srv/index/simple/quilwort/' is ignored: it is neither a file "
      "nor a directory.\n"
      "ERROR: Could not find a version that satisfies the requirement quilwort (from versions: "
      "none)\n"
      "ERROR: No matching distribution found for quilwort\n");
  const auto& f = out.failure();
  REQUIRE(f.not_found.size() == 1);
  CHECK(f.not_found[0].name == "quilwort");
  CHECK(f.not_found[0].versions_known);
  CHECK(f.not_found[0].versions.empty());
  CHECK(f.not_found[0].parent.empty());

  const std::string text = "# deps\n\ngamma\nquilwort\n";
  ProjectPage missing;
  missing.state = ProjectPage::State::kMissing;
  auto problems = explain_failure(
      f, context_for(user_file(text), missing, {"alpha", "gamma", "quillwort", "quilt"}));
  REQUIRE(problems.size() == 1);
  CHECK(problems[0].requirements == std::vector<std::string>{"quilwort"});
  CHECK(problems[0].text == "no package named 'quilwort' on the index (did you mean 'quillwort'?)");
  CHECK(lines_for(text, problems[0]) ==
        std::vector<std::string>{
            "./requirements.txt:4: no package named 'quilwort' on the index (did you mean "
            "'quillwort'?)"});

  SECTION("no near name: no suggestion") {
    auto p = explain_failure(f, context_for(user_file(text), missing, {"alpha", "numpy"}));
    REQUIRE(p.size() == 1);
    CHECK(p[0].text == "no package named 'quilwort' on the index");
  }
}

TEST_CASE("pip messages: a version the index does not have lists the ones it has",
          "[pip-messages]") {
  auto out = read_pip(
      "ERROR: Could not find a version that satisfies the requirement quillwort==9.9 (from "
      "versions: 1.0, 1.1)\n"
      "ERROR: No matching distribution found for quillwort==9.9\n");
  const std::string text = "# pinned\nQuillwort == 9.9\n";
  auto problems = explain_failure(out.failure(), context_for(user_file(text)));
  REQUIRE(problems.size() == 1);
  CHECK(lines_for(text, problems[0]) ==
        std::vector<std::string>{
            "./requirements.txt:2: no version of quillwort matches ==9.9 (available: 1.0, 1.1)"});

  SECTION("a long list is shortened") {
    std::string versions;
    for (int i = 0; i < 30; ++i)
      versions += (i ? ", 1." : "1.") + std::to_string(i);
    auto many = read_pip(
        "ERROR: Could not find a version that satisfies the requirement quillwort==9.9 (from "
        "versions: " +
        versions + ")\n");
    auto p = explain_failure(many.failure(), context_for(user_file(text)));
    REQUIRE(p.size() == 1);
    CHECK(p[0].text ==
          "no version of quillwort matches ==9.9 (available: 1.0, 1.1, ..., 1.24, 1.25, 1.26, "
          "1.27, 1.28, 1.29; 30 in all)");
  }
}

TEST_CASE("pip messages: an sdist-only project, a project without a wheel for this Python",
          "[pip-messages]") {
  auto out = read_pip(
      "ERROR: Could not find a version that satisfies the requirement srconly (from versions: "
      "none)\n"
      "ERROR: No matching distribution found for srconly\n");
  const std::string text = "srconly\n";
  ProjectPage page;
  page.state = ProjectPage::State::kFound;
  page.files = {"srconly-1.0.tar.gz", "srconly-0.9.zip"};
  auto p = explain_failure(out.failure(), context_for(user_file(text), page));
  REQUIRE(p.size() == 1);
  CHECK(lines_for(text, p[0]) ==
        std::vector<std::string>{"./requirements.txt:1: srconly is published only as source; "
                                 "only pre-built wheels are installed here"});

  page.files = {"srconly-1.0-cp312-cp312-manylinux_2_17_x86_64.whl"};
  p = explain_failure(out.failure(), context_for(user_file(text), page));
  REQUIRE(p.size() == 1);
  CHECK(p[0].text ==
        "the index has no wheel of srconly that this Python (3.11) can install (it has "
        "srconly-1.0-cp312-cp312-manylinux_2_17_x86_64.whl)");

  SECTION("every version needs another Python") {
    auto py = read_pip(
        "ERROR: Ignored the following versions that require a different python version: 1.0 "
        "Requires-Python >=3.12; 1.1 Requires-Python >=3.12\n"
        "ERROR: Could not find a version that satisfies the requirement srconly (from versions: "
        "none)\n");
    auto q = explain_failure(py.failure(), context_for(user_file(text), page));
    REQUIRE(q.size() == 1);
    CHECK(q[0].text ==
          "every version of srconly on the index needs another Python than 3.11 (1.0 "
          "Requires-Python >=3.12; 1.1 Requires-Python >=3.12)");
  }
}

TEST_CASE("pip messages: a dependency that cannot be found is put on the line that needs it",
          "[pip-messages]") {
  auto out = read_pip(
      "Processing ./idx/files/delta-1.0-py3-none-any.whl\n"
      "ERROR: Could not find a version that satisfies the requirement beta>=5 (from delta) (from "
      "versions: 1.0, 2.1)\n"
      "ERROR: No matching distribution found for beta>=5\n");
  const auto& f = out.failure();
  REQUIRE(f.not_found.size() == 1);
  CHECK(f.not_found[0].parent == "delta");
  CHECK(f.not_found[0].specifier == ">=5");
  const std::string text = "gamma\ndelta\n";
  auto p = explain_failure(f, context_for(user_file(text)));
  REQUIRE(p.size() == 1);
  CHECK(lines_for(text, p[0]) ==
        std::vector<std::string>{"./requirements.txt:2: delta needs beta>=5, and no version of "
                                 "beta matches >=5 (available: 1.0, 2.1)"});
}

TEST_CASE("pip messages: a conflict names both of the user's lines, not pip's sorted ones",
          "[pip-messages]") {
  // pip read the service's file: alpha on its line 1, beta==1.0 on line 2.
  auto out = read_pip(
      "Processing ./idx/files/beta-1.0-py3-none-any.whl\n"
      "INFO: pip is looking at multiple versions of beta to determine which version is "
      "compatible with other requirements. This could take a while.\n"
      "ERROR: Cannot install -r " +
      kFile +
      " (line 1) and beta==1.0 because these package versions have conflicting dependencies.\n"
      "\n"
      "The conflict is caused by:\n"
      "    The user requested beta==1.0\n"
      "    alpha 1.0 depends on beta>=2\n"
      "\n"
      "To fix this you could try to:\n"
      "1. loosen the range of package versions you've specified\n"
      "\n"
      "ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/"
      "dependency-resolution/#dealing-with-dependency-conflicts\n");
  const auto& f = out.failure();
  REQUIRE(f.conflicts.size() == 1);
  CHECK(f.conflicts[0].file_lines == std::vector<int>{1});
  CHECK(f.conflicts[0].requested == std::vector<std::string>{"beta==1.0"});
  REQUIRE(f.conflicts[0].depends.size() == 1);
  CHECK(f.conflicts[0].depends[0].package == "alpha");
  CHECK(f.conflicts[0].depends[0].requirement == "beta>=2");

  const std::string text = "# plots\nalpha\n\n# pinned for reproducibility\nbeta==1.0\n";
  auto written = user_file(text);  // sorted: what the service wrote for pip
  auto p = explain_failure(f, context_for(written));
  REQUIRE(p.size() == 1);
  CHECK(p[0].conflict);
  CHECK(p[0].requirements == std::vector<std::string>{"alpha", "beta==1.0"});
  CHECK(lines_for(text, p[0]) ==
        std::vector<std::string>{
            "./requirements.txt:2: alpha conflicts with line 5 (beta==1.0): alpha 1.0 depends on "
            "beta>=2",
            "./requirements.txt:5: beta==1.0 conflicts with line 2 (alpha): alpha 1.0 depends on "
            "beta>=2"});
  // Another compile of the same key, its lines elsewhere.
  CHECK(lines_for("beta==1.0\nalpha\n", p[0]) ==
        std::vector<std::string>{
            "./requirements.txt:2: alpha conflicts with line 1 (beta==1.0): alpha 1.0 depends on "
            "beta>=2",
            "./requirements.txt:1: beta==1.0 conflicts with line 2 (alpha): alpha 1.0 depends on "
            "beta>=2"});

  SECTION("two packages' dependencies") {
    auto two = read_pip("ERROR: Cannot install -r " + kFile + " (line 1) and -r " + kFile +
                        " (line 2) because these package versions have conflicting dependencies.\n"
                        "The conflict is caused by:\n"
                        "    alpha 1.0 depends on beta>=2\n"
                        "    zeta 1.0 depends on beta<2\n"
                        "\n");
    auto q = explain_failure(two.failure(), context_for(user_file("zeta\nalpha\n")));
    REQUIRE(q.size() == 1);
    CHECK(q[0].requirements == std::vector<std::string>{"alpha", "zeta"});
    CHECK(q[0].text == "alpha 1.0 depends on beta>=2; zeta 1.0 depends on beta<2");
  }
}

TEST_CASE("pip messages: a changed file is a hash mismatch, not the user's", "[pip-messages]") {
  auto out = read_pip(
      "ERROR: THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE. If you have "
      "updated the package versions, please update the hashes. Otherwise, examine the package "
      "contents carefully; someone may have tampered with them.\n"
      "    gamma@ http://127.0.0.1:4000/files/gamma-0.3-py3-none-any.whl from "
      "http://127.0.0.1:4000/files/gamma-0.3-py3-none-any.whl (from -r /x/pinned.txt (line 1)):\n"
      "        Expected sha256 dffa4971b33e890f18ccf57f77bc93aace355328205750dffdca03e1913a3a17\n"
      "             Got        0000000000000000000000000000000000000000000000000000000000000000\n");
  CHECK(out.failure().hash_mismatch);
  CHECK(out.failure().hash_mismatch_names == std::vector<std::string>{"gamma"});
  CHECK(explain_failure(out.failure(), context_for({})).empty());
}

TEST_CASE("pip messages: what pip is doing, and what the base interpreter already has",
          "[pip-messages]") {
  PipOutput out;
  out.add("Collecting alpha");
  CHECK(out.activity() == "collecting alpha");
  out.add("  Downloading http://127.0.0.1:4000/files/alpha-1.0-py3-none-any.whl (1.2 kB)");
  CHECK(out.activity() == "downloading alpha-1.0-py3-none-any.whl (1.2 kB)");
  out.add(
      "Requirement already satisfied: jupyter-client in /usr/lib/python3/dist-packages (from "
      "-r /x/requirements.txt (line 1)) (7.4.9)");
  out.add(
      "Requirement already satisfied: entrypoints in /usr/lib/python3/dist-packages (from "
      "jupyter-client->-r /x/requirements.txt (line 1)) (0.4)");
  REQUIRE(out.already_satisfied().size() == 1);
  CHECK(out.already_satisfied()[0].first == "jupyter-client");
  CHECK(out.already_satisfied()[0].second == "7.4.9");
  out.add("  Downloading http://x/\x1b[31mevil\r./main.tex:3: boom.whl");
  CHECK(out.activity().find('\x1b') == std::string::npos);
  CHECK(out.activity().find('\r') == std::string::npos);
}

TEST_CASE("pip messages: text from the index cannot forge an annotation or a line",
          "[pip-messages]") {
  auto out = read_pip(
      "ERROR: Could not find a version that satisfies the requirement gamma==9.9 (from versions: "
      "1.0\x1b[2K, 2.0\r./main.tex:12: boom, ./main.tex:13: x, 3.0)\n");
  const std::string text = "gamma==9.9\n";
  auto p = explain_failure(out.failure(), context_for(user_file(text)));
  REQUIRE(p.size() == 1);
  CHECK(p[0].text == "no version of gamma matches ==9.9 (available: 3.0)");
  // A problem whose text came straight from a hostile peer.
  RequirementProblem hostile;
  hostile.requirements = {"gamma==9.9"};
  hostile.text = "x./main.tex:12: boom\r./main.tex:13: y\n./main.tex:14: z\x1b[31m";
  auto lines = lines_for(text, hostile);
  REQUIRE(lines.size() == 1);
  INFO(lines[0]);
  std::smatch m;
  REQUIRE(std::regex_match(lines[0], m, kAnnotation));
  CHECK(m[1] == "./requirements.txt");
  CHECK(m[2] == "1");
  CHECK(lines[0].find_first_of("\r\n\x1b") == std::string::npos);
  // Unknown to this file: a note, not an annotation.
  hostile.requirements = {"other"};
  auto note = lines_for(text, hostile);
  REQUIRE(note.size() == 1);
  CHECK(note[0].rfind("[python-venv] other: ", 0) == 0);
}

TEST_CASE("pip messages: near names", "[pip-messages]") {
  CHECK(close_names("quilwort", {"quillwort", "quill", "wort"}) ==
        std::vector<std::string>{"quillwort"});
  CHECK(close_names("numpi", {"numpy", "numba", "scipy"}) == std::vector<std::string>{"numpy"});
  CHECK(close_names("scikitlearn", {"scikit-learn", "scikit-image"}) ==
        std::vector<std::string>{"scikit-learn"});
  CHECK(close_names("pandsa", {"pandas"}) == std::vector<std::string>{"pandas"});  // a swap
  CHECK(close_names("abc", {"xyz", "abc"}).empty());
}

TEST_CASE("pip messages: a failure's words for the user and the operator", "[pip-messages]") {
  RequirementProblem a{{"quilwort"}, "no package named 'quilwort' on the index", false};
  RequirementProblem b{{"alpha", "beta==1.0"}, "alpha 1.0 depends on beta>=2", true};
  auto s = clsi::venv::summarize_problems({a, b});
  CHECK(s.summary == "pip cannot install quilwort, alpha together with beta==1.0");
  CHECK(s.full ==
        "pip cannot install quilwort, alpha together with beta==1.0 (quilwort: no package named "
        "'quilwort' on the index; alpha together with beta==1.0: alpha 1.0 depends on beta>=2)");
}

TEST_CASE("pip messages: problems survive the protocol and the failure record", "[pip-messages]") {
  RequirementProblem b{{"alpha", "beta==1.0"}, "alpha 1.0 depends on beta>=2", true};
  clsi::venv::protocol::Event e;
  e.event = "done";
  e.cause = clsi::venv::protocol::Cause::kRequirements;
  e.reason = "pip cannot install alpha together with beta==1.0";
  e.problems = {b};
  auto back = clsi::venv::protocol::decode_event(clsi::venv::protocol::encode(e));
  REQUIRE(back);
  REQUIRE(back->problems.size() == 1);
  CHECK(back->problems[0].requirements == b.requirements);
  CHECK(back->problems[0].text == b.text);
  CHECK(back->problems[0].conflict);

  auto stored = clsi::venv::encode_failure(e.reason, e.problems);
  CHECK(stored.find('\n') == std::string::npos);  // a failure record holds one line
  auto f = clsi::venv::decode_failure(stored);
  CHECK(f.reason == e.reason);
  REQUIRE(f.problems.size() == 1);
  CHECK(f.problems[0].requirements == b.requirements);
  // Records of before, and odd ones, read as their text.
  CHECK(clsi::venv::decode_failure("pip install failed").reason == "pip install failed");
  CHECK(clsi::venv::decode_failure("{not json").reason == "{not json");
  CHECK(clsi::venv::decode_failure(clsi::venv::encode_failure("{x}", {})).reason == "{x}");
}

TEST_CASE("pip report: the resolve's files, pinned by URL and sha256", "[pip-report]") {
  const std::string report = R"({"version": "1", "pip_version": "23.0.1", "install": [
    {"download_info": {"url": "file:///srv/index/files/alpha-1.0-py3-none-any.whl",
       "archive_info": {"hash": "sha256=d910cbcbfab7007d67891eebf45286cb0282f69ca7b089b87e027c9d896b8924",
                        "hashes": {"sha256": "d910cbcbfab7007d67891eebf45286cb0282f69ca7b089b87e027c9d896b8924"}}},
     "is_direct": false, "requested": true,
     "metadata": {"metadata_version": "2.1", "name": "alpha", "version": "1.0",
                  "requires_dist": ["beta>=2", "Gamma_X (>=1) ; extra == 'x'"]}},
    {"download_info": {"url": "http://127.0.0.1:4000/files/beta-2.1-py3-none-any.whl",
       "archive_info": {"hash": "sha256=cbe7cfda1d3030460051b17cb5fd589130675b7f1d411a9c602ef2dfe3a160ba"}},
     "is_direct": false, "requested": false,
     "metadata": {"metadata_version": "2.1", "name": "beta", "version": "2.1"}}],
    "environment": {}})";
  auto r = parse_pip_report(report);
  REQUIRE(r);
  REQUIRE(r->size() == 2);
  CHECK((*r)[0].name == "alpha");
  CHECK((*r)[0].requested);
  CHECK((*r)[0].requires_names == std::vector<std::string>{"beta", "gamma-x"});
  CHECK((*r)[1].sha256 == "cbe7cfda1d3030460051b17cb5fd589130675b7f1d411a9c602ef2dfe3a160ba");
  CHECK_FALSE((*r)[1].requested);
  CHECK(pinned_requirements(*r) ==
        "alpha @ file:///srv/index/files/alpha-1.0-py3-none-any.whl "
        "--hash=sha256:d910cbcbfab7007d67891eebf45286cb0282f69ca7b089b87e027c9d896b8924\n"
        "beta @ http://127.0.0.1:4000/files/beta-2.1-py3-none-any.whl "
        "--hash=sha256:cbe7cfda1d3030460051b17cb5fd589130675b7f1d411a9c602ef2dfe3a160ba\n");

  auto with = [](const std::string& name, const std::string& version, const std::string& url,
                 const std::string& hash) {
    return R"({"install": [{"download_info": {"url": ")" + url +
           R"(", "archive_info": {"hashes": {"sha256": ")" + hash +
           R"("}}}, "requested": true, "metadata": {"name": ")" + name + R"(", "version": ")" +
           version + R"("}}]})";
  };
  const std::string h(64, 'a');
  const std::string u = "https://mirror/files/a-1.0-py3-none-any.whl";
  CHECK(parse_pip_report(with("a", "1.0", u, h)));
  // What could end a requirement line, add an option or expand a variable.
  for (const std::string& bad_url :
       {u + " --index-url http://evil/", u + "\\n--index-url=http://evil/", u + "#egg=x",
        u + "?${HOME}", u + ";python_version>'0'", std::string("ftp://mirror/a.whl"),
        std::string("/srv/a.whl"), u + "\\t", u + "'"}) {
    INFO(bad_url);
    CHECK_FALSE(parse_pip_report(with("a", "1.0", bad_url, h)));
  }
  CHECK_FALSE(parse_pip_report(with("a", "1.0", u, std::string(63, 'a'))));
  CHECK_FALSE(parse_pip_report(with("a", "1.0", u, std::string(64, 'A'))));
  CHECK_FALSE(parse_pip_report(with("a b", "1.0", u, h)));
  CHECK_FALSE(parse_pip_report(with("a", "1.0 --pre", u, h)));
  CHECK_FALSE(parse_pip_report(with("-e", "1.0", u, h)));
  CHECK_FALSE(parse_pip_report("[]"));
  CHECK_FALSE(parse_pip_report("{\"install\": {}}"));
  CHECK_FALSE(parse_pip_report(std::string(clsi::venv::kMaxReportBytes + 1, ' ')));
  auto no_hash = R"({"install": [{"download_info": {"url": ")" + u +
                 R"(", "archive_info": {}}, "metadata": {"name": "a", "version": "1.0"}}]})";
  auto e = parse_pip_report(no_hash);
  REQUIRE_FALSE(e);
  CHECK(e.error() == "pip's report gives no sha256 for a 1.0, so it cannot be pinned");
}

TEST_CASE("requirements: more distinct packages than caps.max_packages are refused",
          "[pip-messages][caps]") {
  std::string text = "# many\n";
  for (int i = 1; i <= 150; ++i)
    text += "pkg" + std::to_string(i) + "\n";
  text += "pkg3>=1\n";  // the same package again does not count twice
  clsi::venv::ParseOptions o;
  o.max_packages = 100;
  auto p = parse_requirements(text, o);
  REQUIRE(p.refusals.size() == 1);
  CHECK(clsi::venv::format_refusal("requirements.txt", p.refusals[0]) ==
        "./requirements.txt:102: refused: more than 100 distinct packages (caps.max_packages is "
        "100, and dependencies count too)");
  o.max_packages = 150;
  CHECK(parse_requirements(text, o).refusals.empty());
}
