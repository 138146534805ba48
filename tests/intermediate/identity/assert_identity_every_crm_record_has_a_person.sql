{#- A CRM customer record is always someone: its customer id is never refused, so it always resolves. -#}
with records as (

    select * from {{ ref('int_identity_records_resolved') }}

),

final as (

    select *
    from records
    where source_model = 'stg_crm__customers' and person_key is null

)

select * from final
