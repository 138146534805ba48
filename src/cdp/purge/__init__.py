"""Retention purge: destroy expired personal data in the raw zone, and record it.

The warehouse never shows a row older than its data category allows (every
time-dependent model filters by retention as of ``as_of``), but the raw zone
keeps what loaders wrote until something destroys it. This is that something:
the only writer of the raw zone besides the loaders. It opens ``CDP_RAW_DB``
read-write, destroys (or depersonalises) every row past its retention window
as of ``--as-of``, and writes one destruction record per batch of destroyed
rows into ``audit.destruction_log`` in the same file, in the same transaction
(a destruction without its record, or a record without its destruction, cannot
happen). Records are kept 3 years (category ``destruction_records``) and then
destroyed by the purge itself, which records that too.

Which tables it reads, their data category, the time a row is dated by and the rule that
judges it expired, and what an erasure does to a row, come from the sources' metadata
(:mod:`cdp.sources`, decision 57): a new landing table is purged with no edit here. The
periods come from the catalogue ``seeds/data_categories.csv`` (the same file dbt loads, so
the warehouse and the purge cannot disagree about periods). For the landing zone of the
contract:

====================  ===========================  =================================================
raw table             data category                expires when
====================  ===========================  =================================================
web.events            site_activity                event time (earlier of client and server clock)
messaging.message_    communication_activity       event time; an unsubscribe or complaint is a
events                (opt-outs: consent_records)  withdrawal and is kept as proof like consent records
shop.orders,          purchase_history             order time (order lines go with their order)
shop.order_items
privacy.consent_      consent_records              the first withdrawal at or after the event (the end
events                                             of its consent episode) is older than the window;
                                                   judged per person, like the warehouse's person ledger
privacy.subject_      subject_requests             receipt; restriction and erasure requests stay
requests                                           while in effect (nothing lifts them)
crm.customers         customer_master_data         the customer's last activity (order, consent
                                                   grant, CRM record created or updated): an inactive
                                                   customer is depersonalised (CRM rows deleted,
                                                   contact and delivery fields of orders nulled,
                                                   messages to them deleted; opt-out proof is kept)
audit.destruction_    destruction_records          destruction time
log
audit.consent_        consent_records              a withdrawal's scope: the withdrawal's time (it
scopes                                             goes with the withdrawal); a restriction's or an
                                                   ambiguous grant's: once the request or grant is
                                                   gone from the warehouse
====================  ===========================  =================================================

Before destroying anything, the purge keeps in ``audit.consent_scopes`` (same file, same
transaction) what the warehouse judged per person and the destruction could undo: the
identifier pseudonyms each withdrawal and restriction reached, and the grants made through a
shared identifier (:mod:`.scopes`, docs/decisions.md 71). The consent ledger reads them back;
they only ever take consent away, and never join persons for anything else.

Erasure (a verified erasure request, ``intermediate.int_rights__erased_persons``
of the built warehouse): every raw row carrying an identifier that belongs to
the person alone is destroyed (CRM records, site events, messages, consent
records), and so is every site event whose free text (URLs, search query,
properties) names the person, with every row of a device that carried it and
never logged in as anyone else; their orders stay for accounting (5 years)
with contact and delivery fields nulled; their subject requests stay as proof
with the identifier replaced by ``erased-by:<erasure request id>`` and the
details nulled (``replace_fields``); ``audit.erasure_proofs`` gets a keyed
proof per identifier destroyed (decision 48). Their entries in the vault
(``--vault-db``) are deleted first, and their pseudonym redacted from the
re-identification log, in the vault's own transaction (the vault is derived
from the raw zone by every build, so a failure after it is repaired by running
the purge again). Each record carries the erasure's ``request_id``; the next
build marks the request closed (``int_rights__request_tracking``). ``cdp
erase`` runs the purge as one step of the whole erasure (rewriting the files
and rebuilding); run alone, the purge deletes rows, which DuckDB leaves in
freed blocks until the file is rewritten.

Consent episodes and inactivity are judged per *person*, so the purge reads
the identity map and activity of the built warehouse (``CDP_WAREHOUSE_DB``,
read-only): ``intermediate.int_consent__subject_persons`` and
``intermediate.int_consent__person_activity``. It computes each raw
identifier's pseudonym in Python with the master key (``CDP_MASTER_KEY`` /
``CDP_MASTER_KEY_FILE``, via :mod:`cdp.keys` and :mod:`cdp.pseudonym`) to join
them; the key never enters SQL. Run it after ``dbt build`` and rebuild after
it, so the warehouse reflects the destruction.

A destruction record names the data category, the source table and load
batch, the subject where the destruction is per person (the customer's
pseudonym for inactivity, the erasure proof for an erasure), the reason, the
method (``delete_rows``, ``null_fields`` or ``replace_fields`` with the
fields), when, how many rows, the oldest and newest record time, the
retention period and its legal reference, who ran it, and until when the
record is kept (RKN Order 179 asks for subject, categories, reason, method,
date). Usage::

    python scripts/purge.py --dry-run            # what would be destroyed; writes nothing
    python scripts/purge.py --as-of 2026-11-01   # destroy and record

The package has one module per rule or concern: :mod:`.core` (the planner's state, subject
keys, the warehouse, ``add_rule``), :mod:`.categories` (the catalogues), :mod:`.retention`
(``record_time``, ``messages``, ``latest_version``, ``parent``), :mod:`.consent`
(``consent_log``), :mod:`.scopes` (kept consent scopes), :mod:`.inactivity`, :mod:`.erasure` (with :mod:`.free_text` and
:mod:`.vault_erasure`), :mod:`.records` (destruction records, the log and proof tables,
execution), :mod:`.run` (the plan in order, :func:`purge`) and :mod:`.cli`.
"""

from __future__ import annotations

from cdp.purge.categories import (
    REQUIRED_CATEGORIES,
    Category,
    Purpose,
    load_categories,
    load_purposes,
)
from cdp.purge.cli import main, summary
from cdp.purge.core import (
    AUDIT_SCHEMA,
    ERASED_SUBJECT_PREFIX,
    ERASURE_REASON,
    LOG_TABLE,
    MIN_KEY_MATCH,
    NAMED_RULE_TABLES,
    OPT_OUT_EVENT_TYPES,
    PROOF_TABLE,
    RECIPIENT_TYPES,
    SUBJECT_ID_TYPES,
    TOOL,
    PurgeError,
)
from cdp.purge.erasure import ErasureProof, erasure_proof, erasure_status
from cdp.purge.free_text import MIN_TOKEN_LENGTH, TOKEN_TYPES, _free_text_owner
from cdp.purge.records import LOG_COLUMNS, PROOF_COLUMNS, DestructionRecord, PurgeResult
from cdp.purge.run import purge
from cdp.purge.scopes import SCOPE_COLUMNS, SCOPE_KINDS, SCOPE_REASON, SCOPE_TABLE
from cdp.purge.vault_erasure import VAULT_TABLES

__all__ = [
    "AUDIT_SCHEMA",
    "ERASED_SUBJECT_PREFIX",
    "ERASURE_REASON",
    "LOG_COLUMNS",
    "LOG_TABLE",
    "MIN_KEY_MATCH",
    "MIN_TOKEN_LENGTH",
    "NAMED_RULE_TABLES",
    "OPT_OUT_EVENT_TYPES",
    "PROOF_COLUMNS",
    "PROOF_TABLE",
    "RECIPIENT_TYPES",
    "REQUIRED_CATEGORIES",
    "SCOPE_COLUMNS",
    "SCOPE_KINDS",
    "SCOPE_REASON",
    "SCOPE_TABLE",
    "SUBJECT_ID_TYPES",
    "TOKEN_TYPES",
    "TOOL",
    "VAULT_TABLES",
    "Category",
    "DestructionRecord",
    "ErasureProof",
    "PurgeError",
    "PurgeResult",
    "Purpose",
    "_free_text_owner",
    "erasure_proof",
    "erasure_status",
    "load_categories",
    "load_purposes",
    "main",
    "purge",
    "summary",
]
