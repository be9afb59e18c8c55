"""The W1-W4 flows of Orca's bench, for Prefect 3 (used by prefect_bench.py).

A module of its own, free of side effects at import: a served flow run is a
fresh Python process that imports its flow from this file.

  W1/W2  a chain of task calls: Prefect runs a task called directly in the
         flow's own thread, one after the other (no dispatch to a worker).
  W3     1 -> 100 `.submit()`ted tasks -> 1 on the default task runner
         (ThreadPoolTaskRunner: threads of the flow's process).
  W4     a 10-task chain, served by `flow.serve` (see prefect_bench.py).
Shell tasks run `true` through the shell, like Orca's Shell tasks.
"""
import subprocess
import sys

from prefect import flow, task


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@task
def fib_task(n):
    return fib(n)


@task
def sh_true():
    subprocess.run("true", shell=True, check=True)


@flow
def w1():
    for i in range(40):
        fib_task.with_options(task_run_name=f"t{i:03d}")(10)


@flow
def w2():
    for i in range(10):
        fib_task.with_options(task_run_name=f"t{i:03d}")(33)


@flow
def w3():
    start = sh_true.with_options(task_run_name="start").submit()
    mid = [sh_true.with_options(task_run_name=f"p{i:03d}").submit(wait_for=[start]) for i in range(100)]
    sh_true.with_options(task_run_name="end").submit(wait_for=mid).result()


@flow(name="w4-chain")
def w4_chain():
    for i in range(10):
        sh_true.with_options(task_run_name=f"t{i:03d}")()


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    # `limit`: how many flow runs this runner executes at once (each one a
    # Python process); the harness passes the same figure as Airflow's
    # parallelism.
    w4_chain.serve(name="w4", limit=int(sys.argv[2]), print_starting_message=False)
