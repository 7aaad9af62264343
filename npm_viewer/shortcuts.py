"""Keyboard shortcuts: one table of keys and what they do, the logic that turns key presses into
commands for the app, and the help overlay's text made from the same table.

Pure python except pressed_keys, which polls ImGui once per frame. Frame numbers are 0-based, as
on the frame sliders. Stepping stops at the first and last frame (no wrap: holding an arrow
never jumps from the end back to the start; looping is playback's job). The arrows pause
playback; Home, End and a typed frame number keep it playing or paused as it was.

Must not: change the app's state itself (it returns Commands for the app to apply), or draw.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

DIGITS = tuple(str(d) for d in range(10))
KEYPAD_DIGITS = tuple(f"Keypad{d}" for d in range(10))
MAX_DIGITS = 7  # a typed frame number longer than this is ignored past its 7th digit


@dataclass(frozen=True)
class Shortcut:
    keys: tuple[str, ...]  # ImGui key names without the "ImGuiKey_" prefix
    label: str  # how the help overlay names the keys
    action: str
    help: str
    repeat: bool = False  # fires again while the key is held


SHORTCUTS = (
    Shortcut(("Space",), "Space", "toggle_play", "play / pause"),
    Shortcut(("LeftArrow",), "Left", "step_back", "previous frame (pauses; stops at the first)", repeat=True),
    Shortcut(("RightArrow",), "Right", "step_forward", "next frame (pauses; stops at the last)", repeat=True),
    Shortcut(("Home",), "Home", "first", "first frame"),
    Shortcut(("End",), "End", "last", "last frame"),
    Shortcut(DIGITS + KEYPAD_DIGITS, "0-9", "digit", "type a frame number ..."),
    Shortcut(("Backspace",), "Backspace", "erase", "... erase its last digit"),
    Shortcut(("Enter", "KeypadEnter"), "Enter", "goto", "... go to that frame (clamped to the clip)"),
    Shortcut(("Escape",), "Esc", "escape", "cancel the number, else hide this help, else close a popup"),
    Shortcut(("H", "F1"), "H / F1", "toggle_help", "show / hide this help"),
)
_ACTION = {k: s.action for s in SHORTCUTS for k in s.keys}


@dataclass(frozen=True)
class Command:
    """What the app should do: 'toggle_play', 'seek' (to `frame`; `pause` too) or 'close_popup'."""

    action: str
    frame: int | None = None
    pause: bool = False


class Shortcuts:
    """Keyboard state between frames: the frame number being typed and whether the help is shown."""

    def __init__(self):
        self.entry = ""  # digits typed so far, shown by the app while not empty
        self.help_visible = False

    def handle(self, keys: Iterable[str], frame: int, n_frames: int) -> list[Command]:
        """Commands for the keys pressed this frame (in order), on a clip of n_frames showing `frame`.

        Frame commands are dropped when n_frames is 0 (nothing to seek in).
        """
        out: list[Command] = []
        last = n_frames - 1

        def seek(k: int, pause: bool) -> None:
            if n_frames > 0:
                out.append(Command("seek", min(max(k, 0), last), pause))

        for key in keys:
            action = _ACTION.get(key)
            if action == "toggle_play":
                out.append(Command("toggle_play"))
            elif action == "step_back":
                seek(frame - 1, True)
            elif action == "step_forward":
                seek(frame + 1, True)
            elif action == "first":
                seek(0, False)
            elif action == "last":
                seek(last, False)
            elif action == "digit":
                if len(self.entry) < MAX_DIGITS:
                    self.entry += key[-1]
            elif action == "erase":
                self.entry = self.entry[:-1]
            elif action == "goto":
                if self.entry:
                    seek(int(self.entry), False)
                self.entry = ""
            elif action == "escape":
                if self.entry:
                    self.entry = ""
                elif self.help_visible:
                    self.help_visible = False
                else:
                    out.append(Command("close_popup"))
            elif action == "toggle_help":
                self.help_visible = not self.help_visible
            if out and out[-1].action == "seek":
                frame = out[-1].frame  # a later key in the same frame steps from here
        return out


def help_rows() -> list[tuple[str, str]]:
    """(keys, what they do) for each shortcut, in table order."""
    return [(s.label, s.help) for s in SHORTCUTS]


def help_text() -> str:
    """The help overlay as aligned plain text, one shortcut per line."""
    width = max(len(k) for k, _ in help_rows())
    return "\n".join(f"{k:<{width}}  {h}" for k, h in help_rows())


def pressed_keys(psim=None) -> list[str]:
    """Names of the table's keys pressed this frame (table order), none while an ImGui text field is active.

    psim: polyscope.imgui (default) or anything with the same GetIO / IsKeyPressed / ImGuiKey_*.
    """
    if psim is None:
        import polyscope.imgui as psim
    if psim.GetIO().WantTextInput:
        return []
    return [k for s in SHORTCUTS for k in s.keys if psim.IsKeyPressed(getattr(psim, f"ImGuiKey_{k}"), s.repeat)]
