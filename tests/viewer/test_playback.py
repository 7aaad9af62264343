"""Playback clock: frames visited per mode and fps, loop / stop, pause keeps the frame."""

import pytest

from npm_viewer.playback import AS_RECORDED, FPS_PRESETS, Playback


def run(p: Playback, t0: float, t1: float, dt: float) -> list[int]:
    """Tick at t0 + dt, t0 + 2 dt, ... up to t1; the frame after each tick."""
    n = round((t1 - t0) / dt)
    return [p.advance(t0 + k * dt) for k in range(1, n + 1)]


def changes(frames: list[int], start: int) -> list[int]:
    out, last = [], start
    for f in frames:
        if f != last:
            out.append(f)
            last = f
    return out


def test_every_frame_visits_each_frame_in_order_when_ticks_are_fast():
    p = Playback(20, fps=30, mode="every frame")
    p.play(0.0)
    shown = changes(run(p, 0.0, 1.0, 1 / 120), 0)
    assert shown == list(range(1, 20)) + list(range(11))  # 30 steps in 1 s at 30 fps, none skipped


def test_every_frame_never_skips_when_ticks_are_slow():
    p = Playback(20, fps=30, mode="every frame")
    p.play(0.0)
    frames = run(p, 0.0, 2.0, 0.1)  # 10 ticks/s, slower than 30 fps
    assert frames == list(range(1, 20)) + [0]  # one frame per tick: all 20, in order
    # fast ticks again: the next step comes one period after the last (due 2.033 s, 2.067 s), no catching up
    assert run(p, 2.0, 2.08, 0.01) == [0, 0, 0, 1, 1, 1, 2, 2]  # steps at 2.04, 2.07


def test_real_time_keeps_the_clock():
    p = Playback(100, fps=30)
    p.play(0.0)
    assert run(p, 0.0, 1.0, 0.1) == [3, 6, 9, 12, 15, 18, 21, 24, 27, 30]  # 30 frames worth in 1 s, 2 of 3 skipped
    q = Playback(20, fps=30)
    q.play(0.0)
    assert q.advance(1.0) == 10  # looped: 30 % 20
    assert q.advance(1.0 + 1 / 30) == 11


def test_stop_at_the_end_without_loop():
    p = Playback(10, fps=10, loop=False)
    p.play(0.0)
    assert p.advance(0.95) == 9 and p.playing  # frame 9 is due at 0.9 s
    assert p.advance(5.0) == 9 and not p.playing
    p.play(6.0)  # from the start again
    assert p.frame == 0 and p.advance(6.25) == 2
    e = Playback(3, fps=10, mode="every frame", loop=False)
    e.play(0.0)
    assert run(e, 0.0, 0.5, 0.1) == [1, 2, 2, 2, 2] and not e.playing


@pytest.mark.parametrize("mode", ["real-time", "every frame"])
def test_pause_keeps_the_frame(mode):
    p = Playback(100, fps=10, mode=mode)
    p.play(0.0)
    run(p, 0.0, 0.5, 0.1)
    p.pause(0.55)
    assert p.frame == 5 and not p.playing
    assert p.advance(30.0) == 5  # paused for a long time
    p.toggle(30.0)
    assert p.playing and p.advance(30.05) == 5 and p.advance(30.1) == 6  # resumes from the paused frame
    p.toggle(30.1)
    assert not p.playing and p.frame == 6


def test_fps_change_and_as_recorded():
    p = Playback(1000, fps=30, recorded_fps=24)
    p.play(0.0)
    p.set_fps(10, 1.0)  # 30 frames so far, then 10 fps
    assert p.frame == 30 and p.advance(2.0) == 40
    p.set_fps(AS_RECORDED, 2.0)
    assert p.rate == 24 and p.advance(3.0) == 64
    assert FPS_PRESETS == (10, 24, 25, 30, 60, AS_RECORDED)
    with pytest.raises(ValueError, match="no recorded rate"):
        Playback(10, fps=AS_RECORDED)
    with pytest.raises(ValueError, match=r"fps must be one of .* got 0"):
        p.set_fps(0, 3.0)
    with pytest.raises(ValueError, match="mode must be one of"):
        p.set_mode("fast", 3.0)


def test_mode_switch_keeps_the_frame():
    p = Playback(100, fps=10)
    p.play(0.0)
    p.set_mode("every frame", 1.0)
    assert p.frame == 10
    assert run(p, 1.0, 1.5, 0.05) == [10, 11, 11, 12, 12, 13, 13, 14, 14, 15]


def test_seek_and_clip_length():
    p = Playback(50, fps=10)
    p.play(0.0)
    p.seek(40, 1.0)
    assert p.advance(1.25) == 42  # playing continues from the seek
    p.seek(99, 2.0)
    assert p.frame == 49
    p.set_n_frames(20, 2.0)
    assert p.frame == 19
    p.set_n_frames(0, 2.0)
    assert p.frame == 0 and not p.playing
    p.play(3.0)
    assert not p.playing and p.advance(4.0) == 0
