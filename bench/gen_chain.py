"""Prints a workflow YAML: N sequential trivial shell tasks."""
import sys

n = int(sys.argv[1])
print("workflow:\n  name: bench-chain\ntasks:")
for i in range(n):
    print(f"  - name: t{i:03d}\n    task_type: Shell\n    command: 'true'")
    if i:
        print(f"    deps: [t{i - 1:03d}]")
