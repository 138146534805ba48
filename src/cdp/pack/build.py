"""Generate the auditor pack into one folder.

    python -m cdp.pack --out DIR [--target-path target] [--no-docs-generate]

Runs ``dbt docs generate --static`` (in-process, with the usual environment:
key, CDP_* paths) unless told not to, then writes, all linked together and
opening from disk without a server or network:

    index.html                      the pack's front page
    dbt_docs/index.html             dbt's static docs site (one file)
    record_of_processing.html/.md   GDPR art. 30(1)(a)-(g) + storage location (152-FZ 18 p. 5)
    privacy_notice_en.html/.md      public notice, English
    privacy_notice_ru.html/.md      public notice, Russian
    lineage.html/.md, lineage.svg   column-level PII lineage from the compiled SQL
    compliance_summary.html/.md     consent coverage, retention, requests, logs, test results
    privacy_gate.html, privacy_gate.txt
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cdp import paths
from cdp.pack import gate, pages, summary
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
    """``dbt docs generate --static`` into ``target`` (needs the build's environment)."""
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
) -> PackResult:
    """Write every page of the pack into ``out`` from an already documented target dir."""
    seeds = seeds or paths.PROJECT_ROOT / "seeds"
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
        manifest,
        target,
        warehouse or paths.warehouse_db(),
        raw or paths.raw_db(),
        vault or paths.vault_db(),
    )
    write("compliance_summary.html", html)
    write("compliance_summary.md", md)
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
    generated = manifest["metadata"].get("generated_at", "")
    write(
        "index.html",
        pages.page(
            "Auditor pack",
            f"<p>Generated from the project itself (dbt manifest of {pages.esc(generated)}, "
            f"compiled SQL, seeds, built databases). Privacy gate: {status}.</p><ul>{items}</ul>"
            "<p>Markdown versions: record_of_processing.md, privacy_notice_en.md, "
            "privacy_notice_ru.md, lineage.md, compliance_summary.md.</p>",
        ),
    )
    return PackResult(out, written, findings)


def main(argv: Sequence[str] | None = None) -> int:
    os.umask(0o077)  # owner-only: whatever this command or DuckDB creates
    parser = argparse.ArgumentParser(
        prog="python -m cdp.pack",
        description="Generate the auditor pack (docs, record of processing, notices, lineage, "
        "compliance summary, privacy gate) into one folder.",
    )
    parser.add_argument("--out", type=Path, required=True, help="folder to write the pack into")
    parser.add_argument(
        "--target-path",
        type=Path,
        default=paths.PROJECT_ROOT / "target",
        help="dbt target dir of the last build (default: target)",
    )
    parser.add_argument(
        "--no-docs-generate",
        action="store_true",
        help="use catalog.json and static_index.html already in the target dir",
    )
    args = parser.parse_args(argv)
    try:
        if not args.no_docs_generate:
            generate_docs(args.target_path)
        result = build_pack(args.out, args.target_path)
    except (pages.PackError, FileNotFoundError) as exc:
        print(f"cdp pack: {exc}", file=sys.stderr)
        return 2
    print(f"cdp pack: wrote {len(result.files)} files to {result.out}")
    print(gate.report(result.findings).splitlines()[0])
    return 0 if result.gate_passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
