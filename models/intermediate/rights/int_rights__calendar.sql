{#-
    The Russian production calendar for 152-FZ deadlines, one row per day of
    the years the holiday seed covers: a working day is Monday to Friday and
    not a listed non-working day, or a listed working weekend day.
    working_day_number counts working days up to and including the day, so
    "N working days after day D" is the working day whose number is D's + N.
-#}
with holidays as {{ inline_cte() }} (

    select * from {{ ref('ru_public_holidays') }}

),

bounds as (

    select
        make_date(min(year(calendar_date)), 1, 1) as first_day,
        make_date(max(year(calendar_date)), 12, 31) as last_day
    from holidays

),

days as (

    select {{ day_rows('first_day', 'last_day') }} as calendar_date
    from bounds

),

classified as (

    select
        days.calendar_date,
        holidays.day_type,
        holidays.day_name,
        coalesce(
            holidays.day_type = 'working_weekend',
            {{ iso_day_of_week('days.calendar_date') }} <= 5 and holidays.day_type is null
        ) as is_working_day
    from days
    left join holidays
        on days.calendar_date = holidays.calendar_date

),

final as (

    select
        calendar_date,
        is_working_day,
        day_type,
        day_name,
        sum(case when is_working_day then 1 else 0 end) over (order by calendar_date) as working_day_number
    from classified

)

select * from final
