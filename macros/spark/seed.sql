{#-
    Seeds on Spark: dbt-spark's own spark__create_csv_table and spark__load_csv_rows
    (overrides of dbt-spark's macros of the same names: dbt calls them by name), with two
    fixes. Only this adapter's versions: DuckDB's seeds are unchanged.
    - The seeds' column types, written for DuckDB (`varchar`), are spelled as Spark's
      (`string`): Spark refuses a varchar without a length.
    - The values are written as escaped literals, not bindings: dbt-spark's session method
      binds a value as '<value>' without escaping it (a quote in a seed, "International
      Women's Day", breaks the statement) and an empty cell as the text 'None'.
-#}
{% macro spark__create_csv_table(model, agate_table) %}
  {%- set spark_types = {'varchar': 'string', 'text': 'string'} -%}
  {%- set column_override = {} -%}
  {%- for name, type in model['config'].get('column_types', {}).items() -%}
    {%- do column_override.update({name: spark_types.get(type | lower, type)}) -%}
  {%- endfor -%}
  {%- set quote_seed_column = model['config'].get('quote_columns', None) -%}

  {% set sql %}
    create table {{ this.render() }} (
        {%- for col_name in agate_table.column_names -%}
            {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
            {%- set type = column_override.get(col_name, inferred_type) -%}
            {%- set column_name = (col_name | string) -%}
            {{ adapter.quote_seed_column(column_name, quote_seed_column) }} {{ type }} {%- if not loop.last -%}, {%- endif -%}
        {%- endfor -%}
    )
    {{ file_format_clause() }}
    {{ partition_cols(label="partitioned by") }}
    {{ clustered_cols(label="clustered by") }}
    {{ location_clause() }}
    {{ comment_clause() }}
  {% endset %}

  {% call statement('_') -%}
    {{ sql }}
  {%- endcall %}

  {{ return(sql) }}
{% endmacro %}

{% macro spark__load_csv_rows(model, agate_table) %}
  {%- set spark_types = {'varchar': 'string', 'text': 'string'} -%}
  {%- set column_override = {} -%}
  {%- for name, type in model['config'].get('column_types', {}).items() -%}
    {%- do column_override.update({name: spark_types.get(type | lower, type)}) -%}
  {%- endfor -%}
  {% set batch_size = get_batch_size() %}
  {% set statements = [] %}
  {% for chunk in agate_table.rows | batch(batch_size) %}
      {% set sql %}
          insert into {{ this.render() }} values
          {% for row in chunk -%}
              ({%- for col_name in agate_table.column_names -%}
                  {%- set inferred_type = adapter.convert_type(agate_table, loop.index0) -%}
                  {%- set type = column_override.get(col_name, inferred_type) -%}
                  {%- set value = row[loop.index0] -%}
                  {%- if value is none -%}
                    cast(null as {{ type }})
                  {%- else -%}
                    cast('{{ (value | string) | replace('\\', '\\\\') | replace("'", "\\'") }}' as {{ type }})
                  {%- endif -%}
                  {%- if not loop.last %},{%- endif %}
              {%- endfor -%})
              {%- if not loop.last %},{%- endif %}
          {%- endfor %}
      {% endset %}
      {% do adapter.add_query(sql, abridge_sql_log=True) %}
      {% if loop.index0 == 0 %}
          {% do statements.append(sql) %}
      {% endif %}
  {% endfor %}
  {{ return(statements[0]) }}
{% endmacro %}
