{{ enforced_contract() }}

{#-
    Who may receive marketing push notifications as of `as_of`: the push_marketing rows of
    rpt_marketing_audiences (consent in force and not stopped by an
    objection, unsubscribe, complaint, restriction or erasure since it was
    given, active within the inactivity limit, and a contact identifier of
    their own of the type the purpose's channels send to). The contact is a
    pseudonym: the delivery processor resolves it through the vault.
-#}
{{ purpose_audience('push_marketing') }}
