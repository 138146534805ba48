{#-
    Consent presence: every subject in the model had consent in force for the
    purpose(s) the model serves, as of `as_of`, or the purpose rests on another
    legal basis (purposes.is_consent_required = false). For event-level models
    (an event time column is set), consent must also have been in force at
    each row's event time (requirement 4).

    Settings, from the model's meta unless given as test arguments:
      purpose             a purpose code, or a list of them (must be in the catalogue)
      purpose_column      instead of `purpose`: the column naming each row's purpose
                          (a long-format model such as rpt_marketing_audiences); each
                          row is checked for its own purpose, which must be catalogued
      subject_column      the column holding the subject
      event_time_column   optional: the event time of each row
      subject_level       `person` (default: person_key, person ledger) or
                          `identifier` (an identifier pseudonym, subject ledger)
      check_opt_outs      default true at person level: as of as_of the person
                          must also not have objected, unsubscribed, complained,
                          or asked for restriction or erasure since consenting
    Returns one row per violation: the subject, the purpose and what is wrong.

    The model's rows and the ledger are read more than once: inline_cte(), or
    DuckDB would copy all of them into memory first (decision 105). The purposes
    served are a few rows, computed once (materialized_cte()).
-#}
{% test consent_presence(model, purpose=none, subject_column=none, event_time_column=none,
                         subject_level=none, check_opt_outs=none, purpose_column=none) %}
{%- set meta = model_meta_of(model) -%}
{%- set identifier = '^[A-Za-z_][A-Za-z0-9_]*$' -%}
{%- set code = '^[a-z][a-z0-9_]*$' -%}
{%- set purposes_setting = purpose if purpose is not none else meta.get('purpose') -%}
{%- set purpose_list = [purposes_setting] if purposes_setting is string else (purposes_setting or []) -%}
{%- set checked_purposes = [] -%}
{%- for item in purpose_list -%}
    {%- do checked_purposes.append(checked_setting(item, 'purpose', code, model)) -%}
{%- endfor -%}
{%- set row_purpose = checked_setting(purpose_column or meta.get('purpose_column'), 'purpose_column', identifier, model, required=false) -%}
{%- if execute and row_purpose and checked_purposes | length > 0 -%}
    {{ exceptions.raise_compiler_error("consent_presence on " ~ model ~ ": set `purpose` or `purpose_column`, not both") }}
{%- endif -%}
{%- if execute and not row_purpose and checked_purposes | length == 0 -%}
    {{ exceptions.raise_compiler_error("consent_presence on " ~ model ~ ": set `purpose` (or `purpose_column`) in the model's meta (or as a test argument)") }}
{%- endif -%}
{%- set subject = checked_setting(subject_column or meta.get('subject_column'), 'subject_column', identifier, model) -%}
{%- set event_time = checked_setting(event_time_column or meta.get('event_time_column'), 'event_time_column', identifier, model, required=false) -%}
{%- set level = checked_setting(subject_level or meta.get('subject_level') or 'person', 'subject_level', '^(person|identifier)$', model) -%}
{%- set opt_outs = (check_opt_outs if check_opt_outs is not none else meta.get('check_opt_outs', true)) and level == 'person' -%}
{%- set person_ledger = ref('int_consent__person_ledger') -%}
{%- set subject_ledger = ref('int_consent__subject_ledger') -%}
{%- set person_purposes = ref('int_consent__person_purposes') -%}
{%- set catalogue = ref('purposes') -%}

with catalogue as (

    select * from {{ catalogue }}

),

ledger as {{ inline_cte() }} (

    {% if level == 'person' -%}
    select
        person_key as subject_key,
        purpose_code,
        valid_from,
        valid_to
    from {{ person_ledger }}
    {%- else -%}
    select
        subject_key,
        purpose_code,
        valid_from,
        valid_to
    from {{ subject_ledger }}
    {%- endif %}

),

permitted as (

    select
        person_key as subject_key,
        purpose_code
    from {{ person_purposes }}
    where is_permitted

),

model_rows as {{ inline_cte() }} (

    select
        cast({{ subject or 'null' }} as {{ text_type() }}) as subject_key,
        {{ ('cast(' ~ event_time ~ ' as timestamp)') if event_time else 'cast(null as timestamp)' }} as event_at,
        {{ ('cast(' ~ row_purpose ~ ' as ' ~ text_type() ~ ')') if row_purpose else 'cast(null as ' ~ text_type() ~ ')' }} as purpose_code
    from {{ model }}

),

served_purposes as {{ materialized_cte() }} (

    select
        served.purpose_code,
        catalogue.purpose_code is not null as is_catalogued,
        coalesce(catalogue.is_consent_required, true) as is_consent_required
    from (
        {% if row_purpose -%}
        select distinct purpose_code from model_rows
        {%- else -%}
        {% for code_value in checked_purposes -%}
        select '{{ code_value }}' as purpose_code
        {% if not loop.last %}union all
        {% endif %}
        {%- else -%}
        select cast(null as {{ text_type() }}) as purpose_code where false
        {%- endfor %}
        {%- endif %}
    ) as served
    left join catalogue
        on served.purpose_code = catalogue.purpose_code

),

-- Each row with each purpose it must be consented for: every purpose the model serves,
-- or with a purpose column, the row's own.
row_purposes as {{ inline_cte() }} (

    select
        model_rows.subject_key,
        model_rows.event_at,
        served_purposes.purpose_code,
        served_purposes.is_consent_required
    from model_rows
    {% if row_purpose -%}
    inner join served_purposes
        on model_rows.purpose_code = served_purposes.purpose_code
    {%- else -%}
    cross join served_purposes
    {%- endif %}

),

violations as (

    select
        cast(null as {{ text_type() }}) as subject_key,
        served_purposes.purpose_code,
        cast(null as timestamp) as event_at,
        'purpose is not in the purposes catalogue' as violation
    from served_purposes
    where not served_purposes.is_catalogued

    union all

    select
        row_purposes.subject_key,
        row_purposes.purpose_code,
        row_purposes.event_at,
        'no consent in force as of as_of' as violation
    from row_purposes
    where
        row_purposes.is_consent_required
        and not exists (
            select 1
            from ledger
            where
                ledger.subject_key = row_purposes.subject_key
                and ledger.purpose_code = row_purposes.purpose_code
                and {{ consent_valid_at('ledger', as_of()) }}
        )

    {% if opt_outs %}
    union all

    select
        row_purposes.subject_key,
        row_purposes.purpose_code,
        row_purposes.event_at,
        'consent stopped by an objection, unsubscribe, complaint, restriction or erasure' as violation
    from row_purposes
    where
        row_purposes.is_consent_required
        and not exists (
            select 1
            from permitted
            where
                permitted.subject_key = row_purposes.subject_key
                and permitted.purpose_code = row_purposes.purpose_code
        )
    {% endif %}

    {% if event_time %}
    union all

    select
        row_purposes.subject_key,
        row_purposes.purpose_code,
        row_purposes.event_at,
        'no consent in force at the event time' as violation
    from row_purposes
    where
        row_purposes.is_consent_required
        and not exists (
            select 1
            from ledger
            where
                ledger.subject_key = row_purposes.subject_key
                and ledger.purpose_code = row_purposes.purpose_code
                and {{ consent_valid_at('ledger', 'row_purposes.event_at') }}
        )
    {% endif %}

)

select * from violations

{% endtest %}
