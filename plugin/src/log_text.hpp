// Text on its way to output.log. The editor's log panel (and anything that
// reads the log with a JS /m regex or Python's splitlines) must see exactly
// the lines the plugin meant: no byte from pip, the index or a project's file
// may start a line of its own or make a line read as another file's
// annotation (`./main.tex:12: ...`).
#pragma once

#include <string>
#include <string_view>

namespace clsi::venv {

// One line, with everything that could break, hide or colour it escaped
// visibly: C0 controls but TAB (\x1b, \r, \v, \f ...), DEL, C1 controls
// (U+0080-U+009F, NEL included) as \u0085, U+2028 and U+2029 as \u2028, and
// bytes that are not UTF-8 as \xNN. Newlines are escaped too.
std::string escape_line(std::string_view text);

// Text of one or more lines for output.log: each line escaped, joined with
// '\n', ending in '\n'.
std::string log_lines(std::string_view text);

// Text echoed inside an annotation, e.g. a quoted requirement line: escaped,
// and the ':' of ":<digits>:" written \x3a, so that the greedy
// `^([./].*):(\d+): (.*)` of Overleaf's log parser cannot find another file
// and line in it.
std::string echo_text(std::string_view text);

}  // namespace clsi::venv
