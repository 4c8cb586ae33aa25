#pragma once
// Server-rendered HTML for the to-do UI. Pure functions: data in, a complete page out. Every
// value that reaches the page goes through html_escape.

#include "todo/store.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace todo {

/// Escapes & < > " ' so that any text is safe in element content and quoted attributes; bytes
/// that are not UTF-8 become U+FFFD, so that every page is the UTF-8 it says it is.
std::string html_escape(std::string_view text);

/// "2026-11-29T01:02:03Z" -> "2026-11-29 01:02 UTC"; anything else is shown as it is.
std::string display_date(std::string_view iso);

struct PageContext {
  std::string csrf_token;  ///< goes into every form
  std::string banner;      ///< an error to show on top ("" = none)
  std::string form_error;  ///< a validation error for the form on the page
  std::string draft;       ///< what the user typed, kept after a validation error
};

/// The list with the add form; `items` empty shows the empty state. `items` is nullopt when
/// the list could not be loaded (the banner says why).
std::string list_page(const PageContext& context, const std::optional<std::vector<Todo>>& items);
std::string edit_page(const PageContext& context, const Todo& item);
std::string delete_page(const PageContext& context, const Todo& item);
/// A page with a title, a message and a link back to the list.
std::string message_page(std::string_view title, std::string_view message);

/// The one stylesheet, served at /static/app.css.
std::string_view stylesheet();

}  // namespace todo
