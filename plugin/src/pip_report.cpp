#include "pip_report.hpp"

#include <nlohmann/json.hpp>

#include "log_text.hpp"
#include "requirements.hpp"

namespace clsi::venv {
namespace {

using nlohmann::json;

bool is_alnum(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// PEP 508 names: letters and digits, with '.', '_' and '-' inside.
bool valid_name(std::string_view s) {
  if (s.empty() || s.size() > 200 || !is_alnum(s.front()) || !is_alnum(s.back())) return false;
  for (char c : s)
    if (!is_alnum(c) && c != '.' && c != '_' && c != '-') return false;
  return true;
}

// PEP 440 versions, as metadata writes them (local versions included).
bool valid_version(std::string_view s) {
  if (s.empty() || s.size() > 100 || !is_alnum(s.front())) return false;
  for (char c : s)
    if (!is_alnum(c) && std::string_view("._+!-").find(c) == std::string_view::npos) return false;
  return true;
}

// A URL that pip reads back as one token of a requirement line: no white
// space, quote, ';' (a marker), '$' (pip expands ${VAR}), '#' (a comment or
// fragment), backslash or control character; only the schemes pip would
// have fetched from the index.
bool valid_url(std::string_view s) {
  if (s.size() > 4096) return false;
  bool scheme =
      s.rfind("https://", 0) == 0 || s.rfind("http://", 0) == 0 || s.rfind("file:///", 0) == 0;
  if (!scheme) return false;
  for (char c : s) {
    if (is_alnum(c)) continue;
    if (std::string_view("-._~:/?[]@!&()*+,=%").find(c) == std::string_view::npos) return false;
  }
  return true;
}

bool valid_sha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

std::string string_at(const json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// download_info.archive_info: "hashes": {"sha256": ...} (pip 22.3 on), or
// the older "hash": "sha256=..." that pip also computes from a downloaded
// file when the index gave none.
std::string sha256_of(const json& archive_info) {
  if (!archive_info.is_object()) return {};
  if (auto hashes = archive_info.find("hashes"); hashes != archive_info.end()) {
    if (hashes->is_object()) {
      std::string h = string_at(*hashes, "sha256");
      if (!h.empty()) return h;
    }
  }
  std::string legacy = string_at(archive_info, "hash");
  constexpr std::string_view kPrefix = "sha256=";
  if (legacy.rfind(kPrefix, 0) == 0) return legacy.substr(kPrefix.size());
  return {};
}

// The name a Requires-Dist entry starts with ("beta (>=2) ; extra == 'x'").
std::string_view required_name_as_written(std::string_view entry) {
  std::size_t n = 0;
  while (n < entry.size() &&
         (is_alnum(entry[n]) || entry[n] == '.' || entry[n] == '_' || entry[n] == '-'))
    ++n;
  return entry.substr(0, n);
}

// A name or version from the report, quoted for a message: bounded, escaped.
std::string excerpt(std::string_view s) {
  constexpr std::size_t kMax = 80;
  return "'" + echo_text(s.substr(0, kMax)) + (s.size() > kMax ? "...'" : "'");
}

}  // namespace

Expected<std::vector<ResolvedDistribution>> parse_pip_report(std::string_view json_text,
                                                             bool* of_distribution) {
  if (of_distribution) *of_distribution = false;
  auto metadata_error = [&](std::string why) {
    if (of_distribution) *of_distribution = true;
    return Error{std::move(why)};
  };
  if (json_text.size() > kMaxReportBytes) return Error{"pip's report is larger than 16 MiB"};
  json j = json::parse(json_text, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return Error{"pip's report is not a JSON object"};
  auto install = j.find("install");
  if (install == j.end() || !install->is_array()) return Error{"pip's report has no install list"};
  if (install->size() > kMaxReportedDistributions)
    return Error{"pip's report lists more than " + std::to_string(kMaxReportedDistributions) +
                 " distributions"};
  std::vector<ResolvedDistribution> out;
  for (const auto& item : *install) {
    if (!item.is_object()) return Error{"pip's report holds an entry that is not an object"};
    ResolvedDistribution d;
    auto metadata = item.find("metadata");
    if (metadata == item.end() || !metadata->is_object())
      return Error{"pip's report holds an entry without metadata"};
    d.name = string_at(*metadata, "name");
    d.version = string_at(*metadata, "version");
    if (!valid_name(d.name)) {
      return metadata_error(
          "a distribution the requirements resolve to has a Name that is not a project name: " +
          excerpt(d.name));
    }
    if (!valid_version(d.version)) {
      return metadata_error("the distribution " + d.name +
                            " has a Version that is not a version: " + excerpt(d.version));
    }
    const std::string what = d.name + " " + d.version;
    auto info = item.find("download_info");
    if (info == item.end() || !info->is_object())
      return Error{"pip's report says nothing of where " + what + " comes from"};
    d.url = string_at(*info, "url");
    if (!valid_url(d.url)) {
      return Error{"the index gave " + what +
                   " a URL this service does not install from (not http, https or file, or with "
                   "characters a requirement line cannot hold)"};
    }
    auto archive = info->find("archive_info");
    if (archive == info->end())
      return Error{what + " is not an archive from the index (a directory or a VCS checkout)"};
    d.sha256 = sha256_of(*archive);
    if (!valid_sha256(d.sha256))
      return Error{"pip's report gives no sha256 for " + what + ", so it cannot be pinned"};
    auto requested = item.find("requested");
    d.requested = requested != item.end() && requested->is_boolean() && requested->get<bool>();
    if (auto rd = metadata->find("requires_dist"); rd != metadata->end() && rd->is_array()) {
      for (const auto& r : *rd) {
        if (!r.is_string()) continue;
        const std::string text = r.get<std::string>();
        auto written = required_name_as_written(text);
        if (written.empty()) continue;
        d.requires_names.push_back(normalize_name(written));
        d.requires_spelled.emplace_back(written);
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

std::string pinned_requirements(const std::vector<ResolvedDistribution>& distributions) {
  std::string text;
  for (const auto& d : distributions)
    text += d.name + " @ " + d.url + " --hash=sha256:" + d.sha256 + "\n";
  return text;
}

}  // namespace clsi::venv
