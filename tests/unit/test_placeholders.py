"""PostgreSQL's placeholder rewrite: every statement is written once with `?`, and psycopg takes `%s`."""

from worker.store.postgres import pyformat


def test_each_placeholder_becomes_psycopgs() -> None:
    """A `?` outside quotes becomes `%s`; psycopg's own `%b` array parameters are left as they are."""
    assert pyformat("SELECT a FROM t WHERE b = ? AND c = ANY(%b::text[]) LIMIT ?") == (
        "SELECT a FROM t WHERE b = %s AND c = ANY(%b::text[]) LIMIT %s"
    )


def test_a_question_mark_inside_quotes_is_left_alone() -> None:
    """A `?` in a string literal (quotes doubled inside it) or a quoted identifier is data, not a placeholder."""
    assert pyformat("""SELECT 'why?', 'it''s ?', "odd?name" FROM t WHERE a = ?""") == (
        """SELECT 'why?', 'it''s ?', "odd?name" FROM t WHERE a = %s"""
    )
    assert (
        pyformat("SELECT 1 FROM t WHERE a LIKE ? ESCAPE '\\'")
        == "SELECT 1 FROM t WHERE a LIKE %s ESCAPE '\\'"
    )


def test_each_distinct_statement_is_rewritten_once() -> None:
    """The rewrite is remembered: the same statement again is a look-up, answered with the same string."""
    statement = "".join(["UPDATE outbox SET set_aside = ? ", "WHERE seq = ?"])  # a string built at run time
    first = pyformat(statement)
    hits = pyformat.cache_info().hits
    assert pyformat("".join(["UPDATE outbox SET set_aside = ? ", "WHERE seq = ?"])) is first
    assert pyformat.cache_info().hits == hits + 1
