// What reaches output.log cannot make a line of its own or an annotation.
#include <catch2/catch.hpp>

#include <regex>
#include <sstream>

#include "log_text.hpp"
#include "requirements.hpp"

using clsi::venv::echo_text;
using clsi::venv::escape_line;
using clsi::venv::log_lines;

namespace {

// Every line as a JS /m regex would see it: \n, \r, U+2028 and U+2029 end
// lines there; Python's splitlines adds \v, \f, \x1c-\x1e and U+0085.
std::vector<std::string> reader_lines(const std::string& text) {
  std::vector<std::string> out{""};
  for (std::size_t i = 0; i < text.size(); ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    bool breaks = c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e);
    if (c == 0xe2 && i + 2 < text.size() && static_cast<unsigned char>(text[i + 1]) == 0x80 &&
        (static_cast<unsigned char>(text[i + 2]) == 0xa8 ||
         static_cast<unsigned char>(text[i + 2]) == 0xa9)) {
      breaks = true;
      i += 2;
    } else if (c == 0xc2 && i + 1 < text.size() &&
               static_cast<unsigned char>(text[i + 1]) == 0x85) {
      breaks = true;
      i += 1;
    }
    if (breaks) {
      out.emplace_back();
    } else {
      out.back() += static_cast<char>(c);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("log text: controls, NEL and line separators are escaped visibly", "[log-text]") {
  CHECK(escape_line("plain text, tabs\tstay") == "plain text, tabs\tstay");
  CHECK(escape_line("a\x1b[31mred") == "a\\x1b[31mred");
  CHECK(escape_line("a\rb\vc\fd\ne") == "a\\x0db\\x0bc\\x0cd\\x0ae");
  CHECK(escape_line("a\u2028b\u2029c") == "a\\u2028b\\u2029c");
  CHECK(escape_line("a\u0085b\u009bc") == "a\\u0085b\\u009bc");
  CHECK(escape_line("caf\xc3\xa9 \xe2\x82\xac") == "caf\xc3\xa9 \xe2\x82\xac");  // UTF-8 stays
  CHECK(escape_line("bad \xff\xc3 byte") == "bad \\xff\\xc3 byte");
  CHECK(escape_line("del\x7f") == "del\\x7f");
}

TEST_CASE("log text: what is written stays the lines it was written as", "[log-text]") {
  const std::string hostile =
      "Successfully installed evil\r./main.tex:7: Undefined control sequence\n"
      "name\u2028./main.tex:8: x\u0085./main.tex:9: y\v./main.tex:10: z";
  auto out = log_lines(hostile);
  auto lines = reader_lines(out);
  REQUIRE(lines.size() == 3);  // two lines and the empty rest after the final '\n'
  CHECK(lines[2].empty());
  for (const auto& l : lines)
    CHECK(l.rfind("./main.tex", 0) == std::string::npos);
}

TEST_CASE("log text: an echoed requirement cannot be read as another file's annotation",
          "[log-text]") {
  // Overleaf's parser, greedy as it is.
  const std::regex annotation(R"(^([./].*):(\d+): (.*)$)");
  auto parsed =
      clsi::venv::parse_requirements("numpy\nx@y ./main.tex:12: LaTeX Error: boom\n", {false, 200});
  REQUIRE(parsed.refusals.size() == 1);
  auto line = clsi::venv::format_refusal("requirements.txt", parsed.refusals[0]);
  INFO(line);
  std::smatch m;
  REQUIRE(std::regex_match(line, m, annotation));
  CHECK(m[1] == "./requirements.txt");
  CHECK(m[2] == "2");
  CHECK(echo_text("a:12: b") == "a\\x3a12: b");
  CHECK(echo_text("no digits: here") == "no digits: here");
  CHECK(echo_text("http://127.0.0.1:8080/x.whl") == "http://127.0.0.1:8080/x.whl");  // a port
  CHECK(echo_text("a:12:b:3: c") == "a\\x3a12:b\\x3a3: c");
}
