#!/usr/bin/env python3
"""API contract test (issue 15, item 6): Schemathesis against /api/v1/openapi.json of a real
engine (dev broker, fresh database).

1. Negative data only (--mode negative): every command is rejected (4xx), nothing is published
   (every partition's end offset unchanged), no 5xx, and each answer matches the documented
   status codes, content type and schema.
2. Any data (--mode all): no 5xx and every answer matches its documented status codes, content
   type and schema (accepted commands publish; the offsets are not compared).

Usage: contract_test.py BUILD_DIR [--max-examples N] [--seed N]
Schemathesis comes from tools/schemathesis (pinned, a venv under the cache).
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from engine_stack import EngineStack  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_schema_conformance,response_headers_conformance")


def without_negative_data(stack):
    """Operation ids whose only inputs are a string path parameter and optional headers:
    Schemathesis cannot make negative data for them (an error, not a finding)."""
    _, spec = stack.request("GET", "/api/v1/openapi.json")
    ids = []
    for path, methods in spec["paths"].items():
        for method, operation in methods.items():
            required = [p for p in operation.get("parameters", [])
                        if p.get("required") and p["in"] != "path"]
            if "requestBody" not in operation and not required:
                ids.append(operation["operationId"])
    return ids


def schemathesis(stack, mode, args, report_dir):
    excluded = []
    if mode == "negative":
        for operation_id in without_negative_data(stack):
            excluded += ["--exclude-operation-id", operation_id]
    command = [os.path.join(REPO, "tools", "schemathesis"), "run",
               f"http://127.0.0.1:{stack.api_port}/api/v1/openapi.json",
               "-H", f"Authorization: Bearer {stack.token}",
               "--checks", CHECKS + (",negative_data_rejection" if mode == "negative" else ""),
               "--mode", mode, "--max-examples", str(args.max_examples), "--seed", str(args.seed),
               "--phases", "examples,coverage,fuzzing", "--workers", "2",
               "--request-timeout", "30", "--generation-database", "none",
               # A path parameter is any string: negative data for DELETE .../{id} is mostly
               # filtered out, which is no failure of the API.
               "--suppress-health-check", "filter_too_much",
               "--report", "junit", "--report-dir", report_dir] + excluded
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(command, cwd=stack.dir).returncode  # its .schemathesis cache stays there


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("build_dir")
    parser.add_argument("--max-examples", type=int, default=int(os.environ.get("ULTRACORE_CONTRACT_EXAMPLES", "10")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("ULTRACORE_CONTRACT_SEED", "15")))
    args = parser.parse_args()
    failures = []
    with EngineStack(args.build_dir, REPO, token="contract-test-token") as stack:
        before = stack.end_offsets()
        if schemathesis(stack, "negative", args, os.path.join(stack.dir, "negative")) != 0:
            failures.append("Schemathesis (negative data) reported failures (above)")
        after = stack.end_offsets()
        moved = {f"{t}:{p}": (before.get((t, p)), n) for (t, p), n in after.items()
                 if before.get((t, p)) != n}
        print(f"end offsets before {sorted(before.items())}", flush=True)
        if moved:
            failures.append(f"rejected commands published: end offsets moved {moved}")
        else:
            print(f"ok: rejected commands published nothing ({len(after)} partitions unchanged)")
        if schemathesis(stack, "all", args, os.path.join(stack.dir, "all")) != 0:
            failures.append("Schemathesis (all data) reported failures (above)")
        print(f"end offsets after the positive run {sorted(stack.end_offsets().items())}")
    if stack.engine_exit != 0:
        failures.append(f"the engine exited {stack.engine_exit} on SIGTERM")
    for failure in failures:
        print("FAIL " + failure)
    if failures:
        print("engine log: " + stack.log_path)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
