{#-
    Generic test: lists every request the boolean column flags as overdue (one
    row per request, so the warning counts requests). Used with severity warn
    on int_rights__request_tracking.is_overdue: an overdue request must not
    stop the build that would help close it, but every build reports it.
-#}
{% test no_overdue_requests(model, column_name) %}

    select
        request_id,
        request_type,
        jurisdiction,
        received_at,
        due_date,
        request_status
    from {{ model }}
    where {{ column_name }}

{% endtest %}
