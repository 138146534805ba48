{#-
    Who may receive marketing push notifications as of `as_of`: one row per person whose
    push_marketing consent is in force and not stopped by an objection,
    unsubscribe, complaint, restriction or erasure since it was given
    (int_consent__person_purposes), who was active within the inactivity
    limit, and who has a push contact identifier of their own. The contact is
    a pseudonym: the delivery processor resolves it through the vault.
-#}
{{ channel_audience('push_marketing', 'push') }}
