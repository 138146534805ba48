{#-
    Who may receive marketing email as of `as_of`: one row per person whose
    email_marketing consent is in force and not stopped by an objection,
    unsubscribe, complaint, restriction or erasure since it was given
    (int_consent__person_purposes), who was active within the inactivity
    limit, and who has a email contact identifier of their own. The contact is
    a pseudonym: the delivery processor resolves it through the vault.
-#}
{{ channel_audience('email_marketing', 'email') }}
