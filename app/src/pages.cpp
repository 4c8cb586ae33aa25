#include "todo/pages.hpp"

#include "todo/validate.hpp"

#include <fmt/format.h>

namespace todo {
namespace {

std::string layout(std::string_view title, std::string_view main) {
  return fmt::format(R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title>
<link rel="stylesheet" href="/static/app.css">
</head>
<body>
<header><a class="brand" href="/">To-do</a></header>
<main>
{}</main>
<footer>Signed in to the database with a token from token-broker. No password is stored.</footer>
</body>
</html>
)",
                     html_escape(title), main);
}

std::string banner(const PageContext& context) {
  if (context.banner.empty()) return {};
  return fmt::format("<div class=\"banner\" role=\"alert\">{}</div>\n",
                     html_escape(context.banner));
}

std::string csrf_field(const PageContext& context) {
  return fmt::format(R"(<input type="hidden" name="csrf" value="{}">)",
                     html_escape(context.csrf_token));
}

std::string form_error(const PageContext& context) {
  if (context.form_error.empty()) return {};
  return fmt::format("<p class=\"form-error\" id=\"form-error\" role=\"alert\">{}</p>\n",
                     html_escape(context.form_error));
}

std::string item_row(const PageContext& context, const Todo& item) {
  const std::string desc = html_escape(item.description);
  return fmt::format(
      R"(<li class="todo{done_class}" id="todo-{id}">
<form method="post" action="/todos/{id}/done" class="toggle">{csrf}<input type="hidden" name="done" value="{next}"><button type="submit" title="{toggle_label}" aria-label="{toggle_label}: {desc}">{mark}</button></form>
<div class="text"><span class="description">{desc}</span><time datetime="{created_attr}">{created}</time></div>
<nav class="actions"><a href="/todos/{id}/edit" aria-label="Edit: {desc}">Edit</a><a href="/todos/{id}/delete" class="danger" aria-label="Delete: {desc}">Delete</a></nav>
</li>
)",
      fmt::arg("done_class", item.done ? " done" : ""), fmt::arg("id", item.id),
      fmt::arg("csrf", csrf_field(context)), fmt::arg("next", item.done ? "false" : "true"),
      fmt::arg("toggle_label", item.done ? "Mark as not done" : "Mark as done"),
      fmt::arg("mark", item.done ? "&#x2611;" : "&#x2610;"), fmt::arg("desc", desc),
      fmt::arg("created_attr", html_escape(item.created_date)),
      fmt::arg("created", html_escape(display_date(item.created_date))));
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const char c = text[i];
    if (static_cast<unsigned char>(c) >= 0x80) {
      // Pages say charset=utf-8: a byte that starts no valid sequence (a refused draft, a
      // driver's message in another encoding) is shown as U+FFFD instead of breaking the page.
      const std::size_t n = utf8_sequence(text.substr(i));
      if (n == 0) {
        out += "\xEF\xBF\xBD";
        ++i;
      } else {
        out.append(text.substr(i, n));
        i += n;
      }
      continue;
    }
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
    ++i;
  }
  return out;
}

std::string display_date(std::string_view iso) {
  // YYYY-MM-DDTHH:MM:SSZ
  if (iso.size() == 20 && iso[10] == 'T' && iso[19] == 'Z') {
    return fmt::format("{} {} UTC", iso.substr(0, 10), iso.substr(11, 5));
  }
  return std::string(iso);
}

std::string list_page(const PageContext& context, const std::optional<std::vector<Todo>>& items) {
  std::string main = banner(context);
  main += fmt::format(
      R"(<form class="add" method="post" action="/todos">{}<label for="description">New item</label><div class="row"><input id="description" name="description" maxlength="4000" required autocomplete="off" value="{}"><button type="submit">Add</button></div></form>
)",
      csrf_field(context), html_escape(context.draft));
  main += form_error(context);
  if (!items) {
    main += "<p class=\"empty\">The list cannot be shown right now.</p>\n";
  } else if (items->empty()) {
    main += "<p class=\"empty\" id=\"empty\">Nothing to do yet. Add your first item above.</p>\n";
  } else {
    std::size_t open = 0;
    for (const auto& item : *items) open += item.done ? 0 : 1;
    main += fmt::format("<p class=\"summary\">{} open, {} done</p>\n<ul class=\"todos\">\n", open,
                        items->size() - open);
    for (const auto& item : *items) main += item_row(context, item);
    main += "</ul>\n";
  }
  return layout("To-do", main);
}

std::string edit_page(const PageContext& context, const Todo& item) {
  std::string main = banner(context);
  const std::string& value = context.draft.empty() ? item.description : context.draft;
  main += fmt::format(
      R"(<h1>Edit item</h1>
<form class="edit" method="post" action="/todos/{id}">{csrf}
<label for="description">Description</label>
<textarea id="description" name="description" maxlength="4000" required rows="4">{value}</textarea>
<label class="check"><input type="checkbox" name="done" value="true"{checked}> Done</label>
<p class="meta">Created <time datetime="{created_attr}">{created}</time></p>
<div class="row"><button type="submit">Save</button><a href="/">Cancel</a></div>
</form>
)",
      fmt::arg("id", item.id), fmt::arg("csrf", csrf_field(context)),
      fmt::arg("value", html_escape(value)), fmt::arg("checked", item.done ? " checked" : ""),
      fmt::arg("created_attr", html_escape(item.created_date)),
      fmt::arg("created", html_escape(display_date(item.created_date))));
  main += form_error(context);
  return layout("Edit item", main);
}

std::string delete_page(const PageContext& context, const Todo& item) {
  std::string main = banner(context);
  main += fmt::format(
      R"(<h1>Delete this item?</h1>
<blockquote class="description">{desc}</blockquote>
<form class="confirm" method="post" action="/todos/{id}/delete">{csrf}
<div class="row"><button type="submit" class="danger">Delete</button><a href="/">Cancel</a></div>
</form>
)",
      fmt::arg("desc", html_escape(item.description)), fmt::arg("id", item.id),
      fmt::arg("csrf", csrf_field(context)));
  return layout("Delete item", main);
}

std::string message_page(std::string_view title, std::string_view message) {
  return layout(title, fmt::format(R"(<h1>{}</h1>
<div class="banner" role="alert">{}</div>
<p><a href="/">Back to the list</a></p>
)",
                                   html_escape(title), html_escape(message)));
}

std::string_view stylesheet() {
  return R"(*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
header{background:#0b5cad;padding:.75rem 1rem}
header .brand{color:#fff;font-weight:600;font-size:1.25rem;text-decoration:none}
main{max-width:46rem;margin:1rem auto;padding:0 1rem}
footer{max-width:46rem;margin:2rem auto;padding:0 1rem;color:#57606a;font-size:.85rem}
h1{font-size:1.3rem}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
label.check{font-weight:400}
.row{display:flex;gap:.5rem;align-items:center}
input[type=text],input:not([type]),textarea{flex:1;width:100%;padding:.6rem;border:1px solid #d0d7de;border-radius:6px;font:inherit}
button{padding:.6rem 1rem;border:0;border-radius:6px;background:#0b5cad;color:#fff;font:inherit;cursor:pointer}
button.danger{background:#cf222e}
a{color:#0b5cad}
a.danger{color:#cf222e}
.banner{background:#ffebe9;border:1px solid #ff8182;border-radius:6px;padding:.75rem;margin:1rem 0}
.form-error{color:#cf222e}
.summary,.meta,.empty{color:#57606a}
ul.todos{list-style:none;padding:0;margin:0}
li.todo{display:flex;gap:.75rem;align-items:flex-start;background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:.6rem;margin:.5rem 0}
li.todo .toggle button{background:none;color:#0b5cad;font-size:1.4rem;padding:0 .25rem;line-height:1}
li.todo .text{flex:1;min-width:0;overflow-wrap:anywhere;white-space:pre-wrap}
li.todo time{display:block;color:#57606a;font-size:.8rem;white-space:normal}
li.todo.done .description{text-decoration:line-through;color:#57606a}
li.todo .actions{display:flex;gap:.75rem;font-size:.9rem}
blockquote.description{background:#fff;border-left:4px solid #d0d7de;margin:1rem 0;padding:.5rem 1rem;overflow-wrap:anywhere;white-space:pre-wrap}
@media (max-width:30rem){li.todo{flex-wrap:wrap}li.todo .actions{width:100%;justify-content:flex-end}}
)";
}

}  // namespace todo
