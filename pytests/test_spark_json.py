"""cdp.spark_json, the Spark build's JSON functions, as plain Python: DuckDB's answers, value for value.

The Spark build registers ``json_valid_batch`` as an Arrow UDF and ``json_extract_string`` as a
Python UDF (a Spark UDF runs on every row, whatever CASE guards it), so each must answer what the
DuckDB models compute (macros/cross_db/json.sql), never raise, and give NULL for NULL. The
reference is the DuckDB expression run over a table of the values in one statement;
pytests/test_spark_project.py compares whole models built on both engines.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from cdp import spark_json

PATHS = ("$.field", "$.value", "$.purpose_code")

#: Where DuckDB's reader and Spark's builtins disagree (docs/portability.md), and plain cases.
SHAPES = (
    None,
    "",
    "{}",
    "null",
    '{"field": "email", "value": "a@b.ru"}',
    '{"field": "email",}',
    "[1, 2,]",
    '{"value": NaN}',
    '{"value": Infinity}',
    '{"field": "x", "field": "y"}',
    '{"field": "x"} trailing',
    '{"field": "x"}{"field": "y"}',
    '{"field": "x"}//c',
    "{'field': 'x'}",
    '{"value": {"x": [1, 2.0, "y"]}}',
    '{"value": 1.50}',
    '{"value": 79001234567}',
    '{"value": null}',
    '{"value": "\\u0041\\n"}',
    "undefined",
    "[" * 3000 + "]" * 3000,
)

json_text = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["field", "value", "purpose_code", "x"]), inner, max_size=4
        )
    ),
    max_leaves=12,
).map(json.dumps)


def duckdb_answers(values: list[str | None]) -> list[tuple[bool | None, ...]]:
    """What the DuckDB models compute, over a table of the values (one statement)."""
    con = duckdb.connect()
    table = pa.table({"i": list(range(len(values))), "v": pa.array(values, pa.string())})
    con.register("probe", table)
    extracts = ", ".join(
        f"case when coalesce(try(json_valid(v)), false) then json_extract_string(v, '{p}') end"
        for p in PATHS
    )
    rows = con.execute(f"select try(json_valid(v)), {extracts} from probe order by i").fetchall()
    con.close()
    return [tuple(row) for row in rows]


def python_answers(values: list[str | None]) -> list[tuple[bool | str | None, ...]]:
    # the validity is an Arrow UDF: the whole batch in one statement, answers in the batch's
    # order, also on a slice (an Arrow array Spark hands over may have an offset)
    valid = spark_json.json_valid_batch(pa.array(values, pa.string())).to_pylist()
    sliced = pa.array([None, *values, "{}"], pa.string()).slice(1, len(values))
    assert spark_json.json_valid_batch(sliced).to_pylist() == valid
    return [
        (ok, *(spark_json.json_extract_string(v, p) for p in PATHS))
        for ok, v in zip(valid, values, strict=True)
    ]


def json_valid(value: str) -> bool | None:
    """The Arrow UDF on one value."""
    answer: bool | None = spark_json.json_valid_batch(pa.array([value], pa.string()))[0].as_py()
    return answer


def test_the_shapes_where_engines_disagree_get_duckdbs_answers() -> None:
    values = list(SHAPES)
    assert python_answers(values) == duckdb_answers(values)
    # the shapes do what they are here for: DuckDB accepts what Spark's reader refuses
    assert json_valid('{"field": "email",}') is True
    assert spark_json.json_extract_string('{"value": NaN}', "$.value") == "NaN"
    assert json_valid('{"field": "x"} trailing') is False
    assert spark_json.json_extract_string('{"field": "x"} trailing', "$.field") is None


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.none(), st.text(max_size=40), json_text), max_size=20))
def test_hostile_text_gets_duckdbs_answers(values: list[str | None]) -> None:
    assert python_answers(values) == duckdb_answers(values)


def test_the_functions_cannot_read_files() -> None:
    """The worker's DuckDB has no file access: the statement is fixed, but the connection is
    locked anyway (a Spark Python worker inherits the JVM's environment)."""
    con = spark_json._connection()
    try:
        con.execute("select * from read_text('/etc/hostname')").fetchall()
    except duckdb.Error as exc:
        assert "disabled" in str(exc).lower() or "permission" in str(exc).lower(), exc
    else:
        raise AssertionError("the worker's DuckDB read a file")
