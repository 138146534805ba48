"""Synthetic landing-zone generator: the raw zone of ``shared/contracts/raw_landing.md``.

Writes exactly the contract (``cdp.contract``) into the raw DuckDB database and
the ground truth into a *separate* DuckDB file. Run it with
``python scripts/generate_landing.py --help``; from Python::

    from cdp.generator import Options, generate
    summary = generate(Options(customers=500, seed=7, reference_date=date(2026, 11, 1)))

Model
-----
A *person* is the ground truth. Each person has one primary CRM record and
possibly duplicate records (same e-mail or phone, a Latin spelling of the
name); some persons share a household (address and a family mailbox). A
person browses from one or more devices (anonymous ids / cookies),
anonymously at first, logged in later; orders (sometimes as a guest),
receives messages on e-mail, SMS, messenger or push, grants and withdraws
consent per purpose through several channels and identifiers, and files
data-subject requests. A small share of web traffic comes from crawlers
(no person).

Batches: batch 1 holds about three years of history up to the reference
date (00:00 UTC) and is loaded at 02:00 that day. Batch N > 1 covers the
following day (window ``[ref + N-2 days, ref + N-1 days)``) and is loaded two
hours after its window; it appends new persons, new versions of CRM records
and orders, new events, consents (including late ones) and requests, and
re-delivers some rows of batch N-1. Earlier rows are never changed.

Dirt: about ``dirty_rate`` of the rows of every table get one kind of dirt
each (see ``cdp.generator.dirt``); with ``dirty_rate = 0`` there is none.
Family mailboxes are not dirt (they are listed in ``shared_identifiers``).

Ground truth (tables of the truth file; every table has ``_batch_id``, the
batch that added the row, except ``batches``; rows are only ever appended)
-------------------------------------------------------------------------------
``batches(batch_id, batch_no, seed, new_persons, dirty_rate, reference_date,
window_start, window_end, loaded_at, next_person_no, next_customer_no,
next_order_no, next_message_no, next_request_no, generator_version)``
    One row per finished batch (written last: the commit marker).
``persons(person_id, household_id, locale, gender, first_name, last_name,
middle_name, birth_date, created_at)``
    One row per synthetic person, clean values; ``locale`` is ``ru_RU``,
    ``en_GB`` or ``en_US``; ``created_at`` is the sign-up time.
``profiles(person_id, customer_id, alt_customer_id, email, phone, push_token,
loyalty_card_number, city, postal_code, address, country_code)``
    The person's clean current contact profile, one row per person and batch
    in which it was created or changed; the current one has the greatest
    ``_batch_id``. ``customer_id`` is the primary CRM record, ``phone`` is E.164.
``identifiers(person_id, id_type, value)``
    Every clean identifier a person has or had: ``id_type`` in
    ``customer_id`` (every CRM record, duplicates included), ``email``,
    ``phone`` (E.164), ``anonymous_id``, ``loyalty_card``, ``push_token``.
    A family mailbox appears once per member.
``devices(person_id, anonymous_id, device_type, user_agent, first_seen_at)``
    ``device_type`` in ``desktop``, ``mobile``, ``tablet``, ``app``.
``records(schema_name, table_name, record_key, person_id)``
    Every raw row's natural key -> its person (one row per key; versions and
    re-deliveries of a key share it). Keys: ``crm.customers`` customer_id,
    ``web.events`` event_id (anonymous events belong to the cookie's owner;
    crawler events have a null person_id), ``shop.orders`` order_id,
    ``shop.order_items`` ``order_id || '#' || line_number``,
    ``messaging.message_events`` message_event_id,
    ``privacy.consent_events`` consent_event_id,
    ``privacy.subject_requests`` request_id.
``dirt(schema_name, table_name, record_key, column_name, kind)``
    Which rows were made dirty and how (``column_name`` ``*`` for
    duplicates). Kinds: ``duplicate``, ``duplicate_later_batch``,
    ``late_arrival``, ``future_event_at``, ``email_padded``,
    ``email_mixed_case``, ``email_invalid``, ``junk_email``, ``phone_format``,
    ``phone_junk``, ``junk_phone``, ``name_extra_spaces``,
    ``name_mixed_case``, ``name_yo_spelling``, ``birth_date_future``,
    ``birth_date_implausible``, ``unknown_gender``, ``country_lower_case``,
    ``country_null``, ``unknown_event_type``, ``broken_json``, ``pii_in_url``,
    ``pii_in_search``, ``negative_amount``, ``null_amount``,
    ``unknown_status``, ``unknown_currency``, ``unknown_channel``,
    ``bad_quantity``, ``unknown_purpose``, ``missing_evidence``. A CRM
    record_key can have several versions in one batch; the entry refers to
    one of them.
``shared_identifiers(id_type, value, reason)``
    Identifiers used by several persons: ``family_mailbox`` (e-mail) and
    ``junk_placeholder`` (``test@test.ru``, ``+70000000000``, ...).
``withdrawals(person_id, purpose_code, consent_event_id, subject_id_type,
subject_id, channel, captured_at)``
    Every consent withdrawal with the clean purpose code and subject id
    (the raw row may carry a dirty one).
``requests(person_id, request_id, request_type, jurisdiction, is_verified,
subject_id_type, received_at)``
    Every data-subject request.
"""

from cdp.generator.runner import CHUNK, GenerationError, Options, Summary, generate

__all__ = ["CHUNK", "GenerationError", "Options", "Summary", "generate"]
