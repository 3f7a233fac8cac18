// Plain-text tables for the terminal: columns sized to their contents, long cells wrapped.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vmbt {

/// A table of text cells printed with aligned columns. Cells longer than a column's width limit
/// wrap at spaces onto more lines; a row of one cell with `section` set is a heading across the
/// table.
class TextTable {
 public:
  /// `headers` names the columns; `max_widths[i]` (0 = unlimited) bounds column i.
  explicit TextTable(std::vector<std::string> headers, std::vector<size_t> max_widths = {});

  void add_row(std::vector<std::string> cells);
  /// A heading line spanning the table ("exits by reason").
  void add_section(std::string title);
  /// Right-aligns column `i` (numbers).
  void align_right(size_t i);

  std::string render() const;

 private:
  struct Row {
    std::vector<std::string> cells;
    bool section = false;
  };
  std::vector<std::string> headers_;
  std::vector<size_t> max_widths_;
  std::vector<bool> right_;
  std::vector<Row> rows_;
};

/// Splits `text` into lines of at most `width` characters (UTF-8 aware), breaking at spaces where
/// possible; width 0 means no limit.
std::vector<std::string> wrap_text(const std::string& text, size_t width);

/// Display width of a UTF-8 string (code points; every one is one column).
size_t display_width(const std::string& text);

}  // namespace vmbt
