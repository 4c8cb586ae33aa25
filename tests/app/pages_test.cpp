#include "todo/pages.hpp"

#include <gtest/gtest.h>

namespace todo {
namespace {

TEST(Pages, EscapesEveryHtmlSpecialCharacter) {
  EXPECT_EQ(html_escape(R"(<script>alert("x&y")</script>')"),
            "&lt;script&gt;alert(&quot;x&amp;y&quot;)&lt;/script&gt;&#39;");
  EXPECT_EQ(html_escape("plain \xC3\xA9"), "plain \xC3\xA9");
}

TEST(Pages, EscapeTurnsBytesThatAreNotUtf8IntoReplacementCharacters) {
  EXPECT_EQ(html_escape("bad \xC3\x28 <"), "bad \xEF\xBF\xBD( &lt;");
  EXPECT_EQ(html_escape("\xFF\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(html_escape("cut \xE6\x97"), "cut \xEF\xBF\xBD\xEF\xBF\xBD");
  EXPECT_EQ(html_escape("\xF0\x9F\x98\x80 \xE6\x97\xA5"), "\xF0\x9F\x98\x80 \xE6\x97\xA5");
  // A refused draft comes back in the field as valid UTF-8.
  PageContext context{"tok", "", "description must be valid UTF-8 text", "bad \xFF"};
  EXPECT_NE(list_page(context, std::nullopt).find("value=\"bad \xEF\xBF\xBD\""), std::string::npos);
}

TEST(Pages, ListShowsItemsEscapedWithCsrfTokensInEveryForm) {
  PageContext context{"tok123", "", "", ""};
  std::vector<Todo> items{{1, "<b>bold</b>", "2026-11-29T01:02:03Z", false},
                          {2, "done one", "2026-11-29T01:02:04Z", true}};
  const auto page = list_page(context, items);
  EXPECT_EQ(page.find("<b>bold</b>"), std::string::npos);
  EXPECT_NE(page.find("&lt;b&gt;bold&lt;/b&gt;"), std::string::npos);
  EXPECT_NE(page.find("2026-11-29 01:02 UTC"), std::string::npos);
  EXPECT_NE(page.find("1 open, 1 done"), std::string::npos);
  std::size_t forms = 0;
  std::size_t tokens = 0;
  for (auto at = page.find("<form"); at != std::string::npos; at = page.find("<form", at + 1)) {
    ++forms;
  }
  for (auto at = page.find("value=\"tok123\""); at != std::string::npos;
       at = page.find("value=\"tok123\"", at + 1)) {
    ++tokens;
  }
  EXPECT_EQ(forms, 3u);  // add + one toggle per item
  EXPECT_EQ(tokens, forms);
}

TEST(Pages, EmptyStateAndBanner) {
  PageContext context{"t", "cannot reach the database <db>", "", ""};
  const auto empty = list_page(context, std::vector<Todo>{});
  EXPECT_NE(empty.find("Nothing to do yet"), std::string::npos);
  EXPECT_NE(empty.find("role=\"alert\">cannot reach the database &lt;db&gt;"), std::string::npos);
  const auto failed = list_page(context, std::nullopt);
  EXPECT_EQ(failed.find("Nothing to do yet"), std::string::npos);
  EXPECT_NE(failed.find("cannot be shown"), std::string::npos);
}

TEST(Pages, EditKeepsTheDraftAfterAValidationError) {
  PageContext context{"t", "", "description must not be empty", "  "};
  Todo item{7, "original", "2026-11-29T01:02:03Z", true};
  const auto page = edit_page(context, item);
  EXPECT_NE(page.find("action=\"/todos/7\""), std::string::npos);
  EXPECT_NE(page.find("description must not be empty"), std::string::npos);
  EXPECT_NE(page.find(" checked"), std::string::npos);
}

}  // namespace
}  // namespace todo
