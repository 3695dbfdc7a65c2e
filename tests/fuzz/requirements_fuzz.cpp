// Fuzzing the requirements allowlist parser (issue 4).
//
// The property: parse_requirements never crashes, and nothing it accepts can
// carry an option or a URL to pip. Every accepted requirement's canonical
// form is printable ASCII; has no "://", '@', '$', '#', '\\' or '/'; and has
// no whitespace-separated token starting with '-' except
// --hash=sha256:<64 lowercase hex> when require_hashes is on. Also checked:
// refusal messages are single printable lines (they go to output.log, where a
// line break could forge another annotation), line numbers are in range,
// the list is sorted and unique, and the canonical lines parse back to
// themselves with no refusal.
//
// Two drivers share the checker:
//  - LLVMFuzzerTestOneInput for libFuzzer (clang, -fsanitize=fuzzer,address);
//  - with CLSI_FUZZ_STANDALONE, a main() that runs a fixed seed corpus and a
//    deterministic mutation loop (fixed-seed std::mt19937), so the property
//    is checked under any compiler as the ctest "fuzz: requirements parser
//    smoke". Usage: requirements_fuzz_smoke [ITERATIONS] [SEED].
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "requirements.hpp"

namespace {

using clsi::venv::normalize_name;
using clsi::venv::parse_requirements;
using clsi::venv::ParsedRequirements;
using clsi::venv::ParseOptions;

constexpr int kMaxLines = 64;

// How many parses accepted something and refused something (for the smoke
// driver's summary: a mutation loop that only ever hits refusals checks little).
long g_parses = 0, g_with_accepted = 0, g_with_refusals = 0;

bool is_lower_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}
bool is_lower_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}
bool contains(std::string_view s, std::string_view needle) {
  return s.find(needle) != std::string_view::npos;
}

bool is_hash_token(std::string_view tok) {
  constexpr std::string_view kPrefix = "--hash=sha256:";
  if (tok.size() != kPrefix.size() + 64 || tok.substr(0, kPrefix.size()) != kPrefix) return false;
  for (char c : tok.substr(kPrefix.size()))
    if (!is_lower_hex(c)) return false;
  return true;
}

std::vector<std::string_view> split_spaces(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t pos = 0;
  while (pos <= s.size()) {
    std::size_t sp = s.find(' ', pos);
    if (sp == std::string_view::npos) sp = s.size();
    out.push_back(s.substr(pos, sp - pos));
    pos = sp + 1;
  }
  return out;
}

// What is wrong with one accepted canonical line; empty when nothing is.
std::string check_canonical(std::string_view c, std::string_view name, bool require_hashes) {
  if (c.empty()) return "an empty canonical line";
  for (unsigned char ch : c)
    if (ch < 0x20 || ch > 0x7e) return "a byte outside printable ASCII";
  for (std::string_view bad : {"://", "@", "$", "#", "\\", "/"})
    if (contains(c, bad)) return "'" + std::string(bad) + "' in a canonical line";
  if (name.empty() || !is_lower_alnum(name.front())) return "a name that is not normalised";
  if (normalize_name(name) != name) return "a name that is not normalised";
  if (c.substr(0, name.size()) != name) return "a canonical line not starting with its name";
  int hashes = 0;
  bool first = true;
  for (auto tok : split_spaces(c)) {
    if (tok.empty()) return "a double space in a canonical line";
    if (tok.front() == '-') {
      if (!require_hashes) return "an option token '" + std::string(tok) + "'";
      if (first || !is_hash_token(tok)) return "an option token '" + std::string(tok) + "'";
      ++hashes;
    } else if (hashes > 0) {
      return "a token after the hashes";
    }
    first = false;
  }
  if (require_hashes) {
    if (hashes == 0) return "a requirement without a hash in require_hashes mode";
    if (!contains(c, "==")) return "a requirement without an == pin in require_hashes mode";
  }
  return {};
}

std::string escaped(std::string_view s);

bool printable_message(std::string_view s) {
  for (unsigned char ch : s)
    if ((ch < 0x20 && ch != '\t') || ch > 0x7e) return false;
  return true;
}

std::string_view source_line(std::string_view text, int line_no) {
  std::size_t pos = 0;
  for (int n = 1; n < line_no; ++n) {
    pos = text.find('\n', pos);
    if (pos == std::string_view::npos) return {};
    ++pos;
  }
  auto end = text.find('\n', pos);
  return text.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
}

std::string check_parse(std::string_view text, bool require_hashes) {
  ParseOptions options;
  options.require_hashes = require_hashes;
  options.max_requirement_lines = kMaxLines;
  ParsedRequirements p = parse_requirements(text, options);
  ++g_parses;
  g_with_accepted += !p.requirements.empty();
  g_with_refusals += !p.refusals.empty();

  int lines = 1;
  for (char ch : text)
    lines += ch == '\n';
  bool has_nul = contains(text, std::string_view("\0", 1));
  if (has_nul && !p.requirements.empty()) return "a requirement accepted from a file with a NUL";

  for (const auto& r : p.refusals) {
    if (r.line < 0 || r.line > lines) return "a refusal line number out of range";
    if (r.what.empty() || r.why.empty()) return "a refusal without what or why";
    if (!printable_message(r.what) || !printable_message(r.why)) {
      return "a refusal message with a control or non-ASCII byte";
    }
  }
  if (static_cast<int>(p.requirements.size()) > kMaxLines) return "more requirements than the cap";
  for (std::size_t i = 0; i < p.requirements.size(); ++i) {
    const auto& r = p.requirements[i];
    if (r.line < 1 || r.line > lines) return "a requirement line number out of range";
    if (i > 0 && !(p.requirements[i - 1].canonical < r.canonical)) {
      return "requirements not sorted and unique";
    }
    if (auto v = check_canonical(r.canonical, r.name, require_hashes); !v.empty()) {
      return v + ": " + r.canonical;
    }
    // The line it came from carries no line break that Python would split
    // on, even in its comment, and up to its comment no option or URL.
    auto src = source_line(text, r.line);
    while (!src.empty() && (src.back() == ' ' || src.back() == '\t' || src.back() == '\r'))
      src.remove_suffix(1);
    for (std::string_view bad :
         {"\r", "\f", "\v", "\x1c", "\x1d", "\x1e", "\xc2\x85", "\xe2\x80\xa8", "\xe2\x80\xa9"}) {
      if (contains(src, bad)) return "accepted a line containing '" + escaped(bad) + "'";
    }
    src = src.substr(0, src.find('#'));
    for (std::string_view bad : {"://", "@", "${", "\\"})
      if (contains(src, bad)) return "accepted a line containing '" + std::string(bad) + "'";
    std::size_t pos = 0;
    bool first = true;
    while (pos < src.size()) {
      auto end = src.find_first_of(" \t", pos);
      if (end == std::string_view::npos) end = src.size();
      auto tok = src.substr(pos, end - pos);
      pos = end + 1;
      if (tok.empty()) continue;
      if (tok.front() == '-' &&
          (first || !require_hashes || tok.substr(0, 14) != "--hash=sha256:")) {
        return "accepted a line with the option '" + escaped(tok) + "'";
      }
      first = false;
    }
  }

  // The canonical lines are themselves a file that parses to the same list.
  std::string again;
  for (const auto& r : p.requirements)
    again += r.canonical + "\n";
  ParsedRequirements q = parse_requirements(again, options);
  if (!q.refusals.empty()) return "a canonical line is refused when parsed again: " + again;
  if (q.requirements.size() != p.requirements.size()) return "parsing again changed the list";
  for (std::size_t i = 0; i < q.requirements.size(); ++i) {
    if (q.requirements[i].canonical != p.requirements[i].canonical) {
      return "parsing again changed " + p.requirements[i].canonical;
    }
  }
  return {};
}

// Both modes; empty when every promise is kept.
std::string check_input(std::string_view text) {
  for (bool hashes : {false, true}) {
    auto v = check_parse(text, hashes);
    if (!v.empty()) return v + (hashes ? " [require_hashes]" : "");
  }
  return {};
}

std::string escaped(std::string_view s) {
  std::string out;
  for (unsigned char ch : s) {
    if (ch == '\\') {
      out += "\\\\";
    } else if (ch >= 0x20 && ch < 0x7f) {
      out += static_cast<char>(ch);
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", ch);
      out += buf;
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto v = check_input(text);
  if (!v.empty()) {
    std::fprintf(stderr, "requirements parser violation: %s\ninput: \"%s\"\n", v.c_str(),
                 escaped(text).c_str());
    std::abort();
  }
  return 0;
}

#ifdef CLSI_FUZZ_STANDALONE

namespace {

const std::string kHex = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// seeds() starts with this many plain (accepted) seeds.
constexpr std::size_t kPlainSeeds = 14;

std::vector<std::string> seeds() {
  using namespace std::string_literals;
  return {
      "requests\n",
      "Requests>=2.0,<3\n",
      "foo[bar,Baz]==1.0 ; python_version >= \"3.8\"\n",
      "zope.interface\nbackports.tarfile\n",
      "# comment\nnumpy==1.26.4  # pinned\r\nscipy\r\n",
      "Django (>=4.2, <5) ; os_name == 'posix' and (sys_platform != \"win32\" or extra == "
      "\"x\")\n",
      "pkg===1.0+local.1\npkg==1!2.0.post1.dev3\npkg!=1.0.*\n",
      "numpy==1.26.4 --hash=sha256:" + kHex + "\n",
      "Foo.Bar[x]===2.0 ; sys_platform == 'linux' --hash=sha256:" + kHex + "  # c\r\n",
      "a==1 ; (os_name == \"posix\") --hash=sha256:" + kHex + "\nb==2 --hash=sha256:" + kHex + "\n",
      "requests[socks] (>=2.0, !=2.1.*)\n",
      "requests==2.31.0 --hash=sha256:" + kHex + " --hash=sha256:" + kHex + "\n",
      "foo[a]==1.0 ; python_version >= \"3\" --hash=sha256:" + kHex + "\n",
      "c ; 'linux' in sys_platform or platform.python_implementation not in 'PyPy'\n",
      "-r other.txt\n-c x\n--requirement other.txt\n-e .\n",
      "--index-url http://evil\n-i http://evil\n-ihttp://evil\n--ind=http://evil\n",
      "--extra-index-url http://evil\n--find-links /tmp\n--no-binary :all:\n",
      "--only-binary :none:\n--trusted-host evil\n--pre\n",
      "pkg @ https://x/y.whl\ngit+https://github.com/x/y.git\nhttps://x/p.tar.gz\n",
      "./localdir\n/abs/path\n../up\nfoo.whl\npkg.tar.gz\n~/pkg\n",
      "${HOME}\nrequests==${VERSION}\nrequests ; python_version >= \"${PY}\"\n",
      "requests \\\n-i http://evil\n",
      "requests\f-i http://evil\nrequests\v-i x\nrequests\r-i x\n",
      "requests\xe2\x80\xa8-i http://evil\nrequests\xc2\x85-i x\n",
      "requests\0-i http://evil\n"s,
      "requests\xff\xfe\n\xef\xbb\xbfrequests\n",
      "requests==2.0 --hash=sha256:" + kHex + "\n",
      "foo ; os_name == \"a b\"\nfoo ; os_name == \"a#b\"\nfoo ; evil == \"1\"\n",
      "foo ; ((((os_name == \"posix\"))))\n",
      "requests # -i http://evil \\\n# --index-url=http://evil\n",
      "a\nb\nc\nd\ne\nf\ng\nh\n",
  };
}

const std::vector<std::string>& hostile_tokens() {
  using namespace std::string_literals;
  static const std::vector<std::string> tokens = {
      "-i",
      "-i ",
      " -i http://evil",
      "--index-url=",
      "--index-url http://evil",
      "--ind=",
      "-r",
      "-c",
      "-e",
      "--hash=sha256:",
      "--hash=sha256:" + kHex,
      " --hash=sha256:" + kHex,
      "--pre",
      "://",
      "http://evil/",
      "@",
      " @ ",
      "${X}",
      "${",
      "$",
      "}",
      "\\",
      "\\\n",
      "\f",
      "\v",
      "\r",
      "\r\n",
      "\n",
      "\t",
      "\xe2\x80\xa8",
      "\xe2\x80\xa9",
      "\xc2\x85",
      "\xef\xbb\xbf",
      "\xff",
      "\xc3",
      "\0"s,
      "; ",
      ";",
      "[",
      "]",
      "(",
      ")",
      ",",
      "==",
      "===",
      ">=",
      "~=",
      "!=",
      "*",
      "!",
      "+",
      "#",
      " #",
      " # ",
      "'",
      "\"",
      " and ",
      " or ",
      " not in ",
      " in ",
      "python_version",
      "extra",
      "os.name",
      ".whl",
      ".tar.gz",
      ".",
      "..",
      "/",
      "./",
      "~",
      "-",
      "_",
      "1.0",
      "requests",
      "Foo.Bar",
      " ",
  };
  return tokens;
}

std::string mutate(std::string s, const std::vector<std::string>& corpus, std::mt19937& rng) {
  auto pick = [&](std::size_t n) {
    return n == 0 ? std::size_t{0} : std::uniform_int_distribution<std::size_t>(0, n - 1)(rng);
  };
  const auto& tokens = hostile_tokens();
  int ops = pick(2) == 0 ? 1 : 1 + static_cast<int>(pick(4));
  for (int k = 0; k < ops; ++k) {
    std::size_t at = pick(s.size() + 1);
    switch (pick(8)) {
      case 0:
      case 1:
      case 2:  // splice in a hostile token
        s.insert(at, tokens[pick(tokens.size())]);
        break;
      case 3:  // overwrite one byte with any byte
        if (!s.empty()) s[pick(s.size())] = static_cast<char>(pick(256));
        break;
      case 4:  // delete a short range
        if (!s.empty()) s.erase(pick(s.size()), 1 + pick(8));
        break;
      case 5: {  // splice in part of another seed
        const auto& other = corpus[pick(corpus.size())];
        std::size_t from = pick(other.size() + 1);
        s.insert(at, other.substr(from, 1 + pick(40)));
        break;
      }
      case 6:  // a token at the start of a line
        s.insert(0, tokens[pick(tokens.size())]);
        break;
      default:  // replace a byte with a hostile token
        if (!s.empty()) s.replace(pick(s.size()), 1, tokens[pick(tokens.size())]);
        break;
    }
  }
  if (s.size() > 4096) s.resize(4096);
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  long iterations = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 200000;
  unsigned seed = argc > 2 ? static_cast<unsigned>(std::strtoul(argv[2], nullptr, 10)) : 20240604u;
  std::mt19937 rng(seed);
  auto corpus = seeds();
  for (std::size_t i = 0; i < kPlainSeeds; ++i) {
    // Each plain seed is accepted whole in one of the two modes.
    bool plain = false;
    for (bool hashes : {false, true}) {
      auto p = parse_requirements(corpus[i], {hashes, kMaxLines});
      plain = plain || (p.refusals.empty() && !p.requirements.empty());
    }
    if (!plain) {
      std::fprintf(stderr, "seed %zu is not plain: \"%s\"\n", i, escaped(corpus[i]).c_str());
      return 1;
    }
  }
  int violations = 0;
  auto run = [&](const std::string& input) {
    auto v = check_input(input);
    if (v.empty()) return;
    if (++violations <= 20) {
      std::fprintf(stderr, "violation: %s\n  input: \"%s\"\n", v.c_str(), escaped(input).c_str());
    }
  };
  for (const auto& s : corpus)
    run(s);
  for (const auto& t : hostile_tokens()) {
    run(t + "\n");
    run("requests" + t + "\n");
    run("requests " + t + " x\n");
    run("foo ; os_name == \"" + t + "\"\n");
    run("foo==1.0" + t + " --hash=sha256:" + kHex + "\n");
  }
  for (long i = 0; i < iterations; ++i) {
    // Mostly the plain seeds (the first kPlainSeeds), so that much is accepted.
    std::size_t n = rng() % 3 != 0 ? kPlainSeeds : corpus.size();
    const auto& base = corpus[std::uniform_int_distribution<std::size_t>(0, n - 1)(rng)];
    auto input = mutate(base, corpus, rng);
    run(input);
    // Keep some mutants as new seeds, so mutations compound.
    if (i % 997 == 0 && corpus.size() < 2000) corpus.push_back(input);
  }
  std::printf(
      "requirements parser smoke: %ld mutated inputs (seed %u); %ld parses, %ld accepted "
      "something, %ld refused something; %d violation(s)\n",
      iterations, seed, g_parses, g_with_accepted, g_with_refusals, violations);
  return violations == 0 ? 0 : 1;
}

#endif  // CLSI_FUZZ_STANDALONE
