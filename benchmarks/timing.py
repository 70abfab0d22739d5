"""The one timing helper the benchmark scripts share: median wall time after a warm-up run."""

import statistics
import time


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up: imports and caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
