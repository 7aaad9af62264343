"""Widgets several panels share: a latent slider (preview while dragged, full after release),
a path field with recent list and a non-blocking folder dialog. Only polyscope.imgui widgets
(imgui_bundle's imgui crashes inside a Polyscope callback; its portable_file_dialogs does not)."""

from __future__ import annotations

import polyscope.imgui as psim


def slider(app, label: str, value: float, lo: float = 0.0, hi: float = 1.0, channel: str = "main") -> float:
    """SliderFloat that asks for a preview mesh while dragged and the full one on release."""
    changed, value = psim.SliderFloat(label, value, lo, hi)
    if changed:
        app.request_view(preview=True)
    if psim.IsItemDeactivatedAfterEdit():
        app.request_view(preview=False)
    return value


class FolderDialog:
    """imgui_bundle.portable_file_dialogs.select_folder, polled with ready(0) (never blocks).
    Without zenity/kdialog it finishes at once with an empty result."""

    def __init__(self, title: str, default: str = "."):
        from imgui_bundle import portable_file_dialogs as pfd

        self.dialog = pfd.select_folder(title, default)

    def poll(self):
        """None while open; then the chosen folder ('' if cancelled or no dialog program)."""
        if not self.dialog.ready(0):
            return None
        return self.dialog.result() or ""


def path_picker(app, kind: str, label: str, text_attr: str, recent_attr: str, open_fn) -> None:
    """[path field] [Open] [Browse...] and a recent-paths combo; open_fn(path) reports errors itself."""
    st = app.state
    psim.PushItemWidth(-150)
    enter, text = psim.InputText(f"##{kind}", getattr(st, text_attr), psim.ImGuiInputTextFlags_EnterReturnsTrue)
    setattr(st, text_attr, text)
    psim.PopItemWidth()
    psim.SameLine()
    if psim.Button(f"Open##{kind}") or enter:
        open_fn(getattr(st, text_attr))
    psim.SameLine()
    if psim.Button(f"Browse##{kind}"):
        try:
            app.dialogs[kind] = (FolderDialog(f"Open {label}", getattr(st, text_attr) or "."), open_fn)
        except Exception as e:  # no dialog backend at all
            st.error(f"file dialog unavailable ({e}); type a path instead")
    recent = getattr(st, recent_attr)
    if recent:
        psim.PushItemWidth(-150)
        changed, i = psim.Combo(f"recent {label}", -1, recent)
        psim.PopItemWidth()
        if changed and 0 <= i < len(recent):
            setattr(st, text_attr, recent[i])
            open_fn(recent[i])


def poll_dialogs(app) -> None:
    for kind, (dlg, open_fn) in list(app.dialogs.items()):
        res = dlg.poll()
        if res is None:
            continue
        del app.dialogs[kind]
        if res:
            open_fn(res)
        else:
            app.state.info("no folder chosen (is zenity or kdialog installed?); type the path and press Open")


def combo(label: str, index: int, items: list) -> tuple[bool, int]:
    if not items:
        psim.TextDisabled(f"{label}: none")
        return False, index
    return psim.Combo(label, min(max(index, 0), len(items) - 1), items)
