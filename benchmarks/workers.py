"""Worker processes for the benchmarks: many training runs, a few at a time.

Each run goes to a process of its own, started with "spawn" (a forked TensorFlow runtime
is unusable), so one run's graphs and memory never weigh on the next one's.
"""

import concurrent.futures
import multiprocessing

from absl import logging


def _init_worker(verbosity):
    logging.use_absl_handler()  # the parent's log format (app.run installs it there)
    logging.set_verbosity(verbosity)


def run_in_processes(fn, jobs, workers, on_result):
    """Calls `fn(*job)` for every job in `workers` processes, `on_result(job, result)` as
    each finishes (in the parent); the first exception cancels the queue and is raised.

    `fn` must be importable by name (a module-level function), its arguments picklable.
    """
    if not jobs:
        return
    with concurrent.futures.ProcessPoolExecutor(
        min(workers, len(jobs)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(logging.get_verbosity(),),
    ) as pool:
        futures = {pool.submit(fn, *job): job for job in jobs}
        try:
            for future in concurrent.futures.as_completed(futures):
                on_result(futures[future], future.result())
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # fail now, not after the queue
            raise
