#include "requirements.hpp"

#include "log_text.hpp"

#include <algorithm>
#include <cctype>
#include <optional>
#include <set>

namespace clsi::venv {
namespace {

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
bool is_space(char c) {
  return c == ' ' || c == '\t';
}
bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

const std::set<std::string_view> kMarkerVariables = {
    "python_version",      "python_full_version",    "os_name",
    "sys_platform",        "platform_release",       "platform_system",
    "platform_version",    "platform_machine",       "platform_python_implementation",
    "implementation_name", "implementation_version", "extra"};

// What a refusal echoes of the user's line: short, and unable to forge a
// line or an annotation in output.log (log_text.hpp).
std::string quote_excerpt(std::string_view s) {
  constexpr std::size_t kMax = 60;
  std::string out = echo_text(s.substr(0, kMax));
  if (s.size() > kMax) out += "...";
  return "'" + out + "'";
}

// What Python's str.splitlines() would break a line at, and what is not UTF-8,
// anywhere in a line, its comment included: the parser must see the same
// lines as any other reader of the file. Other non-ASCII text is allowed in
// comments (classify_hostile refuses it in requirements).
std::optional<Refusal> line_breaking_or_invalid(std::string_view line) {
  for (std::size_t i = 0; i < line.size(); ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if ((c < 0x20 && c != '\t') || c == 0x7f) {
      return Refusal{0, "a control character (byte " + std::to_string(c) + ")",
                     "control characters can split or hide lines"};
    }
    if (c < 0x80) continue;
    auto at = [&](std::size_t k) {
      return i + k < line.size() ? static_cast<unsigned char>(line[i + k]) : 0;
    };
    auto cont = [&](std::size_t k, unsigned char lo = 0x80, unsigned char hi = 0xbf) {
      return at(k) >= lo && at(k) <= hi;
    };
    std::size_t len = 0;
    if (c >= 0xc2 && c <= 0xdf && cont(1)) {
      len = 2;
    } else if (c >= 0xe0 && c <= 0xef &&
               cont(1, c == 0xe0 ? 0xa0 : 0x80, c == 0xed ? 0x9f : 0xbf) && cont(2)) {
      len = 3;
    } else if (c >= 0xf0 && c <= 0xf4 &&
               cont(1, c == 0xf0 ? 0x90 : 0x80, c == 0xf4 ? 0x8f : 0xbf) && cont(2) && cont(3)) {
      len = 4;
    } else {
      return Refusal{0, "invalid UTF-8 (a non-ASCII byte " + std::to_string(c) + ")",
                     "a requirements file is UTF-8 text, and requirement lines are plain ASCII"};
    }
    std::string_view seq = line.substr(i, len);
    if (seq == "\xc2\x85" || seq == "\xe2\x80\xa8" || seq == "\xe2\x80\xa9") {
      return Refusal{0,
                     std::string("a non-ASCII line separator (U+") +
                         (seq.size() == 2    ? "0085"
                          : seq[2] == '\xa8' ? "2028"
                                             : "2029") +
                         ")",
                     "Python's line splitting would start a new line there"};
    }
    i += len - 1;
  }
  return std::nullopt;
}

// Classifies a line that is not a plain requirement. The order matters: the
// most dangerous reading of a line is the one reported.
std::optional<Refusal> classify_hostile(std::string_view line, bool require_hashes) {
  auto has = [&](std::string_view needle) { return line.find(needle) != std::string_view::npos; };
  for (unsigned char c : line) {
    if (c >= 0x80) {
      return Refusal{0, "a non-ASCII character",
                     "requirement lines are plain ASCII; a different encoding could change what "
                     "pip reads"};
    }
    if (c < 0x20 && c != '\t') {
      return Refusal{0, "a control character (byte " + std::to_string(c) + ")",
                     "control characters can split or hide lines"};
    }
    if (c == 0x7f) return Refusal{0, "a control character (byte 127)", "not allowed"};
  }
  if (!line.empty() && line.back() == '\\') {
    return Refusal{0, "a line continuation (trailing backslash)",
                   "joining lines could hide an option on the next line"};
  }
  if (line.front() == '-') {
    std::string_view opt = line.substr(0, line.find_first_of(" \t="));
    if (opt.size() > 2 && opt[1] != '-') opt = opt.substr(0, 2);  // joined short option, e.g. -iURL
    return Refusal{0, "the option " + quote_excerpt(opt),
                   "options could point pip at another index, read another file or run a build; "
                   "only plain requirements are allowed"};
  }
  if (has("${")) {
    return Refusal{0, "a variable reference " + quote_excerpt(line.substr(line.find("${"))),
                   "pip would expand it from the service's environment"};
  }
  if (has("://") || has("@")) {
    return Refusal{0, "a URL or direct reference " + quote_excerpt(line),
                   "packages come only from the configured index"};
  }
  std::string first(line.substr(0, line.find_first_of(" \t;[(<>=!~")));
  // pip compares archive extensions case-insensitively (is_archive_file).
  std::transform(first.begin(), first.end(), first.begin(), [](char c) {
    return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  });
  auto ends_with = [&](std::string_view suffix) {
    return first.size() >= suffix.size() &&
           std::string_view(first).substr(first.size() - suffix.size()) == suffix;
  };
  bool archive = false;
  for (std::string_view ext : {".whl", ".zip", ".tar", ".tgz", ".tar.gz", ".tbz", ".tar.bz2",
                               ".txz", ".tlz", ".tar.xz", ".tar.lz", ".tar.lzma"}) {
    archive = archive || ends_with(ext);
  }
  if (line.front() == '.' || line.front() == '/' || line.front() == '~' || has("/") || archive) {
    return Refusal{0, "a local path or archive " + quote_excerpt(line),
                   "installing from files would run a build or take code from the project"};
  }
  if (!require_hashes && has("--hash")) {
    return Refusal{0, "a --hash option",
                   "hashes are accepted only when the operator enables require_hashes"};
  }
  return std::nullopt;
}

// A recursive-descent reader for one PEP 508 requirement without a URL.
class LineParser {
 public:
  LineParser(std::string_view s, bool require_hashes) : s_(s), require_hashes_(require_hashes) {}

  // Returns the canonical form, or sets error_.
  std::optional<Requirement> parse() {
    Requirement r;
    skip_ws();
    auto name = identifier();
    if (name.empty()) return fail("a requirement must start with a package name");
    r.name = normalize_name(name);
    std::string canonical = r.name;

    skip_ws();
    if (peek() == '[') {
      ++i_;
      std::set<std::string> extras;
      skip_ws();
      while (peek() != ']') {
        auto extra = identifier();
        if (extra.empty()) return fail("malformed extras");
        extras.insert(normalize_name(extra));
        skip_ws();
        if (peek() == ',') {
          ++i_;
          skip_ws();
        } else if (peek() != ']') {
          return fail("malformed extras");
        }
      }
      ++i_;
      if (!extras.empty()) {
        canonical += '[';
        bool first = true;
        for (const auto& e : extras) {
          canonical += (first ? "" : ",") + e;
          first = false;
        }
        canonical += ']';
      }
    }

    skip_ws();
    bool paren = false;
    if (peek() == '(') {
      paren = true;
      ++i_;
      skip_ws();
    }
    std::vector<std::string> specs;
    while (true) {
      skip_ws();
      auto op = version_op();
      if (op.empty()) {
        if (!specs.empty()) return fail("a version specifier must follow ','");
        break;
      }
      skip_ws();
      auto version = version_string();
      if (version.empty()) return fail("a version must follow '" + op + "'");
      if (op == "==" || op == "===") pinned_ = version.find('*') == std::string::npos;
      specs.push_back(op + version);
      skip_ws();
      if (peek() != ',') break;
      ++i_;
    }
    if (paren) {
      skip_ws();
      if (peek() != ')') return fail("unbalanced parenthesis in the version specifier");
      ++i_;
    }
    std::sort(specs.begin(), specs.end());
    for (std::size_t k = 0; k < specs.size(); ++k)
      canonical += (k ? "," : "") + specs[k];
    pinned_ = pinned_ && specs.size() == 1;

    skip_ws();
    if (peek() == ';') {
      ++i_;
      skip_ws();
      std::string marker;
      if (!marker_or(marker)) return std::nullopt;
      canonical += "; " + marker;
    }

    skip_ws();
    std::vector<std::string> hashes;
    while (!at_end()) {
      constexpr std::string_view kHash = "--hash=sha256:";
      if (!require_hashes_ || s_.substr(i_, kHash.size()) != kHash) {
        return fail("unexpected " + quote_excerpt(s_.substr(i_)));
      }
      i_ += kHash.size();
      std::size_t start = i_;
      while (!at_end() && is_hex(peek()))
        ++i_;
      if (i_ - start != 64 || (!at_end() && !is_space(peek()))) {
        return fail("a --hash must be sha256: followed by 64 hex digits");
      }
      std::string h(s_.substr(start, 64));
      std::transform(h.begin(), h.end(), h.begin(),
                     [](char c) { return static_cast<char>(std::tolower(c)); });
      hashes.push_back("--hash=sha256:" + h);
      skip_ws();
    }
    if (require_hashes_) {
      if (hashes.empty())
        return fail("require_hashes is on: every requirement needs --hash=sha256:...");
      if (!pinned_) return fail("require_hashes is on: pin an exact version with ==");
      std::sort(hashes.begin(), hashes.end());
      hashes.erase(std::unique(hashes.begin(), hashes.end()), hashes.end());
      for (const auto& h : hashes)
        canonical += " " + h;
    }
    r.canonical = canonical;
    return r;
  }

  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  std::nullopt_t fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return std::nullopt;
  }
  bool fail_bool(std::string message) {
    fail(std::move(message));
    return false;
  }
  [[nodiscard]] bool at_end() const { return i_ >= s_.size(); }
  [[nodiscard]] char peek() const { return at_end() ? '\0' : s_[i_]; }
  void skip_ws() {
    while (!at_end() && is_space(s_[i_]))
      ++i_;
  }
  std::string_view identifier() {
    std::size_t start = i_;
    if (!is_alnum(peek())) return {};
    while (!at_end() && (is_alnum(s_[i_]) || s_[i_] == '-' || s_[i_] == '_' || s_[i_] == '.'))
      ++i_;
    while (i_ > start && !is_alnum(s_[i_ - 1]))
      --i_;  // must end alphanumeric
    return s_.substr(start, i_ - start);
  }
  std::string version_op() {
    for (std::string_view op : {"===", "==", "!=", "<=", ">=", "~=", "<", ">"}) {
      if (s_.substr(i_, op.size()) == op) {
        i_ += op.size();
        return std::string(op);
      }
    }
    return {};
  }
  std::string version_string() {
    std::size_t start = i_;
    if (!is_alnum(peek())) return {};  // never starts with '-': pip would read an option
    while (!at_end() &&
           (is_alnum(s_[i_]) || std::string_view("._*+!-").find(s_[i_]) != std::string_view::npos))
      ++i_;
    return std::string(s_.substr(start, i_ - start));
  }

  // marker_or := marker_and ('or' marker_and)*
  bool marker_or(std::string& out) {
    if (!marker_and(out)) return false;
    while (keyword("or")) {
      out += " or ";
      if (!marker_and(out)) return false;
    }
    return true;
  }
  bool marker_and(std::string& out) {
    if (!marker_expr(out)) return false;
    while (keyword("and")) {
      out += " and ";
      if (!marker_expr(out)) return false;
    }
    return true;
  }
  bool marker_expr(std::string& out) {
    skip_ws();
    if (peek() == '(') {
      // Bounded: a file of '(' must not exhaust the host's stack.
      if (++depth_ > kMaxMarkerDepth) return fail_bool("the marker is nested too deeply");
      ++i_;
      out += '(';
      if (!marker_or(out)) return false;
      --depth_;
      skip_ws();
      if (peek() != ')') return fail_bool("unbalanced parenthesis in the marker");
      ++i_;
      out += ')';
      return true;
    }
    std::string lhs;
    if (!marker_value(lhs)) return false;
    skip_ws();
    std::string op = version_op();
    if (op.empty()) {
      if (keyword("not")) {
        if (!keyword("in")) return fail_bool("expected 'not in' in the marker");
        op = "not in";
      } else if (keyword("in")) {
        op = "in";
      } else {
        return fail_bool("expected a comparison in the marker");
      }
    }
    std::string rhs;
    if (!marker_value(rhs)) return false;
    out += lhs + " " + op + " " + rhs;
    return true;
  }
  bool marker_value(std::string& out) {
    skip_ws();
    char q = peek();
    if (q == '"' || q == '\'') {
      ++i_;
      std::size_t start = i_;
      while (!at_end() && s_[i_] != q) {
        char c = s_[i_];
        // No whitespace, '#', '$' or quotes inside: pip would split, comment or expand.
        if (!(is_alnum(c) || std::string_view("._+!*,:<>=~-").find(c) != std::string_view::npos)) {
          return fail_bool("character '" + std::string(1, c) +
                           "' is not allowed in a marker string");
        }
        ++i_;
      }
      if (at_end()) return fail_bool("unterminated string in the marker");
      out = "\"" + std::string(s_.substr(start, i_ - start)) + "\"";
      ++i_;
      return true;
    }
    std::size_t start = i_;
    while (!at_end() && (is_alnum(s_[i_]) || s_[i_] == '_' || s_[i_] == '.'))
      ++i_;
    std::string_view var = s_.substr(start, i_ - start);
    if (var == "platform.python_implementation") var = "platform_python_implementation";
    if (!kMarkerVariables.count(var)) {
      return fail_bool("unknown marker variable " + quote_excerpt(var));
    }
    out = std::string(var);
    return true;
  }
  bool keyword(std::string_view kw) {
    skip_ws();
    if (s_.substr(i_, kw.size()) != kw) return false;
    std::size_t end = i_ + kw.size();
    if (end < s_.size() && (is_alnum(s_[end]) || s_[end] == '_')) return false;
    i_ = end;
    skip_ws();
    return true;
  }

  static constexpr int kMaxMarkerDepth = 32;

  std::string_view s_;
  bool require_hashes_;
  std::size_t i_ = 0;
  int depth_ = 0;
  bool pinned_ = false;
  std::string error_;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front()))
    s.remove_prefix(1);
  while (!s.empty() && (is_space(s.back()) || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

}  // namespace

std::string normalize_name(std::string_view name) {
  std::string out;
  out.reserve(name.size());
  bool sep = false;
  for (char c : name) {
    if (c == '-' || c == '_' || c == '.') {
      sep = true;
      continue;
    }
    if (sep && !out.empty()) out += '-';
    sep = false;
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

ParsedRequirements parse_requirements(std::string_view text, const ParseOptions& options) {
  ParsedRequirements out;
  if (text.substr(0, 3) == "\xEF\xBB\xBF") {
    out.refusals.push_back({1, "a byte-order mark", "save the file as plain UTF-8 without a BOM"});
    text.remove_prefix(3);
  }
  if (text.find('\0') != std::string_view::npos) {
    out.refusals.push_back({0, "a NUL byte", "a requirements file is text"});
    return out;
  }
  std::set<std::string> seen;
  std::set<std::string> names;  // distinct packages, for max_packages
  int line_no = 0;
  int requirement_lines = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    std::string_view raw =
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++line_no;
    std::string_view line = trim(raw);
    if (line.empty()) continue;
    // Checked on the whole line: a comment must not hide a line break.
    auto broken = line_breaking_or_invalid(line);
    if (line.front() == '#' && !broken) continue;
    // An inline comment starts at '#' preceded by whitespace (as pip reads it).
    for (std::size_t k = 1; k < line.size() && !broken; ++k) {
      if (line[k] == '#' && is_space(line[k - 1])) {
        line = trim(line.substr(0, k));
        break;
      }
    }
    // Refused comment lines count too: the refusals a file can cause are bounded.
    if (++requirement_lines > options.max_requirement_lines) {
      out.refusals.push_back(
          {line_no,
           "more than " + std::to_string(options.max_requirement_lines) + " requirement lines",
           "caps.max_requirement_lines is " + std::to_string(options.max_requirement_lines)});
      break;
    }
    if (broken) {
      broken->line = line_no;
      out.refusals.push_back(std::move(*broken));
      continue;
    }
    if (auto hostile = classify_hostile(line, options.require_hashes)) {
      hostile->line = line_no;
      out.refusals.push_back(std::move(*hostile));
      continue;
    }
    LineParser p(line, options.require_hashes);
    auto req = p.parse();
    if (!req) {
      out.refusals.push_back(
          {line_no, quote_excerpt(line), "not a plain requirement: " + p.error()});
      continue;
    }
    req->line = line_no;
    names.insert(req->name);
    if (options.max_packages > 0 && static_cast<int>(names.size()) > options.max_packages) {
      out.refusals.push_back(
          {line_no, "more than " + std::to_string(options.max_packages) + " distinct packages",
           "caps.max_packages is " + std::to_string(options.max_packages) +
               ", and dependencies count too"});
      break;
    }
    if (seen.insert(req->canonical).second) out.requirements.push_back(std::move(*req));
  }
  std::sort(out.requirements.begin(), out.requirements.end(),
            [](const Requirement& a, const Requirement& b) { return a.canonical < b.canonical; });
  return out;
}

std::string format_refusal(std::string_view file_name, const Refusal& r) {
  std::string out = "./" + std::string(file_name);
  if (r.line > 0) out += ":" + std::to_string(r.line);
  out += ": refused: " + r.what + " (" + r.why + ")";
  return out;
}

std::vector<std::string> format_problem(std::string_view file_name,
                                        const std::vector<Requirement>& requirements,
                                        const RequirementProblem& problem) {
  auto find = [&](const std::string& canonical) -> const Requirement* {
    for (const auto& r : requirements)
      if (r.canonical == canonical) return &r;
    return nullptr;
  };
  const std::string text = echo_text(problem.text);
  const std::string prefix = "./" + std::string(file_name) + ":";
  std::vector<std::string> out;
  auto unplaced = [&](const std::string& canonical) {
    out.push_back("[python-venv] " + echo_text(canonical) + ": " + text);
  };
  if (problem.requirements.empty()) {
    out.push_back("[python-venv] " + text);
    return out;
  }
  if (!problem.conflict) {
    const Requirement* r = find(problem.requirements.front());
    if (r) {
      out.push_back(prefix + std::to_string(r->line) + ": " + text);
    } else {
      unplaced(problem.requirements.front());
    }
    return out;
  }
  for (const auto& subject : problem.requirements) {
    const Requirement* r = find(subject);
    std::string others;
    for (const auto& other : problem.requirements) {
      if (other == subject) continue;
      const Requirement* o = find(other);
      others += others.empty() ? "" : " and ";
      others +=
          o ? "line " + std::to_string(o->line) + " (" + echo_text(other) + ")" : echo_text(other);
    }
    std::string what = echo_text(subject) + " conflicts with " + others;
    if (!text.empty()) what += ": " + text;
    if (r) {
      out.push_back(prefix + std::to_string(r->line) + ": ");
    } else {
      out.emplace_back("[python-venv] ");
    }
    out.back() += what;
  }
  return out;
}

}  // namespace clsi::venv
