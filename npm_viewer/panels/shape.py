"""Shape panel: training shape codes (labelled by phenotypes or attributes), A/B + alpha morph,
prior samples, a slider per attribute of the checkpoint's semantics (Anny: the phenotypes).

Actions are plain functions of a Viewer (interface.py; tests call them); draw() is the ImGui layout.
"""

from __future__ import annotations

import numpy as np
import polyscope.imgui as psim

from npm_core import compose

from .. import selection
from .common import delta_sliders, identity_filter, pca_sliders, search_combo, slider

TITLE = "Shape"


def set_codes(viewer, a: int | None = None, b: int | None = None, alpha: float | None = None) -> None:
    st = viewer.state
    if a is not None:
        st.shape_a, st.sampled = int(a), None
    if b is not None:
        st.shape_b = int(b)
    if alpha is not None:
        st.alpha = float(alpha)
    viewer.request_mesh()


def sample_prior(viewer) -> None:
    """Replace A by a code drawn from the Gaussian of the training codes (seeded by the draw count)."""
    st = viewer.state
    st.sampled = compose.prior_sample(viewer.model.shape_codes, np.random.default_rng(st.prior_draws)).tolist()
    st.prior_draws += 1
    st.alpha = 0.0
    viewer.request_mesh()


def slider_items(m) -> list:
    """(index, label, lo, hi) of the shape sliders: one per attribute of the semantics
    (semantics.names), ranged over the attribute's training range; Anny's phenotypes over [0, 1]."""
    sem = m.semantics
    if sem is None:
        return []
    if sem.attribute_names is None:  # Anny's phenotypes, each in [0, 1]
        return [(i, name, 0.0, 1.0) for i, name in enumerate(sem.names)]
    lo, hi = np.asarray(sem.phenotype_range, np.float64).tolist()
    return [(i, n, lo[i], hi[i] if hi[i] > lo[i] else lo[i] + 1.0) for i, n in enumerate(sem.names)]


def set_phenotype(viewer, name: str, value: float) -> None:
    """Ask for attribute (Anny: phenotype) `name` = value: the code moves along the semantic map by
    the difference from the current shape's attributes (what the map does not explain of the code is kept)."""
    i = viewer.model.semantics.names.index(name)
    st = viewer.state
    st.phenotype_delta[i] = float(value) - float(selection.base_phenotypes(st, viewer.model)[i])
    viewer.request_mesh()


def draw_semantic(viewer) -> None:
    st, m = viewer.state, viewer.model
    word = "phenotype" if m.domain.source == "anny" else "attribute"
    if not psim.CollapsingHeader(f"{word.capitalize()} and PCA sliders", psim.ImGuiTreeNodeFlags_DefaultOpen):
        return
    if m.semantics is None:
        psim.TextWrapped(m.note)
        return
    fmt = "%.2f" if m.semantics.attribute_names is None else "%.3f"
    delta_sliders(
        viewer, slider_items(m), selection.base_phenotypes(st, m), st.phenotype_delta, m.semantics.phenotype_range, fmt
    )
    pca_sliders(viewer, "PC", m.semantics.shape_pca, st.shape_pca)
    if psim.SmallButton(f"reset {word}/PCA sliders"):
        st.zero("phenotype_delta", "shape_pca")
        viewer.request_mesh()


def draw(viewer) -> None:
    st, m = viewer.state, viewer.model
    if m is None:
        psim.TextWrapped(
            "No checkpoint open. Type a checkpoint directory above (e.g. checkpoints/body-v2) "
            "and press Open, or drop its folder on the window."
        )
        return
    labels = m.shape_labels
    what = "sex, age, weight/height/muscle" if m.domain.source == "anny" else "attributes"
    psim.TextDisabled(f"{len(labels)} training identities (id, {what})")
    identity_filter(viewer)
    if st.sampled is not None:
        psim.Text("A: a code sampled from the prior")
        if psim.SmallButton("back to training code A"):
            set_codes(viewer, a=st.shape_a)
    else:
        changed, i = search_combo(viewer, "shape A", st.shape_a, labels)
        if changed:
            set_codes(viewer, a=i)
    changed, j = search_combo(viewer, "shape B", st.shape_b, labels)
    if changed:
        set_codes(viewer, b=j)
    slider(viewer, "alpha (A -> B)", st.alpha, lambda v: setattr(st, "alpha", v))
    if psim.Button("Sample from the prior"):
        sample_prior(viewer)
    psim.SameLine()
    if psim.Button("Swap A/B") and st.sampled is None:
        set_codes(viewer, a=st.shape_b, b=st.shape_a)
    draw_semantic(viewer)
    psim.Separator()
    changed, st.full_resolution = psim.SliderInt("full resolution", st.full_resolution, 64, 256)
    if psim.IsItemDeactivatedAfterEdit():
        st.full_resolution = max(64, st.full_resolution // 16 * 16)
        viewer.request_mesh()
    _, st.preview_resolution = psim.SliderInt("drag resolution", st.preview_resolution, 24, 96)
    if psim.IsItemDeactivatedAfterEdit():
        st.preview_resolution = max(24, st.preview_resolution // 8 * 8)
    draw_stats(viewer)


def draw_stats(viewer) -> None:
    busy, s = viewer.worker_status("main")
    if s:
        cached = " (cached)" if s.get("cached") else ""
        psim.Text(f"mesh {s.get('resolution', 0)}^3{cached}: {s.get('vertices', 0)} vertices")
        psim.Text(
            f"extract {s.get('extract_s', 0) * 1000:.0f} ms, pose {s.get('pose_s', 0) * 1000:.0f} ms "
            f"({s.get('pose_mode', '')}), total {s.get('total_s', 0) * 1000:.0f} ms"
        )
    if busy:
        psim.TextColored((1.0, 0.8, 0.3, 1.0), "computing...")
