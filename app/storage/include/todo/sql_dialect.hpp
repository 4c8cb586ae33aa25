#pragma once
// The SQL each dialect runs. Every value goes through a `?` parameter; the text here is fixed.

#include "todo/odbc_store.hpp"

#include <string>
#include <vector>

namespace todo::odbc {

/// One schema step. Statements are idempotent so that two processes starting together (or a
/// crash half-way) cannot leave the schema unusable; the version row is written last.
struct Migration {
  int version = 0;
  std::vector<std::string> statements;
};

/// How text parameters and columns cross the ODBC boundary for a dialect's driver.
enum class TextEncoding {
  utf16,  ///< SQL_C_WCHAR (Unicode drivers: ODBC Driver 18, psqlODBC "Unicode")
  utf8,   ///< SQL_C_CHAR holding UTF-8 (the SQLite3 driver has no W entry points)
};

struct DialectSql {
  Dialect dialect = Dialect::sqlite;
  TextEncoding text = TextEncoding::utf8;
  std::string create_schema_version;  ///< idempotent
  std::string select_schema_version;  ///< one row, one integer column: 0 when empty
  std::string insert_schema_version;  ///< ? = version
  std::vector<Migration> migrations;  ///< ascending versions
  /// Columns of every row-returning query: id, description, created_date (ISO 8601 with Z), done.
  std::string list;  ///< oldest first
  std::string get;   ///< ? = id
  /// ? = description, done; returns one row holding the new id unless `last_insert_id` is set.
  std::string insert;
  /// Run after `insert` on the same connection when the driver cannot return rows from an
  /// INSERT (the SQLite3 driver drops RETURNING rows).
  std::string last_insert_id;
  std::string update_description_and_done;  ///< ? = description, done, id
  std::string update_description;           ///< ? = description, id
  std::string update_done;                  ///< ? = done, id
  std::string remove;                       ///< ? = id
  std::string ping;                         ///< one cheap round trip
};

const DialectSql& dialect_sql(Dialect dialect);

}  // namespace todo::odbc
