{#-
    The cell key method (ABS TableBuilder, ONS 2021 census, Eurostat cellKey):
    the perturbation every anonymised mart applies to what it publishes
    (docs/decisions.md, 42).

    - Each person has fixed record keys: 32-bit slices of sha256 over a domain
      label and their person_key (already an HMAC output from the privacy
      stage; BI users never see it). Stream 0 keys counts of people; streams
      1.. key the sums (orders, revenue, messages), so two numbers of one cell
      get independent draws.
    - A cell's key is the sum of its people's record keys modulo 2^32 (so a
      total's key is the sum of its cells' keys, as in the ABS method).
    - The noise is a fixed function of the cell key: the same people give the
      same noise in every release and rerun (averaging gains nothing); one
      person more or less gives a new draw (a release difference is noisy).
    No plugin function: the analytics stage runs without the key.
-#}

{#- The fixed 32-bit record key (stream 0..7) of a person, from their person_key. -#}
{% macro record_key(person_key, stream=0) -%}
    {{ return(adapter.dispatch('record_key', 'cdp')(person_key, stream)) }}
{%- endmacro %}

{% macro default__record_key(person_key, stream) -%}
    {{ exceptions.raise_compiler_error("cdp: macro record_key has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__record_key (a 32-bit slice of sha256 of "
        ~ "'cdp-cell-key:v1:' || person_key; the DuckDB version is duckdb__record_key in "
        ~ "macros/disclosure/cell_key.sql)") }}
{%- endmacro %}

{% macro duckdb__record_key(person_key, stream) -%}
    {%- if stream is not number or stream < 0 or stream > 7 -%}
        {{ exceptions.raise_compiler_error("record_key: stream must be 0..7; got " ~ stream) }}
    {%- endif -%}
    cast(('0x' || substr(sha256('cdp-cell-key:v1:' || {{ person_key }}), {{ 1 + 8 * stream }}, 8)) as bigint)
{%- endmacro %}

{#- Spark: sha2 gives the same lowercase hex; conv reads the 8 hex digits (decision 83). -#}
{% macro spark__record_key(person_key, stream) -%}
    {%- if stream is not number or stream < 0 or stream > 7 -%}
        {{ exceptions.raise_compiler_error("record_key: stream must be 0..7; got " ~ stream) }}
    {%- endif -%}
    cast(conv(substr(sha2('cdp-cell-key:v1:' || {{ person_key }}, 256), {{ 1 + 8 * stream }}, 8), 16, 10) as bigint)
{%- endmacro %}

{#-
    The key of a cell: an aggregate over one row per person of the cell
    (`where`: only the people of a subset, e.g. the recipients who opened).
-#}
{% macro cell_key(person_key, stream=0, where=none) -%}
    {{ return(adapter.dispatch('cell_key', 'cdp')(person_key, stream, where)) }}
{%- endmacro %}

{% macro default__cell_key(person_key, stream, where) -%}
    {%- if where is none -%}
        (sum({{ record_key(person_key, stream) }}) % 4294967296)
    {%- else -%}
        (coalesce(sum(case when {{ where }} then {{ record_key(person_key, stream) }} end), 0) % 4294967296)
    {%- endif -%}
{%- endmacro %}

{#- The key of a total: the sum of its cells' keys, modulo 2^32. -#}
{% macro total_cell_key(key_column) -%}
    {{ return(adapter.dispatch('total_cell_key', 'cdp')(key_column)) }}
{%- endmacro %}

{% macro default__total_cell_key(key_column) -%}
    (sum({{ key_column }}) % 4294967296)
{%- endmacro %}

{#-
    The perturbation parameters of a release (recorded in the disclosure ledger
    and read by the publish audit). The count table: noise -2, -1, 0, +1, +2
    with probabilities 0.15, 0.20, 0.30, 0.20, 0.15 (mean 0, variance 1.6), so
    two different draws are equal with probability 0.215. Sums move by up to
    `sum_magnitude` times the cell's mean contribution, with a continuous draw.
-#}
{% macro cell_key_parameters() -%}
    {{ return(adapter.dispatch('cell_key_parameters', 'cdp')()) }}
{%- endmacro %}

{% macro default__cell_key_parameters() -%}
    {{ return({'max_count_noise': 2, 'count_table': [(-2, 0.15), (-1, 0.20), (0, 0.30), (1, 0.20), (2, 0.15)],
               'sum_magnitude': 1.0}) }}
{%- endmacro %}

{#-
    Weaknesses of the previous design, restored only for the attack tests that
    show them exploitable (var disclosure_weaken, a list; default empty). The
    ledger records them and `cdp publish` refuses a release built with any.
      no_perturbation             exact counts and sums (the cell key method off)
      fresh_noise                 a new random draw every build (as the old DuckDB random() noise)
      totals_without_l_diversity  totals published whatever their class's sensitive values
      suppressed_rows_shown       bi_cohort_retention shows its suppressed cells as empty rows
      totals_without_cohort_protection
                                  bi_sales_by_region_month publishes a month's total even where
                                  it pins the cohort cells left out of that month (decision 52)
-#}
{% macro disclosure_weakened() -%}
    {{ return(adapter.dispatch('disclosure_weakened', 'cdp')()) }}
{%- endmacro %}

{% macro default__disclosure_weakened() -%}
    {%- set allowed = ['no_perturbation', 'fresh_noise', 'totals_without_l_diversity', 'suppressed_rows_shown',
                      'totals_without_cohort_protection'] -%}
    {%- set value = var('disclosure_weaken', []) -%}
    {%- if value is string or value is mapping or value is not iterable -%}
        {{ exceptions.raise_compiler_error("var disclosure_weaken must be a list of " ~ allowed | join(', ')) }}
    {%- endif -%}
    {%- for item in value -%}
        {%- if item not in allowed -%}
            {{ exceptions.raise_compiler_error("var disclosure_weaken: unknown weakening "
                ~ ((item | string)[:40] | tojson) ~ "; allowed: " ~ allowed | join(', ')) }}
        {%- endif -%}
    {%- endfor -%}
    {{ return(value | sort) }}
{%- endmacro %}

{#- Whether the cell key perturbation is on (always, unless weakened for a test). -#}
{% macro cell_key_perturbation_on() -%}
    {{ return(adapter.dispatch('cell_key_perturbation_on', 'cdp')()) }}
{%- endmacro %}

{% macro default__cell_key_perturbation_on() -%}
    {{ return('no_perturbation' not in disclosure_weakened()) }}
{%- endmacro %}

{#- The key actually used: the cell key, or (weakened: fresh_noise) a new random one every build. -#}
{% macro effective_cell_key(key_column) -%}
    {{ return(adapter.dispatch('effective_cell_key', 'cdp')(key_column)) }}
{%- endmacro %}

{% macro default__effective_cell_key(key_column) -%}
    {%- if 'fresh_noise' in disclosure_weakened() -%}
        {{ exceptions.raise_compiler_error("cdp: the fresh_noise weakening has no portable random draw for "
            ~ adapter.type() ~ " (it is a DuckDB-only test device)") }}
    {%- else -%}
        {{ key_column }}
    {%- endif -%}
{%- endmacro %}

{#- DuckDB: random() is uniform on [0, 1); only the fresh_noise weakening uses it. -#}
{% macro duckdb__effective_cell_key(key_column) -%}
    {%- if 'fresh_noise' in disclosure_weakened() -%}
        ((coalesce({{ key_column }}, 0) + cast(floor(random() * 4294967296) as bigint)) % 4294967296)
    {%- else -%}
        {{ key_column }}
    {%- endif -%}
{%- endmacro %}

{#- The uniform draw in [0, 1) of a cell key. -#}
{% macro cell_key_uniform(key_column) -%}
    {{ return(adapter.dispatch('cell_key_uniform', 'cdp')(key_column)) }}
{%- endmacro %}

{% macro default__cell_key_uniform(key_column) -%}
    (cast({{ effective_cell_key(key_column) }} as double) / 4294967296.0)
{%- endmacro %}

{#- The count noise of a cell key, from the perturbation table (an integer in -2..2). -#}
{% macro cell_key_count_noise(key_column) -%}
    {{ return(adapter.dispatch('cell_key_count_noise', 'cdp')(key_column)) }}
{%- endmacro %}

{% macro default__cell_key_count_noise(key_column) -%}
    {%- set table = cell_key_parameters()['count_table'] -%}
    {%- set ns = namespace(cumulative=0.0) -%}
    case
        {%- for noise, probability in table %}
        {%- set ns.cumulative = ns.cumulative + probability %}
        {%- if not loop.last %}
        when {{ cell_key_uniform(key_column) }} < {{ '%.6f' | format(ns.cumulative) }} then {{ noise }}
        {%- else %}
        else {{ noise }}
        {%- endif %}
        {%- endfor %}
    end
{%- endmacro %}

{#-
    A published count of people: the true count plus the cell key noise, never
    below `floor` (k for a cell that passed k-anonymity on its true count).
-#}
{% macro perturb_count(count_column, key_column, floor=0) -%}
    {{ return(adapter.dispatch('perturb_count', 'cdp')(count_column, key_column, floor)) }}
{%- endmacro %}

{% macro default__perturb_count(count_column, key_column, floor) -%}
    {%- if cell_key_perturbation_on() -%}
        greatest({{ floor }}, {{ count_column }} + {{ cell_key_count_noise(key_column) }})
    {%- else -%}
        {{ count_column }}
    {%- endif -%}
{%- endmacro %}

{#-
    A published sum: the true sum moved by a continuous draw in [-1, 1) times
    sum_magnitude times the cell's mean contribution (sum / people), never
    below 0. Continuous, so a difference of two releases is never exactly one
    person's contribution.
-#}
{% macro perturb_sum(sum_column, count_column, key_column) -%}
    {{ return(adapter.dispatch('perturb_sum', 'cdp')(sum_column, count_column, key_column)) }}
{%- endmacro %}

{% macro default__perturb_sum(sum_column, count_column, key_column) -%}
    {%- if cell_key_perturbation_on() -%}
        greatest(0, {{ sum_column }} + (2 * {{ cell_key_uniform(key_column) }} - 1)
            * {{ cell_key_parameters()['sum_magnitude'] }} * {{ sum_column }} / greatest({{ count_column }}, 1))
    {%- else -%}
        {{ sum_column }}
    {%- endif -%}
{%- endmacro %}

{#-
    The protection level the publish audit demands of every suppressed count:
    the values consistent with the whole release must span at least this many
    people (var suppression_protection, default ceil(k / 4): 3 for k = 10, so
    at least four values remain possible; decision 43).
-#}
{% macro suppression_protection_level() -%}
    {{ return(adapter.dispatch('suppression_protection_level', 'cdp')()) }}
{%- endmacro %}

{% macro default__suppression_protection_level() -%}
    {%- set k = k_anonymity_k() -%}
    {%- set value = var('suppression_protection', (k + 3) // 4) -%}
    {%- if value is not number or value != (value | int) or (value | int) < 1 -%}
        {{ exceptions.raise_compiler_error("var suppression_protection must be a positive integer (default ceil(k/4)); got "
            ~ ((value | string)[:20] | tojson)) }}
    {%- endif -%}
    {{ return(value | int) }}
{%- endmacro %}
