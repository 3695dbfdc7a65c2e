// Questions to the configured index that pip's error text cannot answer:
// is there a project of this name (and which names are close to it), and
// which files does it publish. Asked only after pip failed, from its PEP 503
// "simple" pages (the project list and a project's page), over the same
// schemes pip uses (file://, http://, https://).
//
// The base interpreter fetches and parses the pages (urllib and html.parser
// of its standard library, `python -I -S`, in an isolated child): no code of
// a venv or a wheel, no configuration, no proxy. What it prints is checked
// here again: only names and file names of a safe alphabet come back.
#pragma once

#include <string>
#include <vector>

#include "isolation.hpp"
#include "process_runner.hpp"

namespace clsi::venv {

struct ProjectPage {
  enum class State { kFound, kMissing, kUnknown };
  State state = State::kUnknown;   // kUnknown: the index could not be asked
  std::vector<std::string> files;  // file names the page links to
};

class IndexClient {
 public:
  // `python`: the base interpreter. Every question ends by `deadline`, and
  // takes at most `per_request` of it.
  IndexClient(std::string index_url, std::string python, const PrivateWorkdir& workdir,
              ProcessRunner runner, Deadline deadline,
              std::chrono::milliseconds per_request = std::chrono::seconds(15));

  // <index>/<name>/; `name` must be normalised (PEP 503).
  [[nodiscard]] ProjectPage project(const std::string& name) const;
  // <index>/: every project's normalised name; empty when it cannot be read.
  [[nodiscard]] std::vector<std::string> projects() const;

 private:
  struct Fetched {
    ProjectPage::State state = ProjectPage::State::kUnknown;
    std::vector<std::string> values;
  };
  [[nodiscard]] Fetched fetch(const std::string& mode, const std::string& url,
                              std::size_t max_bytes) const;

  std::string index_url_;
  std::string python_;
  const PrivateWorkdir& workdir_;
  ProcessRunner runner_;
  Deadline deadline_;
  std::chrono::milliseconds per_request_;
};

}  // namespace clsi::venv
