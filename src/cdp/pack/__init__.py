"""The auditor pack: lineage, record of processing, privacy notice, summary, privacy gate."""
