"""Widgets several panels share: a latent slider (preview while dragged, full after release),
a path field with recent list and a non-blocking folder dialog. Only polyscope.imgui widgets
(imgui_bundle's imgui crashes inside a Polyscope callback; its portable_file_dialogs does not).
Panels pass the Viewer (interface.py) they were given; nothing here reaches into the app."""

from __future__ import annotations

import polyscope.imgui as psim


def slider(viewer, label: str, value: float, apply, lo: float = 0.0, hi: float = 1.0, fmt: str = "%.3f") -> None:
    """SliderFloat that applies the new value to the state, then asks for a preview mesh while
    dragged and the full one on release."""
    changed, value = psim.SliderFloat(label, value, lo, hi, fmt)
    if changed:
        apply(value)
        viewer.request_mesh(preview=True)
    if psim.IsItemDeactivatedAfterEdit():
        viewer.request_mesh(preview=False)


def delta_sliders(viewer, items, base, deltas: list, train_range, fmt: str) -> None:
    """Semantic sliders: each shows base[i] + deltas[i] (the value asked for); dragging sets the
    delta. items: (index, label, lo, hi); values outside the training range are marked."""
    for i, label, lo, hi in items:
        value = base[i] + deltas[i]
        slider(viewer, label, value, lambda v, i=i: deltas.__setitem__(i, v - base[i]), lo, hi, fmt)
        out_of_range_mark(value, train_range[0][i], train_range[1][i])


def pca_sliders(viewer, prefix: str, pca, coefficients: list, count: int = 4) -> None:
    """Offsets along the first principal directions in standard deviations (beyond 2 marked)."""
    for k in range(min(count, len(coefficients))):
        slider(
            viewer,
            f"{prefix}{k + 1} ({pca.explained[k] * 100:.0f}%)",
            coefficients[k],
            lambda v, k=k: coefficients.__setitem__(k, v),
            -3.0,
            3.0,
            "%.1f sd",
        )
        out_of_range_mark(coefficients[k], -2.0, 2.0)


def out_of_range_mark(value: float, lo: float, hi: float) -> None:
    """After a slider: a marker when its value lies outside the training range (allowed, but
    the decoder extrapolates there)."""
    if not lo - 1e-6 <= value <= hi + 1e-6:
        psim.SameLine()
        psim.TextColored((1.0, 0.45, 0.3, 1.0), "!")
        if psim.IsItemHovered():
            psim.SetTooltip(f"outside the training range [{lo:.2f}, {hi:.2f}]")


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


def path_picker(viewer, kind: str, label: str, text_attr: str, recent_attr: str, open_fn) -> None:
    """[path field] [Open] [Browse...] and a recent-paths combo; open_fn(path) reports errors itself."""
    st = viewer.state
    psim.PushItemWidth(-150)
    enter, text = psim.InputText(f"##{kind}", getattr(st, text_attr), psim.ImGuiInputTextFlags_EnterReturnsTrue)
    setattr(st, text_attr, text)
    psim.PopItemWidth()
    psim.SameLine()
    if psim.Button(f"Open##{kind}") or enter:
        open_fn(getattr(st, text_attr))
    psim.SameLine()
    if psim.Button(f"Browse##{kind}"):
        viewer.browse(kind, f"Open {label}", getattr(st, text_attr), open_fn)
    recent = getattr(st, recent_attr)
    if recent:
        psim.PushItemWidth(-150)
        changed, i = psim.Combo(f"recent {label}", -1, recent)
        psim.PopItemWidth()
        if changed and 0 <= i < len(recent):
            setattr(st, text_attr, recent[i])
            open_fn(recent[i])


def combo(label: str, index: int, items: list) -> tuple[bool, int]:
    if not items:
        psim.TextDisabled(f"{label}: none")
        return False, index
    return psim.Combo(label, min(max(index, 0), len(items) - 1), items)


def playback_controls(viewer) -> None:
    """Play/Pause, step, mode (every frame / real-time) and fps presets of the timeline."""
    from .. import playback as P

    st = viewer.state
    if psim.Button("Pause" if st.playing else "Play"):
        viewer.toggle_play()
    psim.SameLine()
    for label, by in (("<", -1), (">", 1)):
        if psim.Button(label):
            st.playing = False
            viewer.set_frame(st.frame + by)
        psim.SameLine()
    psim.PushItemWidth(110)
    modes = list(P.MODES)
    changed, i = psim.Combo("##mode", modes.index(st.play_mode) if st.play_mode in modes else 0, modes)
    if changed:
        st.play_mode = modes[i]
    psim.SameLine()
    labels = [str(f) if f == P.AS_RECORDED else f"{f} fps" for f in P.FPS_PRESETS]
    cur = P.FPS_PRESETS.index(st.play_fps) if st.play_fps in P.FPS_PRESETS else len(labels) - 1
    changed, i = psim.Combo("##fps", cur, labels)
    if changed:
        st.play_fps = P.FPS_PRESETS[i]
    psim.PopItemWidth()


def identity_filter(viewer) -> None:
    """The text field that narrows every identity list (words matched anywhere in the label)."""
    st = viewer.state
    psim.PushItemWidth(-150)
    _, st.identity_filter = psim.InputText("find identity", st.identity_filter)
    psim.PopItemWidth()
    if st.identity_filter and viewer.model is not None:
        from ..state import filter_items

        psim.SameLine()
        psim.TextDisabled(f"{len(filter_items(viewer.model.shape_labels, st.identity_filter))} match")


def search_combo(viewer, label: str, index: int, labels: list) -> tuple[bool, int]:
    """combo over the labels that match state.identity_filter (the current one always listed)."""
    from ..state import filter_items

    keep = filter_items(labels, viewer.state.identity_filter)
    if index not in keep:
        keep = [index] + keep
    changed, k = combo(label, keep.index(index), [labels[i] for i in keep])
    return changed, keep[k]
