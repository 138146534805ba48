"""Generate the auditor pack into one folder.

    python -m cdp.pack --out DIR [--docs-target DIR] [--evidence-dir DIR]

Runs ``dbt docs generate --static`` (in-process, with the usual environment:
key, CDP_* paths) into a temporary target dir of its own, never the build's
``target/`` (a docs run there would replace the build's run_results.json), unless
given ``--docs-target`` (a dir already documented). What the build proved comes
from the evidence record (:mod:`cdp.evidence`), which ``cdp build`` appends to.
It writes, all linked together and opening from disk without a server or network:

    index.html                      the pack's front page: which build, and whether every
                                    privacy rule held in it (one quotable line)
    dbt_docs/index.html             dbt's static docs site (one file)
    record_of_processing.html/.md   GDPR art. 30(1)(a)-(g) + storage location (152-FZ 18 p. 5)
    privacy_notice_en.html/.md      public notice, English
    privacy_notice_ru.html/.md      public notice, Russian
    lineage.html/.md, lineage.svg   column-level PII lineage from the compiled SQL
    compliance_summary.html/.md     consent coverage, retention, requests, logs, test results
    history.html/.md                the evidence record over time, as pictures (inline SVG)
    privacy_gate.html, privacy_gate.txt
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdp import evidence, paths
from cdp.keys import OWNER_ONLY_UMASK
from cdp.pack import gate, history, pages, summary
from cdp.pack.gate import Finding


@dataclass
class PackResult:
    out: Path
    files: list[Path]
    findings: list[Finding]

    @property
    def gate_passed(self) -> bool:
        return not gate.failures(self.findings)


def generate_docs(target: Path) -> None:
    """``dbt docs generate --static`` into ``target`` (needs the build's environment).

    ``target`` must not be the build's target dir: the docs run writes its own
    run_results.json there.
    """
    from cdp import dbt_invoke

    # Every stage's nodes (the default selector of the analytics target would
    # compile only its own): the gate traces lineage from the raw zone.
    outcome = dbt_invoke.invoke(
        ["docs", "generate", "--static", "--select", "fqn:*"],
        extra=["--target-path", str(target)],
        echo=False,
    )
    if not outcome.success:
        raise pages.PackError("dbt docs generate failed:\n" + outcome.output[-3000:])


def build_pack(
    out: Path,
    target: Path,
    *,
    seeds: Path | None = None,
    warehouse: Path | None = None,
    raw: Path | None = None,
    vault: Path | None = None,
    evidence_dir: Path | None = None,
) -> PackResult:
    """Write every page of the pack into ``out`` from an already documented target dir.

    The build it describes is the last entry of the evidence record in ``evidence_dir``.
    """
    seeds = seeds or paths.PROJECT_ROOT / "seeds"
    entries = evidence.read_entries(evidence_dir)
    problems = evidence.verify(evidence_dir)
    entry = entries[-1] if entries else None
    catalogue = pages.Catalogue.load(seeds)
    static = target / "static_index.html"
    if not static.is_file():
        raise pages.PackError(f"{static} is missing: run `dbt docs generate --static`")
    project, findings = gate.run(target)
    manifest = project.manifest
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def write(name: str, text: str) -> None:
        file = out / name
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(text, encoding="utf-8")
        written.append(file)

    (out / "dbt_docs").mkdir(exist_ok=True)
    shutil.copyfile(static, out / "dbt_docs" / "index.html")
    written.append(out / "dbt_docs" / "index.html")
    html, md = pages.record_of_processing(catalogue, manifest)
    write("record_of_processing.html", html)
    write("record_of_processing.md", md)
    for lang in ("en", "ru"):
        html, md = pages.privacy_notice(catalogue, lang)
        write(f"privacy_notice_{lang}.html", html)
        write(f"privacy_notice_{lang}.md", md)
    svg = pages.relation_graph(project)
    write("lineage.svg", svg)
    html, md = pages.lineage_page(project, svg)
    write("lineage.html", html)
    write("lineage.md", md)
    html, md = summary.compliance_summary(
        catalogue,
        entry,
        warehouse or paths.warehouse_db(),
        raw or paths.raw_db(),
        vault or paths.vault_db(),
    )
    write("compliance_summary.html", html)
    write("compliance_summary.md", md)
    html, md = history.history_page(entries, problems)
    write("history.html", html)
    write("history.md", md)
    report = gate.report(findings)
    write("privacy_gate.txt", report + "\n")
    write("privacy_gate.html", pages.gate_page(findings, report))
    failed = len(gate.failures(findings))
    status = (
        '<span class="ok">passed</span>'
        if not failed
        else f'<span class="bad">{failed} failures</span>'
    )
    items = "".join(
        f'<li><a href="{href}">{pages.esc(text)}</a></li>' for href, text in pages.NAV[1:]
    )
    line = quotable_line(entry, problems)
    write("describes.txt", line + "\n")
    write(
        "index.html",
        pages.page(
            "Auditor pack",
            f'<p class="quote" id="describes" style="font-size:1.15rem;border-left:4px solid '
            f'#2f6fb0;padding:.4rem .8rem;background:#f0f5fb">{pages.esc(line)}</p>'
            f"<p>Generated from the project itself (dbt manifest, compiled SQL, seeds, built "
            f"databases, the evidence record). Privacy gate: {status}.</p><ul>{items}</ul>"
            "<p>Markdown versions: record_of_processing.md, privacy_notice_en.md, "
            "privacy_notice_ru.md, lineage.md, compliance_summary.md, history.md; "
            "the line above: describes.txt.</p>",
        ),
    )
    return PackResult(out, written, findings)


def quotable_line(entry: dict[str, Any] | None, problems: Sequence[str]) -> str:
    """Which build the pack describes and whether every privacy rule held, in one sentence."""
    if entry is None:
        return "This pack describes no build: the evidence record is empty (run cdp build)."
    v = evidence.verdict(entry)
    if v.held:
        outcome = f"every privacy rule held (all {v.tests} privacy tests passed)"
    else:
        others = [t for t in entry.get("privacy_tests", []) if t["status"] != evidence.PASSED]
        named = ", ".join(
            f"{t['rule']} on {t['model'] or t['test']} {t['status']}" for t in others[:3]
        )
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        outcome = (
            f"NOT every privacy rule held ({v.passed} of {v.tests} privacy tests passed, "
            f"{v.warned} warned, {v.failed} failed: {named}{more})"
        )
    record = (
        "the evidence record verifies"
        if not problems
        else "the evidence record does NOT verify (" + problems[0] + ")"
    )
    return (
        f"This pack describes the build of {entry.get('built_at')} at commit "
        f"{entry.get('commit') or 'unknown'} with as_of {entry.get('as_of')} "
        f"(key {entry.get('key_version')}, evidence entry {entry.get('seq')}:"
        f"{str(entry.get('hash'))[:16]}): {outcome}; {record}."
    )


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(OWNER_ONLY_UMASK)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="cdp pack",
        description="Generate the auditor pack (docs, record of processing, notices, lineage, "
        "compliance summary, privacy gate) into one folder.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pack into")
    parser.add_argument(
        "--docs-target",
        type=Path,
        help="a dbt target dir already documented (catalog.json, static_index.html); "
        "default: run `dbt docs generate` into a temporary dir of its own",
    )
    parser.add_argument(
        "--evidence-dir",
        type=Path,
        help=f"the evidence record (default: ${evidence.ENV_DIR} or data/evidence)",
    )
    args = parser.parse_args(argv)
    try:
        if args.docs_target:
            result = build_pack(args.out, args.docs_target, evidence_dir=args.evidence_dir)
        else:
            with tempfile.TemporaryDirectory(prefix="cdp-pack-docs-") as docs:
                generate_docs(Path(docs))
                result = build_pack(args.out, Path(docs), evidence_dir=args.evidence_dir)
    except (pages.PackError, evidence.EvidenceError, FileNotFoundError) as exc:
        print(f"cdp pack: {exc}", file=sys.stderr)
        return 2
    print(f"cdp pack: wrote {len(result.files)} files to {result.out}")
    print((result.out / "describes.txt").read_text(encoding="utf-8").strip())
    print(gate.report(result.findings).splitlines()[0])
    return 0 if result.gate_passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
