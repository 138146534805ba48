{#-
    The consent state machine, written once and used at two grains: per
    subject (one identifier) and per person (all of a person's identifiers).

    The order of events (the conflict rule; docs/decisions.md, "Consent
    ledger: the order of events"):
      1. by effective_at: when the subject acted (captured_at; a capture time
         later than the load time is a clock error and is replaced by the
         load time), never by arrival order;
      2. at the same moment, a grant sorts before a withdrawal, so the
         withdrawal is the later event and wins (the restrictive outcome);
      3. then by load time and event id, which only decides whose evidence is
         reported for two equal events.
-#}
{% macro consent_event_order() -%}
    {{ return(adapter.dispatch('consent_event_order', 'cdp')()) }}
{%- endmacro %}

{% macro default__consent_event_order() -%}
    effective_at, case action when 'grant' then 0 else 1 end, _loaded_at, consent_event_id
{%- endmacro %}

{#-
    Sequence the events of `relation` per `partition_by` (a list of columns) in
    consent_event_order() and classify what each did to the state:
      opens_interval          a grant while not granted (first grant or re-grant)
      reaffirms_grant         a grant while already granted (the interval goes on)
      closes_interval         a withdrawal while granted
      repeated_withdraw       a withdrawal while already withdrawn
      withdraw_without_grant  a withdrawal with no grant before it: no interval, recorded
    `relation` needs: action, effective_at, _loaded_at, consent_event_id.
-#}
{% macro consent_event_effects(relation, partition_by) -%}
    {{ return(adapter.dispatch('consent_event_effects', 'cdp')(relation, partition_by)) }}
{%- endmacro %}

{% macro default__consent_event_effects(relation, partition_by) -%}
    select
        sequenced.*,
        case
            when sequenced.action = 'grant' and coalesce(sequenced.previous_action, 'withdraw') = 'withdraw'
                then 'opens_interval'
            when sequenced.action = 'grant' then 'reaffirms_grant'
            when sequenced.previous_action = 'grant' then 'closes_interval'
            when sequenced.has_prior_grant then 'repeated_withdraw'
            else 'withdraw_without_grant'
        end as consent_effect
    from (
        select
            events.*,
            row_number() over (
                partition by {{ partition_by | join(', ') }} order by {{ consent_event_order() }}
            ) as event_sequence,
            lag(events.action) over (
                partition by {{ partition_by | join(', ') }} order by {{ consent_event_order() }}
            ) as previous_action,
            coalesce({{ dbt.bool_or("events.action = 'grant'") }} over (
                partition by {{ partition_by | join(', ') }} order by {{ consent_event_order() }}
                rows between unbounded preceding and 1 preceding
            ), false) as has_prior_grant
        from {{ relation }} as events
    ) as sequenced
{%- endmacro %}

{#-
    Validity intervals from classified events (consent_event_effects): one row
    per partition and interval, an interval running from the grant that opened
    it (valid_from, inclusive) to the withdrawal that closed it (valid_to,
    exclusive; null while in force). A grant and a withdrawal at the same
    moment make an empty interval (valid_from = valid_to), kept as a record and
    never valid. `relation` needs the columns of consent_event_effects plus
    consent_event_id, event_origin, channel, policy_version, evidence_ref.
-#}
{% macro consent_intervals(relation, partition_by) -%}
    {{ return(adapter.dispatch('consent_intervals', 'cdp')(relation, partition_by)) }}
{%- endmacro %}

{% macro default__consent_intervals(relation, partition_by) -%}
    {{ exceptions.raise_compiler_error("cdp: macro consent_intervals has no portable implementation for adapter "
        ~ adapter.type() ~ "; write " ~ adapter.type() ~ "__consent_intervals (the DuckDB version is "
        ~ "duckdb__consent_intervals in macros/consent/ledger.sql)") }}
{%- endmacro %}

{#-
    The FROM, WHERE and GROUP BY that both engines' consent_intervals share:
    `relation`'s events numbered by interval (a running count of opening events
    per partition, in event_sequence order), those before the first opening
    left out, grouped by partition and interval as `numbered`.
-#}
{% macro consent_interval_numbering(relation, partition_by) -%}
    {{ return(adapter.dispatch('consent_interval_numbering', 'cdp')(relation, partition_by)) }}
{%- endmacro %}

{% macro default__consent_interval_numbering(relation, partition_by) -%}
    from (
        select
            effects.*,
            sum(case when effects.consent_effect = 'opens_interval' then 1 else 0 end) over (
                partition by {{ partition_by | join(', ') }} order by effects.event_sequence
                rows between unbounded preceding and current row
            ) as interval_number
        from {{ relation }} as effects
    ) as numbered
    where numbered.interval_number > 0
    group by {% for column in partition_by %}numbered.{{ column }}, {% endfor %}numbered.interval_number
{%- endmacro %}

{#-
    DuckDB: filtered aggregates (`filter (where ...)`), any_value and arg_max.
    Another engine needs an equivalent of arg_max (max_by in Spark, Trino,
    Snowflake) and of the aggregate FILTER clause (a case inside the aggregate).
-#}
{% macro duckdb__consent_intervals(relation, partition_by) -%}
    select
        {% for column in partition_by -%}
        numbered.{{ column }},
        {% endfor -%}
        numbered.interval_number,
        any_value(numbered.effective_at) filter (where numbered.consent_effect = 'opens_interval') as valid_from,
        any_value(numbered.effective_at) filter (where numbered.consent_effect = 'closes_interval') as valid_to,
        any_value(numbered.consent_event_id) filter (where numbered.consent_effect = 'opens_interval') as grant_event_id,
        any_value(numbered.channel) filter (where numbered.consent_effect = 'opens_interval') as grant_channel,
        any_value(numbered.policy_version) filter (where numbered.consent_effect = 'opens_interval') as policy_version,
        any_value(numbered.evidence_ref) filter (where numbered.consent_effect = 'opens_interval') as evidence_ref,
        count(*) filter (where numbered.consent_effect = 'reaffirms_grant') as reaffirmation_count,
        max(numbered.effective_at) filter (where numbered.action = 'grant') as last_granted_at,
        arg_max(numbered.policy_version, numbered.event_sequence) filter (where numbered.action = 'grant') as last_policy_version,
        any_value(numbered.consent_event_id) filter (where numbered.consent_effect = 'closes_interval') as withdraw_event_id,
        any_value(numbered.event_origin) filter (where numbered.consent_effect = 'closes_interval') as withdraw_origin,
        any_value(numbered.channel) filter (where numbered.consent_effect = 'closes_interval') as withdraw_channel,
        any_value(numbered.evidence_ref) filter (where numbered.consent_effect = 'closes_interval') as withdraw_evidence_ref
    {{ cdp.consent_interval_numbering(relation, partition_by) }}
{%- endmacro %}
{#-
    Spark: no aggregate FILTER clause, no any_value that skips NULLs alike. An interval has
    exactly one opening event and at most one closing event, so DuckDB's
    `any_value(x) filter (where effect)` is the value of that one row: max(case ... end)
    here. arg_max (which skips a NULL value, as DuckDB's does) becomes value_at_max over
    the grants. The same rows and values as duckdb__consent_intervals (docs/portability.md,
    "Consent on Spark").
-#}
{% macro spark__consent_intervals(relation, partition_by) -%}
    select
        {% for column in partition_by -%}
        numbered.{{ column }},
        {% endfor -%}
        numbered.interval_number,
        max(case when numbered.consent_effect = 'opens_interval' then numbered.effective_at end) as valid_from,
        max(case when numbered.consent_effect = 'closes_interval' then numbered.effective_at end) as valid_to,
        max(case when numbered.consent_effect = 'opens_interval' then numbered.consent_event_id end) as grant_event_id,
        max(case when numbered.consent_effect = 'opens_interval' then numbered.channel end) as grant_channel,
        max(case when numbered.consent_effect = 'opens_interval' then numbered.policy_version end) as policy_version,
        max(case when numbered.consent_effect = 'opens_interval' then numbered.evidence_ref end) as evidence_ref,
        count(case when numbered.consent_effect = 'reaffirms_grant' then 1 end) as reaffirmation_count,
        max(case when numbered.action = 'grant' then numbered.effective_at end) as last_granted_at,
        {{ cdp.value_at_max("case when numbered.action = 'grant' then numbered.policy_version end", ['numbered.event_sequence']) }} as last_policy_version,
        max(case when numbered.consent_effect = 'closes_interval' then numbered.consent_event_id end) as withdraw_event_id,
        max(case when numbered.consent_effect = 'closes_interval' then numbered.event_origin end) as withdraw_origin,
        max(case when numbered.consent_effect = 'closes_interval' then numbered.channel end) as withdraw_channel,
        max(case when numbered.consent_effect = 'closes_interval' then numbered.evidence_ref end) as withdraw_evidence_ref
    {{ cdp.consent_interval_numbering(relation, partition_by) }}
{%- endmacro %}

{#-
    Whether the interval `ledger` (a table alias with valid_from / valid_to)
    holds at the SQL time expression `at`: valid_from <= at < valid_to.
-#}
{% macro consent_valid_at(ledger, at) -%}
    {{ return(adapter.dispatch('consent_valid_at', 'cdp')(ledger, at)) }}
{%- endmacro %}

{% macro default__consent_valid_at(ledger, at) -%}
    ({{ ledger }}.valid_from <= {{ at }} and ({{ ledger }}.valid_to is null or {{ ledger }}.valid_to > {{ at }}))
{%- endmacro %}

{#-
    The rows of the relation or CTE `events` (with person_key and event_at)
    whose person had `purpose_code` consent in force at the event time, by the
    person ledger `ledger` (a CTE of int_consent__person_ledger). Intervals of
    one person and purpose never overlap: at most one matches an event, so no
    row is repeated. The one block every event-level purpose model uses
    (fct_profile_events, int_bi__analytics_events).
-#}
{% macro events_in_consent(events, ledger, purpose_code) -%}
    {{ return(adapter.dispatch('events_in_consent', 'cdp')(events, ledger, purpose_code)) }}
{%- endmacro %}

{% macro default__events_in_consent(events, ledger, purpose_code) -%}
    select {{ events }}.*
    from {{ events }}
    inner join {{ ledger }}
        on
            {{ events }}.person_key = {{ ledger }}.person_key
            and {{ ledger }}.purpose_code = '{{ purpose_code }}'
            and {{ consent_valid_at(ledger, events ~ '.event_at') }}
{%- endmacro %}
