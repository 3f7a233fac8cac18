#include "cli/text_table.h"

#include <algorithm>

namespace vmbt {

namespace {

/// Byte offset of the code point after the first `n` code points of `s` (or s.size()).
size_t byte_offset(const std::string& s, size_t n) {
  size_t i = 0;
  for (size_t cp = 0; i < s.size() && cp < n; ++cp) {
    ++i;
    while (i < s.size() && (static_cast<unsigned char>(s[i]) & 0xc0) == 0x80) ++i;
  }
  return i;
}

std::string pad(const std::string& s, size_t width, bool right) {
  size_t w = display_width(s);
  if (w >= width) return s;
  std::string fill(width - w, ' ');
  return right ? fill + s : s + fill;
}

}  // namespace

size_t display_width(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text) n += (c & 0xc0) != 0x80;
  return n;
}

std::vector<std::string> wrap_text(const std::string& text, size_t width) {
  std::vector<std::string> lines;
  std::string rest = text;
  while (width > 0 && display_width(rest) > width) {
    size_t cut = byte_offset(rest, width);
    size_t space = rest.rfind(' ', cut);
    if (space == std::string::npos || space == 0) {
      lines.push_back(rest.substr(0, cut));
      rest = rest.substr(cut);
    } else {
      lines.push_back(rest.substr(0, space));
      rest = rest.substr(space + 1);
    }
  }
  lines.push_back(rest);
  return lines;
}

TextTable::TextTable(std::vector<std::string> headers, std::vector<size_t> max_widths)
    : headers_(std::move(headers)), max_widths_(std::move(max_widths)) {
  max_widths_.resize(headers_.size(), 0);
  right_.resize(headers_.size(), false);
}

void TextTable::add_row(std::vector<std::string> cells) {
  cells.resize(headers_.size());
  rows_.push_back({std::move(cells), false});
}

void TextTable::add_section(std::string title) {
  rows_.push_back({{std::move(title)}, true});
}

void TextTable::align_right(size_t i) {
  if (i < right_.size()) right_[i] = true;
}

std::string TextTable::render() const {
  const size_t n = headers_.size();
  std::vector<size_t> width(n, 0);
  auto measure = [&](const std::vector<std::string>& cells) {
    for (size_t i = 0; i < n; ++i) {
      for (const auto& line : wrap_text(cells[i], max_widths_[i])) {
        width[i] = std::max(width[i], display_width(line));
      }
    }
  };
  measure(headers_);
  for (const Row& r : rows_) {
    if (!r.section) measure(r.cells);
  }

  std::string out;
  auto emit = [&](const std::vector<std::string>& cells) {
    std::vector<std::vector<std::string>> wrapped(n);
    size_t height = 1;
    for (size_t i = 0; i < n; ++i) {
      wrapped[i] = wrap_text(cells[i], max_widths_[i]);
      height = std::max(height, wrapped[i].size());
    }
    for (size_t line = 0; line < height; ++line) {
      std::string text;
      for (size_t i = 0; i < n; ++i) {
        const std::string cell = line < wrapped[i].size() ? wrapped[i][line] : "";
        if (i) text += "  ";
        text += pad(cell, width[i], right_[i]);
      }
      while (!text.empty() && text.back() == ' ') text.pop_back();
      out += text + "\n";
    }
  };
  emit(headers_);
  size_t total = 0;
  for (size_t w : width) total += w;
  total += 2 * (n - 1);
  out += std::string(total, '-') + "\n";
  for (const Row& r : rows_) {
    if (r.section) {
      out += r.cells[0] + "\n";
    } else {
      emit(r.cells);
    }
  }
  return out;
}

}  // namespace vmbt
