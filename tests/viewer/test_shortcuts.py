"""Keyboard shortcuts as pure logic: key sequences -> commands, typed frame numbers, help text."""

from types import SimpleNamespace

import pytest

from npm_viewer.shortcuts import (
    SHORTCUTS,
    Command,
    Shortcuts,
    help_rows,
    help_text,
    pressed_keys,
)


def seek(k, pause=False):
    return Command("seek", k, pause)


def test_typed_frame_number_then_enter():
    s = Shortcuts()
    assert s.handle(["1"], frame=3, n_frames=64) == []
    assert s.entry == "1"
    assert s.handle(["Keypad2"], 3, 64) == [] and s.entry == "12"
    assert s.handle(["Enter"], 3, 64) == [seek(12)]
    assert s.entry == ""
    assert s.handle(["9", "9", "KeypadEnter"], 3, 64) == [seek(63)]  # clamped to the last frame
    assert s.handle(["0", "0", "7", "Enter"], 3, 64) == [seek(7)]
    assert s.handle(["Enter"], 3, 64) == []  # nothing typed: nothing to do


def test_backspace_escape_and_long_numbers():
    s = Shortcuts()
    s.handle(["4", "5", "Backspace"], 0, 100)
    assert s.entry == "4"
    assert s.handle(["Escape"], 0, 100) == [] and s.entry == ""  # cancels the entry only
    assert s.handle(["Escape"], 0, 100) == [Command("close_popup")]
    s.handle(list("123456789"), 0, 10**9)
    assert s.entry == "1234567"
    assert s.handle(["Enter"], 0, 10**9) == [seek(1234567)]


def test_space_toggles_and_arrows_step_with_clamp():
    s = Shortcuts()
    assert s.handle(["Space"], 5, 10) == [Command("toggle_play")]
    assert s.handle(["Space", "Space"], 5, 10) == [Command("toggle_play")] * 2
    assert s.handle(["RightArrow"], 5, 10) == [seek(6, pause=True)]
    assert s.handle(["LeftArrow"], 5, 10) == [seek(4, pause=True)]
    assert s.handle(["RightArrow"], 9, 10) == [seek(9, pause=True)]  # no wrap at the end
    assert s.handle(["LeftArrow"], 0, 10) == [seek(0, pause=True)]  # nor at the start
    assert s.handle(["RightArrow", "RightArrow", "LeftArrow"], 2, 10) == [seek(3, True), seek(4, True), seek(3, True)]


def test_home_end_and_empty_clip():
    s = Shortcuts()
    assert s.handle(["Home"], 7, 30) == [seek(0)]
    assert s.handle(["End"], 7, 30) == [seek(29)]
    assert s.handle(["Home", "RightArrow"], 7, 30) == [seek(0), seek(1, True)]
    assert s.handle(["Home", "End", "LeftArrow", "3", "Enter"], 0, 0) == []  # no frames: no seeks
    assert s.handle(["Space"], 0, 0) == [Command("toggle_play")]


def test_help_toggles_and_escape_hides_it():
    s = Shortcuts()
    s.handle(["H"], 0, 10)
    assert s.help_visible
    s.handle(["F1"], 0, 10)
    assert not s.help_visible
    s.handle(["F1", "5"], 0, 10)
    assert s.handle(["Escape"], 0, 10) == [] and s.help_visible and s.entry == ""
    assert s.handle(["Escape"], 0, 10) == [] and not s.help_visible
    assert s.handle(["Q", "Tab"], 0, 10) == []  # keys outside the table are ignored


def test_help_text_comes_from_the_table():
    rows = help_rows()
    assert [k for k, _ in rows] == [s.label for s in SHORTCUTS]
    lines = help_text().splitlines()
    assert len(lines) == len(SHORTCUTS)
    assert lines[0].startswith("Space") and lines[0].endswith("play / pause")
    assert any(line.startswith("H / F1") and "help" in line for line in lines)
    assert len({line.index(h) for line, (_, h) in zip(lines, rows)}) == 1  # descriptions aligned


def test_pressed_keys_polls_the_table(monkeypatch):
    import polyscope.imgui as psim

    for s in SHORTCUTS:  # every key name exists in the installed ImGui bindings
        for k in s.keys:
            assert hasattr(psim, f"ImGuiKey_{k}"), k
    down = {"ImGuiKey_Space", "ImGuiKey_7", "ImGuiKey_LeftArrow"}
    polled = []

    def is_pressed(key, repeat):
        polled.append((key, repeat))
        return key in down

    names = {f"ImGuiKey_{k}": f"ImGuiKey_{k}" for s in SHORTCUTS for k in s.keys}
    fake = SimpleNamespace(GetIO=lambda: SimpleNamespace(WantTextInput=False), IsKeyPressed=is_pressed, **names)
    assert pressed_keys(fake) == ["Space", "LeftArrow", "7"]
    assert ("ImGuiKey_LeftArrow", True) in polled and ("ImGuiKey_Space", False) in polled  # arrows repeat
    typing = SimpleNamespace(GetIO=lambda: SimpleNamespace(WantTextInput=True), IsKeyPressed=is_pressed, **names)
    assert pressed_keys(typing) == []


@pytest.mark.parametrize("keys,frame", [(["1", "2", "Enter"], 12), (["5", "0", "0", "Enter"], 99)])
def test_goto_examples(keys, frame):
    assert Shortcuts().handle(keys, 0, 100) == [seek(frame)]
