// What lines a requirements file may hold: the one place that decides.
//
// Allowed: blank lines, comments, and one PEP 508 requirement per line
// (name, extras, version specifiers, environment marker) without a URL.
// With require_hashes, a requirement pinned with == also carries one or more
// --hash=sha256:<64 hex>. Everything else is refused: options (-r, -c, -i,
// --index-url, -e, --no-binary, ...), URLs and direct references, local paths
// and archives, ${VAR} expansion, line continuations, non-ASCII and control
// characters. pip never reads the user's file: it reads the canonical lines
// produced here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace clsi::venv {

struct Requirement {
  int line = 0;
  std::string name;       // PEP 503 normalised
  std::string canonical;  // what pip is given, and what the key hashes
};

struct Refusal {
  int line = 0;      // 1-based; 0 for the whole file
  std::string what;  // what was refused, quoted from the line where useful
  std::string why;   // why, in words a user can act on
};

struct ParseOptions {
  bool require_hashes = false;
  int max_requirement_lines = 200;
  // caps.max_packages: more distinct requirements than this are refused, on
  // the line of the first one over it (0: no limit). Dependencies only add
  // to the count, so such a file can never be installed.
  int max_packages = 0;
};

struct ParsedRequirements {
  std::vector<Requirement> requirements;  // sorted by canonical form, duplicates dropped
  std::vector<Refusal> refusals;
};

ParsedRequirements parse_requirements(std::string_view text, const ParseOptions& options);

// PEP 503: lowercase, runs of '-', '_', '.' become one '-'.
std::string normalize_name(std::string_view name);

// "./requirements.txt:3: refused: <what> (<why>)", the form the editor's log
// panel turns into an annotation on that line.
std::string format_refusal(std::string_view file_name, const Refusal& refusal);

// Why pip could not install what some requirements ask for, found by the
// build service (pip_messages.hpp). It names the requirements by their
// canonical lines, not by line numbers: one build serves every compile of
// its key, and each compile's file may order, space and comment them
// differently. `text` comes from pip's output and the index: untrusted.
struct RequirementProblem {
  // The canonical lines concerned; the first is the one the text is about.
  std::vector<std::string> requirements;
  std::string text;  // e.g. "no version of gamma matches ==9.9 (available: 0.3)"
  // The requirements conflict with each other: every one of them is
  // annotated, naming the others' lines; `text` is the cause.
  bool conflict = false;
};

// The output.log lines of one problem for a compile whose file is
// `file_name` and whose requirements are `requirements` (with their lines):
// "./requirements.txt:3: <text>" on the line of each requirement concerned
// (for a conflict: "./requirements.txt:5: beta==1.0 conflicts with line 3
// (alpha): <text>"); a requirement this file does not have gets a
// "[python-venv] <canonical>: <text>" line instead. Everything from the
// problem is echoed with echo_text (log_text.hpp): only the prefix can read
// as a file and line.
std::vector<std::string> format_problem(std::string_view file_name,
                                        const std::vector<Requirement>& requirements,
                                        const RequirementProblem& problem);

}  // namespace clsi::venv
