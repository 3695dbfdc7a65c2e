// What one pip resolve chose: pip's installation report (`pip install
// --dry-run --report FILE`, https://pip.pypa.io/en/stable/reference/
// installation-report/), read defensively, and the requirements file that
// installs exactly those files, each checked against its sha256, with no
// second resolve.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "expected.hpp"

namespace clsi::venv {

// Bounds: a report longer than this, or listing more distributions, is not
// a report of a build this service would do.
inline constexpr std::size_t kMaxReportBytes = std::size_t{16} * 1024 * 1024;
inline constexpr std::size_t kMaxReportedDistributions = 10000;

struct ResolvedDistribution {
  std::string name;        // as the distribution's metadata spells it
  std::string version;     // metadata's Version
  std::string url;         // where pip found the file (http, https or file)
  std::string sha256;      // 64 lowercase hex digits
  bool requested = false;  // a requirement named it; else it is a dependency
  // Normalised names of the packages this one's Requires-Dist names.
  std::vector<std::string> requires_names;
  std::vector<std::string> requires_spelled;  // the same, as Requires-Dist writes them
  // The name pip installs it under (its headers directory,
  // include/site/pythonX.Y/<name>/): the requirement's spelling, or the
  // Requires-Dist's of what needs it. Set by the builder; "" is `name`.
  std::string install_name;
};

// The distributions a report says pip would install, in its order. Each
// field is checked: a name or version that is not one, a URL of another
// scheme or with a character that could end the requirement line early or
// be expanded by pip (white space, quotes, ';', '$', '#', controls), or a
// missing or malformed sha256 make it an error that names the distribution.
// `of_distribution` (optional) is set when the error is the metadata of a
// distribution the requirements chose (its Name or Version), which a retry
// cannot mend, rather than the report or the index's links.
Expected<std::vector<ResolvedDistribution>> parse_pip_report(std::string_view json_text,
                                                             bool* of_distribution = nullptr);

// The requirements file of the install: one "name @ url --hash=sha256:..."
// line per distribution. With --no-deps and --require-hashes pip installs
// exactly these files and refuses any whose bytes changed since the resolve.
std::string pinned_requirements(const std::vector<ResolvedDistribution>& distributions);

}  // namespace clsi::venv
