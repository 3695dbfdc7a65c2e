#include "pip_messages.hpp"

#include <algorithm>
#include <set>

namespace clsi::venv {
namespace {

constexpr std::size_t kMaxEntries = 200;  // of each kind, per run

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

// The name a requirement starts with, as written.
std::string_view leading_name(std::string_view s) {
  std::size_t n = 0;
  while (n < s.size() && (is_alnum(s[n]) || s[n] == '.' || s[n] == '_' || s[n] == '-'))
    ++n;
  while (n > 0 && !is_alnum(s[n - 1]))
    --n;
  return s.substr(0, n);
}

// What follows the name and any [extras]: "gamma[x]>=1" -> ">=1".
std::string specifier_of(std::string_view req) {
  std::string_view rest = req.substr(leading_name(req).size());
  rest = trim(rest);
  if (!rest.empty() && rest.front() == '[') {
    auto close = rest.find(']');
    rest = close == std::string_view::npos ? std::string_view() : rest.substr(close + 1);
  }
  rest = trim(rest.substr(0, rest.find(';')));
  return safe_words(rest, 80);
}

bool safe_version(std::string_view v) {
  if (v.empty() || v.size() > 60 || !is_alnum(v.front())) return false;
  return std::all_of(v.begin(), v.end(), [](char c) {
    return is_alnum(c) || std::string_view("._+!-").find(c) != std::string_view::npos;
  });
}

// "1.0, 1.1" of pip's "(from versions: 1.0, 1.1)"; "none" is the empty list.
std::vector<std::string> version_list(std::string_view list) {
  std::vector<std::string> out;
  list = trim(list);
  if (list == "none") return out;
  while (!list.empty() && out.size() < 10000) {
    auto comma = list.find(',');
    std::string_view v = trim(list.substr(0, comma));
    if (safe_version(v)) out.emplace_back(v);
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep,
                 std::string_view last_sep) {
  std::string out;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += i + 1 == items.size() ? last_sep : sep;
    out += items[i];
  }
  return out;
}

std::string available(const std::vector<std::string>& versions) {
  constexpr std::size_t kShown = 10;
  if (versions.size() <= kShown) return join(versions, ", ", ", ");
  std::vector<std::string> head(versions.begin(), versions.begin() + 2);
  std::vector<std::string> tail(versions.end() - 6, versions.end());
  return join(head, ", ", ", ") + ", ..., " + join(tail, ", ", ", ") + "; " +
         std::to_string(versions.size()) + " in all";
}

// Optimal string alignment distance, with an early exit past `limit`.
std::size_t distance(std::string_view a, std::string_view b, std::size_t limit) {
  if ((a.size() > b.size() ? a.size() - b.size() : b.size() - a.size()) > limit) return limit + 1;
  std::vector<std::size_t> prev2(b.size() + 1);
  std::vector<std::size_t> prev(b.size() + 1);
  std::vector<std::size_t> cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j)
    prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    std::size_t row_min = cur[0];
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        cur[j] = std::min(cur[j], prev2[j - 2] + 1);
      row_min = std::min(row_min, cur[j]);
    }
    if (row_min > limit) return limit + 1;
    std::swap(prev2, prev);
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string quoted(const std::vector<std::string>& names) {
  std::vector<std::string> q;
  q.reserve(names.size());
  for (const auto& n : names)
    q.push_back("'" + n + "'");
  return join(q, ", ", " or ");
}

// The base name of a URL or path, e.g. of pip's "Downloading URL (12 kB)".
std::string_view base_name(std::string_view s) {
  s = s.substr(0, s.find_first_of("?#"));
  auto slash = s.rfind('/');
  return slash == std::string_view::npos ? s : s.substr(slash + 1);
}

}  // namespace

std::string safe_words(std::string_view text, std::size_t max) {
  std::string out;
  for (char c : text) {
    if (out.size() >= max) break;
    if (is_alnum(c) || std::string_view(" ._+!-()<>=~,*:;/").find(c) != std::string_view::npos)
      out += c;
  }
  return out;
}

void PipOutput::add(std::string_view raw) {
  std::string_view line = trim(raw);
  const bool indented = !raw.empty() && (raw.front() == ' ' || raw.front() == '\t');

  // Blocks of indented lines that belong to the line before them.
  if (block_ == Block::kConflictCause) {
    if (line.empty() || starts_with(line, "To fix this")) {
      block_ = Block::kNone;
      return;
    }
    auto& c = failure_.conflicts.back();
    constexpr std::string_view kUser = "The user requested ";
    if (starts_with(line, kUser)) {
      std::string_view spec = line.substr(kUser.size());
      if (starts_with(spec, "(constraint) ")) return;
      if (c.requested.size() < kMaxEntries) c.requested.push_back(safe_words(spec, 200));
      return;
    }
    auto on = line.find(" depends on ");
    auto space = line.find(' ');
    if (on != std::string_view::npos && space < on && c.depends.size() < kMaxEntries) {
      PipConflict::Depends d;
      d.package = safe_words(line.substr(0, space), 100);
      d.version = safe_words(line.substr(space + 1, on - space - 1), 60);
      d.requirement = safe_words(line.substr(on + 12), 200);
      c.depends.push_back(std::move(d));
    }
    return;
  }
  if (block_ == Block::kHashes) {
    if (indented && !line.empty()) {
      // "alpha@ file:///... from ...:" or "alpha==1.0 from ...:"; then
      // "Expected sha256 ..." and "Got ..." lines.
      if (!starts_with(line, "Expected ") && !starts_with(line, "Got ")) {
        std::string name = normalize_name(leading_name(line));
        if (!name.empty() && failure_.hash_mismatch_names.size() < kMaxEntries)
          failure_.hash_mismatch_names.push_back(std::move(name));
      }
      return;
    }
    block_ = Block::kNone;
  }

  if (starts_with(line, "ERROR: ") && failure_.errors.size() < kMaxErrorLines)
    failure_.errors.emplace_back(line);

  constexpr std::string_view kNotFound =
      "ERROR: Could not find a version that satisfies the requirement ";
  constexpr std::string_view kNoMatch = "ERROR: No matching distribution found for ";
  constexpr std::string_view kOtherPython =
      "ERROR: Ignored the following versions that require a different python version: ";
  constexpr std::string_view kCannot = "ERROR: Cannot install ";
  if (starts_with(line, kOtherPython)) {
    other_python_.clear();
    std::string_view rest = line.substr(kOtherPython.size());
    while (!rest.empty() && other_python_.size() < 20) {
      auto semi = rest.find(';');
      other_python_.push_back(safe_words(trim(rest.substr(0, semi)), 80));
      if (semi == std::string_view::npos) break;
      rest.remove_prefix(semi + 1);
    }
    return;
  }
  if (starts_with(line, kNotFound) && failure_.not_found.size() < kMaxEntries) {
    std::string_view rest = line.substr(kNotFound.size());
    PipNotFound nf;
    constexpr std::string_view kFromVersions = " (from versions: ";
    if (auto at = rest.rfind(kFromVersions); at != std::string_view::npos) {
      std::string_view list = rest.substr(at + kFromVersions.size());
      if (!list.empty() && list.back() == ')') list.remove_suffix(1);
      nf.versions_known = true;
      nf.versions = version_list(list);
      rest = rest.substr(0, at);
    }
    constexpr std::string_view kFrom = " (from ";
    if (auto at = rest.rfind(kFrom);
        at != std::string_view::npos && !rest.empty() && rest.back() == ')') {
      std::string_view parent = rest.substr(at + kFrom.size());
      // "-r FILE (line N)" is pip's file, i.e. no package's dependency.
      if (!starts_with(parent, "-r ")) nf.parent = normalize_name(leading_name(parent));
      rest = rest.substr(0, at);
    }
    nf.requirement = safe_words(trim(rest), 200);
    nf.name = normalize_name(leading_name(nf.requirement));
    nf.specifier = specifier_of(nf.requirement);
    nf.other_python = std::move(other_python_);
    other_python_.clear();
    if (!nf.name.empty()) failure_.not_found.push_back(std::move(nf));
    return;
  }
  if (starts_with(line, kNoMatch)) {
    std::string req = safe_words(trim(line.substr(kNoMatch.size())), 200);
    std::string name = normalize_name(leading_name(req));
    bool known = std::any_of(failure_.not_found.begin(), failure_.not_found.end(),
                             [&](const PipNotFound& n) { return n.name == name; });
    if (!known && !name.empty() && failure_.not_found.size() < kMaxEntries) {
      PipNotFound nf;
      nf.requirement = req;
      nf.name = name;
      nf.specifier = specifier_of(req);
      failure_.not_found.push_back(std::move(nf));
    }
    return;
  }
  if (starts_with(line, kCannot) && failure_.conflicts.size() < kMaxEntries) {
    PipConflict c;
    // Every "(line N)" of this line is of "-r FILE (line N)": requirement
    // lines hold no parenthesis followed by "line ".
    constexpr std::string_view kLine = "(line ";
    for (auto at = line.find(kLine); at != std::string_view::npos; at = line.find(kLine, at + 1)) {
      std::size_t k = at + kLine.size();
      int n = 0;
      std::size_t digits = 0;
      while (k < line.size() && line[k] >= '0' && line[k] <= '9' && digits < 7) {
        n = n * 10 + (line[k] - '0');
        ++k;
        ++digits;
      }
      if (digits > 0 && k < line.size() && line[k] == ')' && c.file_lines.size() < kMaxEntries)
        c.file_lines.push_back(n);
    }
    failure_.conflicts.push_back(std::move(c));
    return;
  }
  if (line == "The conflict is caused by:" && !failure_.conflicts.empty()) {
    block_ = Block::kConflictCause;
    return;
  }
  if (line.find("THESE PACKAGES DO NOT MATCH THE HASHES") != std::string_view::npos) {
    failure_.hash_mismatch = true;
    block_ = Block::kHashes;
    return;
  }

  // What pip is doing, for the progress line.
  constexpr std::string_view kCollecting = "Collecting ";
  constexpr std::string_view kDownloading = "Downloading ";
  constexpr std::string_view kProcessing = "Processing ";
  constexpr std::string_view kLooking = "INFO: pip is looking at multiple versions of ";
  constexpr std::string_view kSatisfied = "Requirement already satisfied: ";
  if (starts_with(line, kCollecting)) {
    activity_ = "collecting " + safe_words(leading_name(line.substr(kCollecting.size())), 100);
  } else if (starts_with(line, kDownloading)) {
    std::string_view rest = line.substr(kDownloading.size());
    auto space = rest.find(' ');
    activity_ = "downloading " + safe_words(base_name(rest.substr(0, space)), 100);
    if (space != std::string_view::npos)
      activity_ += " " + safe_words(trim(rest.substr(space)), 20);
  } else if (starts_with(line, kProcessing)) {
    activity_ = "reading " + safe_words(base_name(line.substr(kProcessing.size())), 100);
  } else if (starts_with(line, kLooking)) {
    activity_ =
        "trying several versions of " + safe_words(leading_name(line.substr(kLooking.size())), 100);
  } else if (starts_with(line, "Installing collected packages")) {
    activity_ = "unpacking the wheels";
  } else if (starts_with(line, kSatisfied) && line.find("(from -r ") != std::string_view::npos &&
             !line.empty() && line.back() == ')' && satisfied_.size() < kMaxEntries) {
    // "Requirement already satisfied: R in PATH (from -r FILE (line N)) (V)"
    std::string name = normalize_name(leading_name(line.substr(kSatisfied.size())));
    auto open = line.rfind('(');
    std::string_view version = line.substr(open + 1, line.size() - open - 2);
    if (!name.empty() && safe_version(version)) satisfied_.emplace_back(name, version);
  }
}

std::vector<std::string> close_names(const std::string& name,
                                     const std::vector<std::string>& candidates) {
  const std::size_t limit = name.size() <= 4 ? 1 : name.size() <= 8 ? 2 : 3;
  std::vector<std::pair<std::size_t, std::string>> found;
  for (const auto& c : candidates) {
    if (c == name) continue;
    std::size_t d = distance(name, c, limit);
    if (d <= limit) found.emplace_back(d, c);
  }
  std::sort(found.begin(), found.end());
  // Only the closest: "numpi" is numpy, not numba too.
  std::vector<std::string> out;
  for (std::size_t i = 0; i < found.size() && out.size() < 3; ++i)
    if (found[i].first == found.front().first) out.push_back(found[i].second);
  return out;
}

std::vector<RequirementProblem> explain_failure(const PipFailure& failure,
                                                const ExplainContext& context) {
  std::vector<RequirementProblem> problems;
  auto named = [&](const std::string& name) {
    std::vector<std::string> out;
    for (const auto& r : context.written)
      if (r.name == name) out.push_back(r.canonical);
    return out;
  };
  std::vector<std::string> project_list;
  bool listed = false;
  auto suggestions = [&](const std::string& name) -> std::string {
    if (!listed && context.projects) project_list = context.projects();
    listed = true;
    auto close = close_names(name, project_list);
    return close.empty() ? "" : " (did you mean " + quoted(close) + "?)";
  };

  for (const auto& nf : failure.not_found) {
    const bool dep = !nf.parent.empty();
    RequirementProblem p;
    p.requirements = named(dep ? nf.parent : nf.name);
    // "delta needs beta>=5, and ..." for a dependency; the user's own line
    // is the one that asked for delta.
    const std::string needs = dep ? nf.parent + " needs " + nf.requirement + ", and " : "";
    const std::string& name = nf.name;
    p.text = needs;
    if (!nf.versions.empty()) {
      p.text.append("no version of ").append(name);
      if (nf.specifier.empty()) {
        p.text += " can be installed";
      } else {
        p.text.append(" matches ").append(nf.specifier);
      }
      p.text.append(" (available: ").append(available(nf.versions)).append(")");
    } else if (!nf.other_python.empty()) {
      p.text.append("every version of ")
          .append(name)
          .append(" on the index needs another Python than ")
          .append(context.python_version.empty() ? "this one" : context.python_version)
          .append(" (")
          .append(join(nf.other_python, "; ", "; "))
          .append(")");
    } else {
      ProjectPage page;
      if (context.project) page = context.project(name);
      bool has_files = page.state == ProjectPage::State::kFound && !page.files.empty();
      std::vector<std::string> wheels;
      for (const auto& f : page.files) {
        if (f.size() > 4 && f.compare(f.size() - 4, 4, ".whl") == 0) wheels.push_back(f);
      }
      if (page.state == ProjectPage::State::kMissing ||
          (page.state == ProjectPage::State::kFound && !has_files)) {
        if (dep) {
          p.text.append("there is no package named '").append(name).append("' on the index");
        } else {
          p.text.append("no package named '")
              .append(name)
              .append("' on the index")
              .append(suggestions(name));
        }
      } else if (has_files && wheels.empty() && context.only_binary) {
        p.text = dep ? nf.parent + " needs " : "";
        p.text.append(name).append(dep ? ", which" : "");
        p.text += " is published only as source; only pre-built wheels are installed here";
      } else if (!wheels.empty()) {
        std::vector<std::string> some(
            wheels.begin(),
            wheels.begin() + static_cast<std::ptrdiff_t>(std::min<std::size_t>(3, wheels.size())));
        p.text.append("the index has no wheel of ").append(name).append(" that this Python");
        if (!context.python_version.empty()) p.text.append(" (" + context.python_version + ")");
        p.text.append(" can install (it has ")
            .append(join(some, ", ", ", "))
            .append(wheels.size() > some.size() ? ", ..." : "")
            .append(")");
      } else {
        p.text.append("no version of ").append(name).append(" can be installed from the index");
      }
    }
    problems.push_back(std::move(p));
  }

  for (const auto& c : failure.conflicts) {
    std::vector<std::string> involved;
    auto add = [&](const std::vector<std::string>& reqs) {
      for (const auto& r : reqs)
        if (std::find(involved.begin(), involved.end(), r) == involved.end()) involved.push_back(r);
    };
    for (int n : c.file_lines) {
      if (n >= 1 && static_cast<std::size_t>(n) <= context.written.size())
        add({context.written[static_cast<std::size_t>(n) - 1].canonical});
    }
    for (const auto& spec : c.requested)
      add(named(normalize_name(leading_name(spec))));
    std::vector<std::string> causes;
    for (const auto& d : c.depends) {
      add(named(normalize_name(d.package)));
      add(named(normalize_name(leading_name(d.requirement))));
      causes.push_back(d.package + " " + d.version + " depends on " + d.requirement);
    }
    if (causes.empty() && c.requested.size() >= 2)
      causes.push_back("no version satisfies " + join(c.requested, ", ", " and "));
    // In the order of the file pip read, which is the same for every compile.
    std::sort(involved.begin(), involved.end());
    if (involved.empty()) continue;
    RequirementProblem p;
    p.requirements = involved;
    p.conflict = involved.size() > 1;
    p.text = join(causes, "; ", "; ");
    if (!p.conflict) p.text = "its dependencies conflict" + (p.text.empty() ? "" : ": " + p.text);
    problems.push_back(std::move(p));
  }
  return problems;
}

ProblemSummary summarize_problems(const std::vector<RequirementProblem>& problems) {
  std::vector<std::string> subjects;
  std::vector<std::string> details;
  for (const auto& p : problems) {
    std::string subject = p.requirements.empty() ? std::string("a dependency")
                          : p.conflict           ? join(p.requirements, ", ", " together with ")
                                                 : p.requirements.front();
    if (std::find(subjects.begin(), subjects.end(), subject) == subjects.end())
      subjects.push_back(subject);
    details.push_back(subject + ": " + p.text);
  }
  ProblemSummary s;
  s.summary = "pip cannot install " + join(subjects, ", ", ", ");
  s.full = s.summary + " (" + join(details, "; ", "; ") + ")";
  return s;
}

}  // namespace clsi::venv
