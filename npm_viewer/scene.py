"""The 3D scene: the named Polyscope structures, what is visible, the camera and the frame shown.

Each node holds its data for every frame ([T, V, 3] vertices, T = 1 for a still body) and keeps its
Polyscope handle; a new frame or a new mesh of the same topology moves vertices in place
(update_vertex_positions), never re-registers. The frame index is the State's `frame`, the one
index every view reads: sync() brings every node to it. Which node is visible follows from the
State by one rule (visible()); the camera is framed by one function (framing()), also used by the
headless renderer (render.py). Units: metres, world = canonical axes.
Must not: draw widgets, talk to the worker or read files.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

from npm_core import space

BODY_COLOR = (0.86, 0.72, 0.62)
GT_COLOR = (0.45, 0.65, 0.9)
POINTS_COLOR = (0.2, 0.45, 0.95)
GROUPS = ("body", "gallery", "fit", "gt", "points", "removed", "facing")
REMOVED_COLOR = (0.35, 0.35, 0.35)  # depth points segmentation removed
FACING_COLOR = (0.95, 0.55, 0.1)  # the fitted body orientation arrow
BODY_BOX = (np.array([-0.5, -1.0, -0.2]), np.array([0.5, 0.8, 0.2]))  # metres: a standing body, framed alike for all
FOV_DEG = 45.0  # Polyscope's default vertical field of view
COMPARE_SHIFT = 1.0  # metres along +x of the truth beside the fit in the side-by-side mode


@dataclass(frozen=True)
class Sizes:
    """The scene's lengths in metres that depend on how big the domain's shapes are: Anny bodies'
    as given here, another domain's from sizes_for()."""

    box: tuple = BODY_BOX  # (lo, hi) [3] framed for a view of one still shape
    gallery_spacing: tuple = (1.3, 1.9)  # between gallery columns (poses) / rows (shapes)
    column_label: tuple = (0.0, 0.95, 0.0)  # a gallery column's label from its first shape's origin
    row_label: tuple = (-0.95, 0.1, 0.0)  # a gallery row's label from its first shape's origin
    compare_shift: float = COMPARE_SHIFT  # along +x of the truth beside the fit in the side-by-side mode
    label_lift: float = 0.08  # a label above the top of its mesh
    point_radius: float = 0.0025  # depth points
    removed_radius: float = 0.002  # depth points segmentation removed


def domain_scale(domain) -> float:
    """How big the shapes of `domain` (npm_core.domain.DomainInfo) are next to Anny bodies: both
    fill the model cube, so the ratio of their metres per model unit (1 for Anny bodies)."""
    return space.METRES_TO_MODEL / domain.model_per_metre


def sizes_for(domain) -> Sizes:
    """The Sizes of `domain`: Anny bodies' as they are; another domain's lengths scaled by its
    domain_scale, and its still shapes framed by the model cube (in metres, where the domain puts it)."""
    if domain.source == "anny":
        return Sizes()
    k = domain_scale(domain)
    lo, hi = domain.model_to_metres(np.array([[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]) * space.CUBE_BOUND)
    scaled = {f.name: getattr(Sizes, f.name) for f in fields(Sizes) if f.name != "box"}
    scaled = {n: tuple(k * x for x in v) if isinstance(v, tuple) else k * v for n, v in scaled.items()}
    # just above the shapes: an import leaves 0.1 model units free at the cube's top
    scaled["column_label"] = (0.0, float(domain.model_to_metres(np.array([0.0, 0.42, 0.0]))[1]), 0.0)
    return Sizes(box=(lo, hi), **scaled)


def visible(group: str, state) -> bool:
    """Whether a node of `group` is shown in `state`: the one visibility rule of the viewer."""
    view = state.view
    if group == "body":
        return view in ("shape", "pose") or (view == "transfer" and not state.gallery)
    if group == "gallery":
        return view == "transfer" and state.gallery
    if view != "sequence":
        return False
    compare = getattr(state, "compare", False)  # side by side: fit and truth both shown
    return {
        "fit": state.show_fit or compare,
        "gt": state.show_gt or compare,
        "points": state.show_points,
        "removed": state.show_removed and not compare,
        "facing": state.show_facing and not compare,
    }[group]


def shift(node_group: str, state, sizes: Sizes) -> float:
    """Metres along +x a node is drawn at: the truth beside the fit in the side-by-side mode."""
    return sizes.compare_shift if node_group == "gt" and getattr(state, "compare", False) else 0.0


def camera_key(state) -> str:
    """What the camera is framed for: the view (the gallery counts as its own)."""
    key = state.view + ("-gallery" if state.view == "transfer" and state.gallery else "")
    return key + ("-compare" if state.view == "sequence" and getattr(state, "compare", False) else "")


def framing(lo, hi, size, panel_width: int = 0, margin: float = 1.15, lift: float = 0.05):
    """Front camera (eye, target) that shows the box lo..hi [3] (metres, y up, viewer on +z) in a
    window of size (w, h) pixels whose left panel_width pixels are covered by a panel: the box is
    centred in the rest, with `margin` around it, the eye raised by `lift` x the half-height."""
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    w, h = size
    c = (lo + hi) / 2
    half = max((hi[1] - lo[1]) / 2, (hi[0] - lo[0]) / 2 * h / max(1, w - panel_width)) * margin
    dist = half / np.tan(np.deg2rad(FOV_DEG) / 2) + hi[2]
    x = c[0] - half * panel_width / max(1, h)  # shift the box right of the panel
    return (x, c[1] + lift * half, c[2] + dist), (x, c[1], c[2])


def grid_offsets(rows: int, cols: int, spacing: tuple[float, float]) -> np.ndarray:
    """Row-major offsets [rows * cols, 3] (float32) laying items out left to right, top to bottom:
    item k = (row k // cols, column k % cols) at (column * spacing[0], -row * spacing[1], 0)."""
    r, c = np.divmod(np.arange(rows * cols), cols)
    return np.stack([c * spacing[0], -r * spacing[1], np.zeros(rows * cols)], 1).astype(np.float32)


@dataclass
class Node:
    """One named structure: a surface mesh (faces) or a point cloud (faces None)."""

    name: str
    group: str
    frames: np.ndarray  # [T, V, 3] metres (T = 1: the same at every frame)
    faces: np.ndarray | None  # [F, 3] int; None for a point cloud
    key: object = None  # topology: a new mesh with the same key and vertex count moves in place
    color: tuple = BODY_COLOR
    transparency: float | None = None
    scalars: np.ndarray | None = None  # [T, V] per-vertex values, shown as colours (state.color_error)
    scalar_range: tuple = (0.0, 1.0)
    radius: float = 0.0025  # point clouds
    handle: object = None
    registrations: int = 0  # how often it was (re-)registered: updates in place keep this at 1
    shown_frame: int | None = None
    enabled: bool | None = None
    colored: bool | None = None
    shifted: float = 0.0  # the x offset applied to the structure (scene.shift)

    @property
    def count(self) -> int:
        return len(self.frames)

    def index(self, frame: int) -> int:
        """The row of `frames` shown at `frame` (a still node shows its one row; past the end, the last)."""
        return min(max(int(frame), 0), self.count - 1)

    def vertices(self, frame: int) -> np.ndarray:
        return self.frames[self.index(frame)]

    def bounds(self) -> tuple[np.ndarray, np.ndarray]:
        v = self.frames.reshape(-1, 3)
        return v.min(0), v.max(0)


@dataclass
class Scene:
    """The nodes by name, read through a State (frame, visibility, colours) by sync()."""

    state: object
    panel_width: int = 0  # pixels of the window covered by the UI panel (camera framing)
    sizes: Sizes = Sizes()  # lengths for the open checkpoint's domain (sizes_for)
    nodes: dict = field(default_factory=dict)
    framed: str | None = None  # camera_key the camera was last framed for
    ground: str | None = None

    # ---------------------------------------------------------------- nodes
    def set_mesh(self, name: str, group: str, vertices, faces, key=None, color=BODY_COLOR, **style) -> Node:
        """Show a mesh: vertices [V, 3] or [T, V, 3] metres, faces [F, 3]. Same name, key and vertex
        count as before: the vertices move in place; else the structure is registered anew."""
        return self._put(Node(name, group, _frames(vertices), np.asarray(faces), key, color, **style))

    def set_points(self, name: str, group: str, points, color=POINTS_COLOR, radius: float | None = None) -> Node:
        """Show a point cloud: points [N, 3] or [T, N, 3] metres (the same N in every frame); radius
        by default sizes.point_radius."""
        radius = self.sizes.point_radius if radius is None else radius
        return self._put(
            Node(name, group, _frames(points), None, ("points", np.shape(points)[-2]), color, radius=radius)
        )

    def remove_group(self, group: str) -> None:
        import polyscope as ps

        for name in [n for n, node in self.nodes.items() if node.group == group]:
            node = self.nodes.pop(name)
            if node.faces is None and ps.has_point_cloud(name):
                ps.remove_point_cloud(name)
            elif node.faces is not None and ps.has_surface_mesh(name):
                ps.remove_surface_mesh(name)

    def get(self, name: str) -> Node | None:
        return self.nodes.get(name)

    def group(self, group: str) -> list:
        return [n for n in self.nodes.values() if n.group == group]

    def _put(self, node: Node) -> Node:
        old = self.nodes.get(node.name)
        same = (
            old is not None
            and old.handle is not None
            and node.key is not None
            and old.key == node.key
            and old.frames.shape[1:] == node.frames.shape[1:]
            and (old.faces is None) == (node.faces is None)
        )
        self.nodes[node.name] = node
        node.registrations = old.registrations if old is not None else 0
        if same:
            node.handle, node.enabled = old.handle, old.enabled
            self._show_frame(node, force=True)
        else:
            self._register(node)
        self._apply_visibility(node)
        self._apply_colours(node)
        return node

    def _register(self, node: Node) -> None:
        import polyscope as ps

        v = node.vertices(self.state.frame)
        if node.faces is None:
            node.handle = ps.register_point_cloud(node.name, v, radius=node.radius, color=node.color)
        else:
            node.handle = ps.register_surface_mesh(
                node.name, v, node.faces, smooth_shade=True, color=node.color, material="clay", edge_width=0.0
            )
            if node.transparency is not None:
                node.handle.set_transparency(node.transparency)
        node.registrations += 1
        node.shown_frame, node.enabled, node.colored = node.index(self.state.frame), None, None
        node.shifted = 0.0

    # ---------------------------------------------------------------- frame, visibility, camera
    def frames(self) -> int:
        """Frames of the longest visible node (1 when everything shown is still)."""
        return max([n.count for n in self.nodes.values() if visible(n.group, self.state)], default=1)

    def sync(self) -> None:
        """Bring every node to the visibility rule, and every visible node to state.frame and the
        colour switch (hidden ones catch up when shown); frame the camera when the view changed.
        Cheap when nothing changed (call it every UI frame)."""
        for node in self.nodes.values():
            self._apply_visibility(node)
            if node.enabled:
                self._show_frame(node)
                self._apply_colours(node)
                self._apply_shift(node)
        self._apply_ground()
        self.frame_camera()

    def _show_frame(self, node: Node, force: bool = False) -> None:
        i = node.index(self.state.frame)
        if i == node.shown_frame and not force:
            return
        if node.faces is None:
            node.handle.update_point_positions(node.frames[i])
        else:
            node.handle.update_vertex_positions(node.frames[i])
        node.shown_frame = i
        if node.colored:
            node.colored = None  # the colours follow the frame

    def _apply_visibility(self, node: Node) -> None:
        on = visible(node.group, self.state)
        if on != node.enabled:
            node.handle.set_enabled(on)
            node.enabled = on

    def _apply_colours(self, node: Node) -> None:
        colored = node.scalars is not None and bool(self.state.color_error)
        if node.scalars is not None and colored != node.colored:
            if colored:
                node.handle.add_scalar_quantity(
                    "error (m)",
                    node.scalars[min(node.shown_frame, len(node.scalars) - 1)],
                    enabled=True,
                    cmap="reds",
                    vminmax=node.scalar_range,
                )
            else:
                node.handle.remove_all_quantities()
            node.colored = colored

    def _apply_shift(self, node: Node) -> None:
        dx = shift(node.group, self.state, self.sizes)
        if dx != node.shifted:
            t = np.eye(4)
            t[0, 3] = dx
            node.handle.set_transform(t)
            if node.transparency is not None:
                node.handle.set_transparency(1.0 if dx else node.transparency)  # opaque beside, see-through over
            node.shifted = dx

    def _apply_ground(self) -> None:
        import polyscope as ps

        # replay redraws every frame: the shadow pass costs ~3x a frame in software GL, so the
        # sequence view goes without it
        mode = "none" if self.state.view == "sequence" else "shadow_only"
        if mode != self.ground:
            ps.set_ground_plane_mode(mode)
            self.ground = mode

    def reframe(self) -> None:
        """Frame the camera again at the next sync (new content in the same view)."""
        self.framed = None

    def view_bounds(self):
        """(lo, hi) metres of what the view shows over all frames, or None when nothing is shown."""
        shown = [n for n in self.nodes.values() if visible(n.group, self.state)]
        if not shown:
            return None
        if all(n.group == "body" for n in shown):
            return self.sizes.box
        main = [n for n in shown if n.group in ("gallery", "fit")] or shown  # not the truth or the depth points
        lo, hi = zip(*(n.bounds() for n in main))
        lo, hi = np.min(lo, 0), np.max(hi, 0)
        side = [n for n in shown if shift(n.group, self.state, self.sizes)]
        for n in side:  # side by side: the shifted truth is framed too
            d = np.array([shift(n.group, self.state, self.sizes), 0.0, 0.0])
            lo, hi = np.minimum(lo, n.bounds()[0] + d), np.maximum(hi, n.bounds()[1] + d)
        return lo, hi

    def frame_camera(self) -> None:
        """Front view of what the current view shows, once per view (then the user's camera)."""
        import polyscope as ps

        key = camera_key(self.state)
        if key == self.framed:
            return
        box = self.view_bounds()
        if box is None:
            return
        self.framed = key
        eye, target = framing(*box, ps.get_window_size(), self.panel_width)
        ps.look_at(eye, target)

    def labels(self) -> list:
        """[(world position [3], text)] to write over the view: fit | truth in the side-by-side mode
        (the gallery's labels come from the app, which knows the identities)."""
        if self.state.view != "sequence" or not getattr(self.state, "compare", False):
            return []
        out = []
        for name, text in (("fit", "fit"), ("gt", "truth")):
            node = self.get(name)
            if node is not None and node.enabled:
                v = node.vertices(self.state.frame)
                lift = self.sizes.label_lift
                top = np.array([(v[:, 0].min() + v[:, 0].max()) / 2, v[:, 1].max() + lift, v[:, 2].mean()])
                out.append((top + [shift(node.group, self.state, self.sizes), 0, 0], text))
        return out

    def mesh_on_screen(self):
        """(vertices [V, 3] metres, faces) of the body or fitted mesh the view shows now, or None."""
        group = "fit" if self.state.view == "sequence" else "body"
        node = next(iter(self.group(group)), None)
        if node is None or not visible(group, self.state):
            return None
        return node.vertices(self.state.frame), node.faces


def _frames(vertices) -> np.ndarray:
    v = np.asarray(vertices, np.float32)
    return v[None] if v.ndim == 2 else v
