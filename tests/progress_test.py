"""Tests of tf_cgan_transfer.progress: the rate-limited progress line, on a fake clock."""

import tensorflow as tf

from tf_cgan_transfer import progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


class ProgressTest(tf.test.TestCase):
    def _progress(self, total, **kwargs):
        clock, lines = FakeClock(), []
        bar = progress.Progress("classifying", total, "images", clock=clock, log=lines.append)
        return bar, clock, lines

    def test_lines_at_most_once_per_interval(self):
        bar, clock, lines = self._progress(100)
        for _ in range(25):  # 4 units per 0.25 s: 16 units/s
            clock.now += 0.25
            bar.update(4)
        # 6.25 s of work: lines at 1, 2, 3, 4, 5 and 6 s, never two within a second.
        self.assertLen(lines, 6)
        self.assertEqual(lines[0], "classifying: 16/100 images (16%), 16.0 images/s, ETA 0:00:05")
        self.assertEqual(lines[-1], "classifying: 96/100 images (96%), 16.0 images/s, ETA 0:00:00")
        bar.close()
        self.assertLen(lines, 7)
        self.assertEqual(lines[-1], "classifying: 100/100 images in 0:00:06 (16.0 images/s)")

    def test_many_updates_within_a_second_log_once(self):
        bar, clock, lines = self._progress(1000)
        for _ in range(500):
            clock.now += 0.001
            bar.update()
        self.assertEqual(lines, [])  # 0.5 s: nothing yet
        for _ in range(600):
            clock.now += 0.001
            bar.update()
        self.assertLen(lines, 1)  # at 1 s; the next line waits until 2 s

    def test_quick_work_logs_nothing(self):
        bar, clock, lines = self._progress(8)
        for _ in range(8):
            clock.now += 0.1
            bar.update()
        bar.close()
        self.assertEqual(lines, [])

    def test_eta_arithmetic(self):
        bar, clock, _ = self._progress(10_000)
        clock.now += 40.0
        bar.done = 1_000  # 25 images/s: 9000 left take 360 s
        self.assertEqual(
            bar.line(clock.now),
            "classifying: 1000/10000 images (10%), " "25.0 images/s, ETA 0:06:00",
        )
        self.assertAllClose(bar.rate(clock.now), 25.0)
        bar.done = 0
        self.assertEndsWith(bar.line(clock.now), "0.0 images/s, ETA ?")
        self.assertEqual(progress.format_duration(3 * 3600 + 25 * 60 + 7.4), "3:25:07")
        self.assertEqual(progress.format_duration(59.6), "0:01:00")
        self.assertEqual(progress.format_duration(-1), "0:00:00")

    def test_track_counts_every_item(self):
        clock, lines = FakeClock(), []

        def work():
            for item in progress.track(
                range(5), "standing statistics", unit="batches", clock=clock, log=lines.append
            ):
                clock.now += 0.6
                yield item

        self.assertEqual(list(work()), list(range(5)))
        # An item counts once the next is asked for: 2 done at 1.2 s, 4 at 2.4 s (lines
        # 1.2 s apart: 3 done at 1.8 s is within a second of the first), then the end.
        self.assertEqual(
            lines,
            [
                "standing statistics: 2/5 batches (40%), 1.7 batches/s, ETA 0:00:02",
                "standing statistics: 4/5 batches (80%), 1.7 batches/s, ETA 0:00:01",
                "standing statistics: 5/5 batches in 0:00:03 (1.7 batches/s)",
            ],
        )


if __name__ == "__main__":
    tf.test.main()
