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

}  // namespace clsi::venv
