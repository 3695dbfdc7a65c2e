// Help text of the command-line tools (clsi-runner, clsi-venvs). CLI11 prints
// an option's description as given and indents what follows each '\n', so
// descriptions are wrapped here to keep --help within 100 columns.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace clsi {

// `text` wrapped on spaces at `width` columns; a '\n' in it is kept.
inline std::string wrap_text(std::string_view text, std::size_t width = 68) {
  std::string out;
  std::size_t column = 0;
  while (!text.empty()) {
    if (text.front() == '\n') {
      out += '\n';
      column = 0;
      text.remove_prefix(1);
      continue;
    }
    if (text.front() == ' ') {
      text.remove_prefix(1);
      continue;
    }
    const std::size_t end = text.find_first_of(" \n");
    const std::string_view word = text.substr(0, end);
    if (column > 0 && column + 1 + word.size() > width) {
      out += '\n';
      column = 0;
    } else if (column > 0) {
      out += ' ';
      ++column;
    }
    out += word;
    column += word.size();
    text.remove_prefix(word.size());
  }
  return out;
}

}  // namespace clsi
