"""JUnit XML: one test case per requirement, so CI shows the contract requirement by requirement."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from retry_contract.reports.model import requirement_rows
from retry_contract.runner import RunResult

FILENAME = "retry-contract-junit.xml"


def build(result: RunResult) -> ET.Element:
    rows = requirement_rows(result)
    suite = ET.Element(
        "testsuite",
        {
            "name": "retry-contract",
            "tests": str(len(rows)),
            "failures": str(sum(1 for r in rows if r["outcome"] == "failed" and not r["warning"])),
            "skipped": str(sum(1 for r in rows if r["outcome"] == "not covered")),
            "time": f"{result.seconds:.2f}",
        },
    )
    properties = ET.SubElement(suite, "properties")
    for name, value in (
        ("target", result.target),
        ("seed", str(result.options.seed)),
        ("spec_sha256", result.spec_sha256),
        ("strict", str(result.options.strict).lower()),
    ):
        ET.SubElement(properties, "property", {"name": name, "value": value})
    for row in rows:
        case = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"retry_contract.{row['level']}",
                "name": f"{row['id']}: {row['summary']}",
            },
        )
        details = "\n\n".join(
            f"{f['message']}\n  via {f.get('origin', f['judge'])}\n  reproduce: {f.get('reproduce', 'n/a')}"
            for f in row["failures"]
        )
        if row["outcome"] == "failed" and not row["warning"]:
            failure = ET.SubElement(
                case,
                "failure",
                {
                    "message": f"{row['failed']} of {row['judged']} judgements failed",
                    "type": row["level"],
                },
            )
            failure.text = details
        elif row["outcome"] == "failed":
            ET.SubElement(case, "system-err").text = f"WARNING (SHOULD, not strict): {details}"
        elif row["outcome"] == "not covered":
            ET.SubElement(case, "skipped", {"message": row["not_covered_reason"] or "no response judged it"})
        ET.SubElement(case, "system-out").text = f"judged {row['judged']} times"
    return suite


def write(result: RunResult, directory: Path) -> Path:
    path = directory / FILENAME
    text = ET.tostring(build(result), encoding="unicode", xml_declaration=True)
    path.write_text(result.secrets.redact(text) + "\n", encoding="utf-8")
    return path
