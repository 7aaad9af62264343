"""Shape panel: training shape codes (labelled by phenotypes), A/B + alpha morph, prior samples.

Actions are plain functions (tests call them); draw() is the ImGui layout.
"""

from __future__ import annotations

import polyscope.imgui as psim

from npm_core import bodies

from .common import combo, delta_sliders, pca_sliders, slider

TITLE = "Shape"


def set_codes(app, a: int | None = None, b: int | None = None, alpha: float | None = None) -> None:
    st = app.state
    if a is not None:
        st.shape_a, st.sampled = int(a), None
    if b is not None:
        st.shape_b = int(b)
    if alpha is not None:
        st.alpha = float(alpha)
    app.request_view()


def sample_prior(app) -> None:
    from ..state import prior_sample

    app.state.sampled = prior_sample(app.model.shape_codes, app.rng).tolist()
    app.state.alpha = 0.0
    app.request_view()


def set_phenotype(app, name: str, value: float) -> None:
    """Ask for phenotype `name` = value: the code moves along the phenotype map by the difference
    from the current body's phenotypes (what the map does not explain of the code is kept)."""
    i = bodies.PHENOTYPES.index(name)
    app.state.phenotype_delta[i] = float(value) - float(app.base_phenotypes()[i])
    app.request_view()


def draw_semantic(app) -> None:
    st, sem = app.state, app.model.semantics
    if not psim.CollapsingHeader("Phenotype and PCA sliders", psim.ImGuiTreeNodeFlags_DefaultOpen):
        return
    if sem is None:
        psim.TextWrapped(app.model.note)
        return
    items = [(i, name, 0.0, 1.0) for i, name in enumerate(bodies.PHENOTYPES)]
    delta_sliders(app, items, app.base_phenotypes(), st.phenotype_delta, sem.phenotype_range, "%.2f")
    pca_sliders(app, "PC", sem.shape_pca, st.shape_pca)
    if psim.SmallButton("reset phenotype/PCA sliders"):
        app.state.zero("phenotype_delta", "shape_pca")
        app.request_view()


def draw(app) -> None:
    st, m = app.state, app.model
    if m is None:
        psim.TextWrapped("No checkpoint open. Type a checkpoint directory above (e.g. checkpoints/body-v1) "
                         "and press Open, or drop its folder on the window.")
        return
    labels = m.shape_labels
    psim.TextDisabled(f"{len(labels)} training identities (id, sex, age, weight/height/muscle)")
    a_label = "prior sample" if st.sampled is not None else None
    if a_label:
        psim.Text("A: a code sampled from the prior")
        if psim.SmallButton("back to training code A"):
            set_codes(app, a=st.shape_a)
    else:
        changed, i = combo("shape A", st.shape_a, labels)
        if changed:
            set_codes(app, a=i)
    changed, j = combo("shape B", st.shape_b, labels)
    if changed:
        set_codes(app, b=j)
    slider(app, "alpha (A -> B)", st.alpha, lambda v: setattr(st, "alpha", v))
    if psim.Button("Sample from the prior"):
        sample_prior(app)
    psim.SameLine()
    if psim.Button("Swap A/B") and st.sampled is None:
        set_codes(app, a=st.shape_b, b=st.shape_a)
    draw_semantic(app)
    psim.Separator()
    changed, st.full_resolution = psim.SliderInt("full resolution", st.full_resolution, 64, 256)
    if psim.IsItemDeactivatedAfterEdit():
        st.full_resolution = max(64, st.full_resolution // 16 * 16)
        app.request_view()
    _, st.preview_resolution = psim.SliderInt("drag resolution", st.preview_resolution, 24, 96)
    if psim.IsItemDeactivatedAfterEdit():
        st.preview_resolution = max(24, st.preview_resolution // 8 * 8)
    draw_stats(app)


def draw_stats(app) -> None:
    s = app.worker.last_stats.get("main") or {}
    if s:
        cached = " (cached)" if s.get("cached") else ""
        psim.Text(f"mesh {s.get('resolution', 0)}^3{cached}: {s.get('vertices', 0)} vertices")
        psim.Text(f"extract {s.get('extract_s', 0) * 1000:.0f} ms, pose {s.get('pose_s', 0) * 1000:.0f} ms "
                  f"({s.get('pose_mode', '')}), total {s.get('total_s', 0) * 1000:.0f} ms")
    if app.worker.busy("main"):
        psim.TextColored((1.0, 0.8, 0.3, 1.0), "computing...")
