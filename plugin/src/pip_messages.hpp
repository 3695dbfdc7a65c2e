// Reading pip's output: what a user is shown of it while it runs, and what
// its failures mean for the user's own lines.
//
// pip's text is not an interface: what is read here is the wording pip has
// used from 20.3 (the resolver) to 24, and anything it does not recognise is
// left as it was (the failure then quotes pip's ERROR lines). Every field is
// taken from text that an index can influence (project names, versions, file
// names): it is bounded and reduced to a safe alphabet, and echoed into
// output.log only through log_text.hpp.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "index_client.hpp"
#include "requirements.hpp"

namespace clsi::venv {

// "ERROR: Could not find a version that satisfies the requirement R
// (from P) (from versions: ...)", or "No matching distribution found for R".
struct PipNotFound {
  std::string requirement;  // R as pip wrote it: "gamma==9.9", "beta>=5"
  std::string name;         // its name, normalised
  std::string specifier;    // ">=5" ("" for any version)
  std::string parent;       // normalised name of the package that needs it ("": a requirement)
  bool versions_known = false;
  std::vector<std::string> versions;  // what pip found that it could install
  // "Ignored the following versions that require a different python
  // version: 1.0 Requires-Python >=3.12; ...": those entries.
  std::vector<std::string> other_python;
};

// "ERROR: Cannot install A and B because these package versions have
// conflicting dependencies." and its "The conflict is caused by:" block.
struct PipConflict {
  std::vector<int> file_lines;         // "-r FILE (line N)": lines of pip's requirements file
  std::vector<std::string> requested;  // "The user requested beta==1.0"
  struct Depends {
    std::string package, version, requirement;  // "alpha 1.0 depends on beta>=2"
  };
  std::vector<Depends> depends;
};

struct PipFailure {
  std::vector<PipNotFound> not_found;
  std::vector<PipConflict> conflicts;
  // "THESE PACKAGES DO NOT MATCH THE HASHES FROM THE REQUIREMENTS FILE"
  bool hash_mismatch = false;
  std::vector<std::string> hash_mismatch_names;  // normalised
  std::vector<std::string> errors;               // pip's ERROR: lines, at most kMaxErrorLines
};

inline constexpr std::size_t kMaxErrorLines = 20;

// Collects one run of pip, line by line.
class PipOutput {
 public:
  void add(std::string_view line);
  [[nodiscard]] const PipFailure& failure() const { return failure_; }
  // What pip is doing now, in a few safe words ("downloading
  // alpha-1.0-py3-none-any.whl (12 kB)"); "" before it said anything.
  [[nodiscard]] const std::string& activity() const { return activity_; }
  // Requirements of pip's file that the base interpreter already satisfies
  // (name, version): pip installs nothing for them.
  [[nodiscard]] const std::vector<std::pair<std::string, std::string>>& already_satisfied() const {
    return satisfied_;
  }

 private:
  enum class Block { kNone, kConflictCause, kHashes };
  PipFailure failure_;
  std::vector<std::string> other_python_;  // for the next "Could not find"
  std::string activity_;
  std::vector<std::pair<std::string, std::string>> satisfied_;
  Block block_ = Block::kNone;
};

struct ExplainContext {
  // The requirements in the order of the file pip read (its "line N").
  std::vector<Requirement> written;
  // The index's pages, asked only when pip's words do not tell enough.
  std::function<ProjectPage(const std::string& name)> project;
  std::function<std::vector<std::string>()> projects;
  bool only_binary = true;
  std::string python_version;  // "3.11"
};

// What pip's failure means, per requirement; empty when nothing in it was
// recognised (the caller then shows pip's own ERROR lines).
std::vector<RequirementProblem> explain_failure(const PipFailure& failure,
                                                const ExplainContext& context);

// A failure's words: `summary` for the user's fall-back line ("pip cannot
// install quilwort"), `full` for the operator ("...: quilwort: no package
// named ...").
struct ProblemSummary {
  std::string summary;
  std::string full;
};
ProblemSummary summarize_problems(const std::vector<RequirementProblem>& problems);

// Names closest to `name` among `candidates` (normalised names), all at the
// same smallest distance, at most three: for "did you mean".
std::vector<std::string> close_names(const std::string& name,
                                     const std::vector<std::string>& candidates);

// `text` reduced to characters that are safe to show anywhere (letters,
// digits, " ._+!-()<>=~,*:;/"), at most `max` of them.
std::string safe_words(std::string_view text, std::size_t max = 120);

}  // namespace clsi::venv
