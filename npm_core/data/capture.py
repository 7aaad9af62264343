"""Subject segmentation and centring of depth captures: what of a frame is the subject, and where it stands.

For: real or unsegmented captures (floor, walls, other objects, a subject away from the world
origin). One frame: remove the floor (RANSAC plane near the up direction), far background (beyond
`max_depth_m`, or a plane wider than any body) and everything but the subject's connected
component and the parts that belong to it (a limb cut off by a depth step, or hidden in part behind
the subject: the far leg seen from the side). A sequence: user masks (`masks/NNNNNN.png`, nonzero = subject) take precedence; a
pixel box in `capture.json` ({"box": [x0, y0, x1, y1]}) picks the subject; the kept mask of each
frame is saved as `segmentation/NNNNNN.png` (255 = kept) with `segmentation/frames.json`.
Must not: change the depth values it keeps, fit bodies, or import torch.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .. import layout, space
from ..atomic import atomic_path, write_text_atomic
from .depth import Camera, DepthSequence, SequenceError


class SegmentationError(SequenceError):
    """A frame in which no usable subject was found (or whose scale is implausible)."""


@dataclass
class SegmentConfig:
    floor_tol_m: float = 0.03  # points this close to the floor plane are floor
    floor_max_tilt_deg: float = 45.0  # floor normal within this angle of the up prior
    floor_min_extent_m: float = 1.0  # a plane narrower than this is not a floor
    wall_min_extent_m: float = 2.0  # any plane wider than this is background (no body is that flat)
    max_depth_m: float = 6.0  # farther pixels are background
    edge_m: float = 0.1  # neighbouring pixels further apart in depth are not connected
    min_points: int = 500  # smallest subject, pixels of a 320x240 frame (scaled by the frame's pixel count)
    centre_radius_m: float = 1.5  # subject's median point at most this far from the optical axis
    # components touching 3 image borders, or both the left and the right one, are background
    attach_m: float = 0.15  # other components this close (3D) to the subject are kept with it
    occluded_m: float = 0.5  # ... and those this close that touch it in the image from behind (a limb it hides)
    min_size_m: float = 0.5  # plausible subject extent (larger of its spans), metres
    max_size_m: float = 3.0
    ransac_iters: int = 200
    ransac_sample: int = 3000
    seed: int = 0
    behind_m: float = 0.1  # the subject's centre lies this far behind its visible surface
    centre_tolerance_m: float = 0.25  # a subject centred this close to the origin is not moved

    SUBJECT_LENGTHS = (
        "floor_tol_m",  # a floor band as thick as a body's 3 cm would swallow a whole hand
        "floor_min_extent_m",
        "wall_min_extent_m",
        "edge_m",
        "centre_radius_m",
        "attach_m",
        "occluded_m",
        "min_size_m",
        "max_size_m",
        "behind_m",
        "centre_tolerance_m",
    )

    @classmethod
    def for_scale(cls, model_per_metre: float) -> SegmentConfig:
        """The defaults (set for bodies, 0.4 model units per metre) with every length that describes
        the subject, or is measured against it, scaled to a domain of another size (a hand: 2.9 units
        per metre, lengths x 0.14); the camera's range stays as it is."""
        k = space.METRES_TO_MODEL / model_per_metre
        cfg = cls()
        return replace(cfg, **{name: getattr(cfg, name) * k for name in cls.SUBJECT_LENGTHS})


@dataclass
class FrameSegmentation:
    """What was kept of one frame and what was seen. Counts are pixels."""

    mask: np.ndarray  # [H, W] bool, kept = subject
    source: str  # "masks" (user's), "box" or "auto"
    valid: int  # pixels with a depth
    floor: int
    background: int  # beyond max_depth_m or on a wide plane
    blobs: int  # in components other than the subject
    kept: int
    centre_m: np.ndarray  # [3] world metres, median of the kept points
    size_m: float  # larger of the kept points' spans (1st-99th percentile), metres
    floor_normal: np.ndarray | None  # [3] camera frame, unit, pointing up; None without a floor

    def summary(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "mask"}
        d["centre_m"] = np.round(self.centre_m, 4).tolist() if np.isfinite(self.centre_m).all() else None
        d["size_m"] = round(float(self.size_m), 4)
        d["floor_normal"] = None if self.floor_normal is None else np.round(self.floor_normal, 5).tolist()
        return d


# ------------------------------------------------------------------------- geometry


def camera_points(camera: Camera, depth: np.ndarray, pixels: np.ndarray) -> np.ndarray:
    """Depth [H,W] metres at flat pixel indices [N] -> camera-frame points [N,3] (OpenCV axes, metres)."""
    v, u = np.divmod(pixels, depth.shape[1])
    z = depth.ravel()[pixels].astype(np.float64)
    return np.stack([(u - camera.cx) / camera.fx * z, (v - camera.cy) / camera.fy * z, z], -1)


def up_in_camera(camera: Camera) -> np.ndarray:
    """The world's up (+y) in the camera frame [3]."""
    return camera.pose[:3, :3].T @ np.array([0.0, 1.0, 0.0])


def _span(points: np.ndarray) -> np.ndarray:
    """Per-axis 1st-99th percentile span of points [N,D]."""
    lo, hi = np.percentile(points, [1, 99], axis=0)
    return hi - lo


def _plane_extent(points: np.ndarray, normal: np.ndarray) -> float:
    """Larger in-plane span (1st-99th percentile) of points [N,3] on a plane with unit normal."""
    a = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(normal, a)
    points = points[:: max(1, len(points) // 5000)]
    return float(_span(np.stack([points @ a, points @ b], 1)).max())


def fit_plane(
    points: np.ndarray,
    tol: float,
    rng: np.random.Generator,
    iters: int,
    sample: int,
    prior: np.ndarray | None = None,
    max_tilt_deg: float = 90.0,
):
    """RANSAC plane of points [N,3]: (unit normal [3], offset d with n.p + d = 0, inlier mask [N])
    or None. With `prior`, only normals within max_tilt_deg of it count (returned pointing its way).
    The winner is refined by least squares on its inliers."""
    if len(points) < 3:
        return None
    s = points[rng.integers(0, len(points), sample)]
    tri = s[rng.integers(0, len(s), (iters, 3))]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-9
    n = n[ok] / norm[ok, None]
    tri = tri[ok]
    if prior is not None:
        n = np.where((n @ prior)[:, None] < 0, -n, n)
        keep = n @ prior >= np.cos(np.deg2rad(max_tilt_deg))
        n, tri = n[keep], tri[keep]
    if not len(n):
        return None
    d = -(n * tri[:, 0]).sum(1)
    score = (np.abs(s @ n.T + d) < tol).sum(0)
    best = int(np.argmax(score))
    n, d = n[best], d[best]
    inl = np.abs(points @ n + d) < tol
    if inl.sum() >= 3:  # least-squares refinement on the inliers
        q = points[inl][rng.integers(0, int(inl.sum()), 20_000)]
        c = q.mean(0)
        n2 = np.linalg.svd(q - c, full_matrices=False)[2][-1]
        n2 = n2 if n2 @ n >= 0 else -n2
        if prior is None or n2 @ prior >= np.cos(np.deg2rad(max_tilt_deg)):
            n, d = n2, -float(n2 @ c)
            inl = np.abs(points @ n + d) < tol
    return n, float(d), inl


def _components(depth: np.ndarray, keep: np.ndarray, edge_m: float):
    """Connected components of the kept pixels [H,W] bool, 4-neighbours closer than edge_m in depth.
    Returns (labels [H,W] int, -1 = not kept; number of components)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    idx = np.full(depth.shape, -1, np.int64)
    n = int(keep.sum())
    idx[keep] = np.arange(n)
    rows, cols = [], []
    for a, b, da, db in [
        (idx[:, :-1], idx[:, 1:], depth[:, :-1], depth[:, 1:]),
        (idx[:-1], idx[1:], depth[:-1], depth[1:]),
    ]:
        e = (a >= 0) & (b >= 0) & (np.abs(da - db) < edge_m)
        rows.append(a[e])
        cols.append(b[e])
    r, c = np.concatenate(rows), np.concatenate(cols)
    count, lab = connected_components(coo_matrix((np.ones(len(r), bool), (r, c)), shape=(n, n)), directed=False)
    labels = np.full(depth.shape, -1, np.int64)
    labels[keep] = lab
    return labels, count


# ------------------------------------------------------------------------- one frame


def _world(camera: Camera, p_cam: np.ndarray) -> np.ndarray:
    return p_cam @ camera.pose[:3, :3].T + camera.pose[:3, 3]


def _seen(t, text: str, z: np.ndarray, floor: int, background: int) -> str:
    """'frame t: text (what was seen)'; z [N]: depths of the frame's valid pixels."""
    med = f", median {np.median(z):.1f} m" if len(z) else ""
    return f"frame {t}: {text} ({len(z)} pixels with depth{med}: {floor} floor, {background} background)"


def _check_scale(t, size: float, n: int, dist: float, cfg: SegmentConfig, z, floor, background):
    if not cfg.min_size_m <= size <= cfg.max_size_m:
        raise SegmentationError(
            _seen(
                t,
                f"the subject ({n} points, {dist:.1f} m from the camera) is {size:.2f} m across, "
                f"outside the plausible {cfg.min_size_m}-{cfg.max_size_m} m: wrong depth scale?",
                z,
                floor,
                background,
            )
        )


def segment_frame(
    depth: np.ndarray,
    camera: Camera,
    cfg: SegmentConfig | None = None,
    box=None,
    user_mask: np.ndarray | None = None,
    up: np.ndarray | None = None,
    frame: int = 0,
) -> FrameSegmentation:
    """Segment the subject of one depth frame [H,W] metres (0 = none).

    user_mask [H,W] bool: taken as the subject (where there is depth), nothing else is done but
    the scale check. box (x0, y0, x1, y1) pixels: the subject is the component with most pixels in
    it; otherwise the largest component of plausible size whose median point is within
    centre_radius_m of the optical axis. up [3] camera frame: floor prior (default: the world's up).
    Raises SegmentationError naming `frame` and what was seen when no subject is found."""
    cfg = cfg or SegmentConfig()
    cfg = replace(cfg, min_points=max(10, round(cfg.min_points * depth.size / (320 * 240))))
    pix = np.flatnonzero(depth.ravel() > 0)  # the valid pixels; everything below is per valid pixel
    valid = len(pix)
    if not valid:  # nothing measured: nothing to keep (a fit carries such frames by its temporal term)
        return FrameSegmentation(
            np.zeros(depth.shape, bool),
            "auto" if user_mask is None else "masks",
            0,
            0,
            0,
            0,
            0,
            np.full(3, np.nan),
            0.0,
            None,
        )
    p = camera_points(camera, depth, pix)
    floor_n, n_floor, n_bg = None, 0, 0
    if user_mask is not None:
        sel, source = user_mask.ravel()[pix], "masks"
        if not sel.any():
            raise SegmentationError(
                f"frame {frame}: the user mask marks no pixel with depth ({valid} pixels have depth)"
            )
    else:
        source = "box" if box is not None else "auto"
        rng = np.random.default_rng(cfg.seed)
        keep = p[:, 2] <= cfg.max_depth_m
        n_bg = int(valid - keep.sum())
        prior = up_in_camera(camera) if up is None else np.asarray(up, float) / np.linalg.norm(up)
        for wall in [False, True, True]:  # the floor (near the up prior), then up to two walls
            q = p[keep]
            pl = fit_plane(
                q,
                cfg.floor_tol_m,
                rng,
                cfg.ransac_iters,
                cfg.ransac_sample,
                None if wall else prior,
                cfg.floor_max_tilt_deg,
            )
            wide = cfg.wall_min_extent_m if wall else cfg.floor_min_extent_m
            # a floor has (almost) nothing below it: not a horizontal limb above the legs
            below = 0 if pl is None or wall else ((q @ pl[0] + pl[1]) < -cfg.floor_tol_m).mean()
            if pl is None or pl[2].sum() < cfg.min_points or below > 0.05 or _plane_extent(q[pl[2]], pl[0]) < wide:
                if wall:
                    break
                continue
            # the floor takes what lies below it too (noise, reflections)
            on = pl[2] if wall else (q @ pl[0] + pl[1]) < cfg.floor_tol_m
            if wall:
                n_bg += int(on.sum())
            else:
                floor_n, n_floor = pl[0], int(on.sum())
            keep[keep] = ~on
        sel = _choose(depth, pix, p, keep, cfg, box, frame, n_floor, n_bg)
    kept = p[sel]
    size = float(_span(kept).max()) if len(kept) > 1 else 0.0
    _check_scale(frame, size, len(kept), float(np.median(kept[:, 2])), cfg, p[:, 2], n_floor, n_bg)
    mask = np.zeros(depth.size, bool)
    mask[pix[sel]] = True
    return FrameSegmentation(
        mask.reshape(depth.shape),
        source,
        valid,
        n_floor,
        n_bg,
        int(valid - n_floor - n_bg - sel.sum()),
        int(sel.sum()),
        np.median(_world(camera, kept), 0),
        size,
        floor_n,
    )


def _choose(depth, pix, p, keep, cfg, box, frame, n_floor, n_bg) -> np.ndarray:
    """The subject among the components of the kept points: bool [N] over the valid pixels."""
    img = np.zeros(depth.size, bool)
    img[pix[keep]] = True
    labels, count = _components(depth, img.reshape(depth.shape), cfg.edge_m)
    lab = labels.ravel()[pix]  # [N], -1 = not kept
    sizes = np.bincount(lab[keep], minlength=count)
    big = [c for c in np.argsort(-sizes) if sizes[c] >= cfg.min_points]
    if box is not None:
        x0, y0, x1, y1 = box
        inside = labels[y0:y1, x0:x1]
        inside = np.bincount(inside[inside >= 0], minlength=count)
        big = [c for c in np.argsort(-inside) if inside[c] >= cfg.min_points]
        where = f"with {cfg.min_points} points inside the box {list(box)}"
    else:
        where = f"within {cfg.centre_radius_m:.2g} m of the image centre"
    top, bottom, left, right = (set(np.unique(b)) for b in (labels[0], labels[-1], labels[:, 0], labels[:, -1]))
    seen, spanning = [], 0
    for c in big:
        q = p[lab == c]
        med = np.median(q, 0)
        size = float(_span(q).max())
        if box is None and np.hypot(med[0], med[1]) > cfg.centre_radius_m:
            continue
        borders = [c in b for b in (top, bottom, left, right)]
        if sum(borders) >= 3 or (borders[2] and borders[3]):  # wall- or floor-like, at any depth scale
            spanning += 1
            continue
        if cfg.min_size_m <= size <= cfg.max_size_m:
            return _attach(labels, depth, pix, c, p, keep, cfg)
        seen.append((int(sizes[c]), med[2], size))
    if seen:  # candidates were there, but none of the subject's size
        n, dist, size = seen[0]
        raise SegmentationError(
            _seen(
                frame,
                f"no component of the subject's size ({cfg.min_size_m:.2f}-{cfg.max_size_m:.2f} m) {where}; "
                f"the largest there was {n} points, {size:.2f} m across, {dist:.1f} m away: "
                f"wrong depth scale?",
                p[:, 2],
                n_floor,
                n_bg,
            )
        )
    text = f"no component larger than {cfg.min_points} points {where}"
    if spanning:
        text += f" apart from {spanning} spanning the image (background)"
    if count:
        c = int(np.argmax(sizes))
        text += f"; largest was {int(sizes[c])} points at {np.median(p[lab == c, 2]):.1f} m"
    med = np.median(p[:, 2]) if len(p) else 1.0
    if not 0.5 <= med <= cfg.max_depth_m:  # a whole body in view is at least this far
        text += f"; the median depth {med:.2f} m is outside 0.5-{cfg.max_depth_m} m: wrong depth scale?"
    raise SegmentationError(_seen(frame, text, p[:, 2], n_floor, n_bg))


def _behind(labels: np.ndarray, depth: np.ndarray, mask_img: np.ndarray) -> np.ndarray:
    """Labels of the components that touch mask_img [H,W] in the image (4-neighbours) and are
    farther from the camera than it where they touch: the parts it hides."""
    found = []
    for a, b, da, db, ma, mb in [
        (labels[:, :-1], labels[:, 1:], depth[:, :-1], depth[:, 1:], mask_img[:, :-1], mask_img[:, 1:]),
        (labels[:-1], labels[1:], depth[:-1], depth[1:], mask_img[:-1], mask_img[1:]),
    ]:
        found += [b[ma & ~mb & (b >= 0) & (db > da)], a[mb & ~ma & (a >= 0) & (da > db)]]
    return np.unique(np.concatenate(found))


def _attach(labels, depth, pix, subject: int, p, keep, cfg, rounds: int = 4) -> np.ndarray:
    """The subject's component plus, transitively, the components that belong to it: those within
    attach_m (3D) of it (a limb cut off by steep depth steps), and those within occluded_m that
    touch it in the image from behind (a limb that disappears behind the subject, such as the far
    leg seen past the near one from the side or from above). Returns bool [N] over the valid
    points p [N,3], whose pixels (flat indices) are pix and labels labels [H,W]."""
    from scipy.spatial import cKDTree

    lab = labels.ravel()[pix]
    mask = lab == subject
    reach = max(cfg.attach_m, cfg.occluded_m)
    others = keep & ~mask
    for _ in range(rounds):
        lo, hi = p[mask].min(0) - reach, p[mask].max(0) + reach
        cand = others & (p >= lo).all(-1) & (p <= hi).all(-1)  # points that may be in reach
        if not cand.any():
            break
        mask_img = np.zeros(labels.size, bool)
        mask_img[pix[mask]] = True
        hidden = np.isin(lab, _behind(labels, depth, mask_img.reshape(labels.shape)))
        d, _ = cKDTree(p[mask]).query(p[cand], distance_upper_bound=reach)
        near = np.zeros_like(cand)
        near[cand] = (d <= cfg.attach_m) | (hidden[cand] & (d <= cfg.occluded_m))
        new = np.isin(lab, np.unique(lab[near])) & others  # whole components
        if not new.any():
            break
        mask |= new
        others &= ~new
    return mask


# ------------------------------------------------------------------------- sequences


def read_box(directory) -> tuple | None:
    """The subject box [x0, y0, x1, y1] from a sequence's capture.json, or None."""
    path = layout.sequence_capture_path(directory)
    if not path.is_file():
        return None
    try:
        box = json.loads(path.read_text()).get("box")
    except (json.JSONDecodeError, AttributeError) as e:
        raise SequenceError(f"{path}: not a JSON object ({e})") from None
    return None if box is None else tuple(box)


def check_box(box, width: int, height: int, what: str = "box") -> tuple:
    """(x0, y0, x1, y1) ints with 0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height, or SequenceError."""
    try:
        x0, y0, x1, y1 = (round(float(b)) for b in box)
    except (TypeError, ValueError, OverflowError):
        raise SequenceError(f"{what} {box!r}: expected four pixel coordinates x0 y0 x1 y1") from None
    if not (0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height):
        raise SequenceError(f"{what} {[x0, y0, x1, y1]}: expected 0 <= x0 < x1 <= {width} and 0 <= y0 < y1 <= {height}")
    return x0, y0, x1, y1


def read_mask(path: Path, shape) -> np.ndarray:
    """A mask PNG (nonzero = subject) as [H,W] bool, checked against the frame's shape (H, W)."""
    from PIL import Image

    try:
        a = np.asarray(Image.open(path))
    except OSError as e:
        raise SequenceError(f"{path}: not a readable image ({e})") from None
    if a.ndim == 3:
        a = a[..., :3].max(-1) if a.shape[-1] >= 3 else a[..., 0]
    if a.shape != tuple(shape):
        raise SequenceError(f"{path}: size {a.shape[::-1]} (w, h) differs from the depth frames' {tuple(shape)[::-1]}")
    return a != 0


def _save_png_atomic(path: Path, image: np.ndarray) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp)


def segment_sequence(seq: DepthSequence, cfg: SegmentConfig | None = None, box=None, save: bool = True):
    """Segment every frame of a sequence: list of FrameSegmentation.

    masks/NNNNNN.png in the sequence directory (all frames) take precedence; box (else capture.json's)
    picks the subject. save: write segmentation/NNNNNN.png and segmentation/frames.json."""
    cam, directory = seq.camera, Path(seq.path)
    mask_dir = layout.sequence_masks_dir(directory)
    use_masks = mask_dir.is_dir() and any(mask_dir.glob("*.png"))
    if box is None and not use_masks:
        box = read_box(directory)
    if box is not None:
        box = check_box(box, cam.width, cam.height)
    out = []
    for t, d in enumerate(seq.depths):
        user = None
        if use_masks:
            f = layout.sequence_mask_path(directory, t)
            if not f.is_file():
                raise SequenceError(f"{f}: missing ({mask_dir} has masks, so every depth frame needs one)")
            user = read_mask(f, d.shape)
        out.append(segment_frame(d, cam, cfg, box, user, frame=t))
    if save:
        save_segments(directory, out)
    return out


def save_segments(directory, segments) -> None:
    """Write what segmentation kept into a sequence directory: segmentation/NNNNNN.png (255 = kept)
    per frame and segmentation/frames.json (FrameSegmentation.summary of each). A read-only
    sequence is warned about, not an error."""
    seg_dir = layout.sequence_segmentation_dir(directory)
    try:
        seg_dir.mkdir(exist_ok=True)
        for t, s in enumerate(segments):
            _save_png_atomic(layout.sequence_segmentation_path(directory, t), s.mask.astype(np.uint8) * 255)
        write_text_atomic(
            layout.sequence_segmentation_summary_path(directory), json.dumps([s.summary() for s in segments], indent=1)
        )
    except OSError as e:  # a read-only sequence still segments
        warnings.warn(f"{seg_dir}: segmentation not saved ({e})", stacklevel=2)


def read_segmentation(directory, frames: int) -> np.ndarray | None:
    """The kept masks [T, H, W] bool that a fit saved into a sequence (segmentation/NNNNNN.png),
    for frames 0..frames-1; None when the sequence has none for every one of them."""
    from PIL import Image

    paths = [layout.sequence_segmentation_path(directory, t) for t in range(frames)]
    if not paths or not all(p.is_file() for p in paths):
        return None
    return np.stack([np.asarray(Image.open(p)) > 0 for p in paths])


# ------------------------------------------------------------------------- centring


def subject_centre(camera: Camera, depths, masks, frames: int = 5, behind_m: float = 0.1) -> np.ndarray:
    """World position [3] metres of the subject's centre: the median of the kept points of the first
    `frames` frames that have any, moved behind_m further from the camera along the ray through it (a camera sees
    the near side: the body's centre lies about half a body depth behind its visible surface).
    depths [T,H,W] metres, masks [T,H,W] bool."""
    seen = [t for t, m in enumerate(masks) if m.any()][:frames]
    if not seen:
        raise SegmentationError(f"no subject point in any of the {len(masks)} frames to centre on")
    pts = np.concatenate([camera_points(camera, depths[t], np.flatnonzero(masks[t])) for t in seen])
    c = np.median(pts, 0)
    c = c + behind_m * c / np.linalg.norm(c)
    return _world(camera, c[None])[0]


def centring_offset(centre: np.ndarray, tolerance_m: float = 0.25) -> np.ndarray:
    """The world translation [3] metres that brings a subject centred at `centre` to the origin;
    zero when it is already within tolerance_m (the fit's per-frame translation covers that)."""
    centre = np.asarray(centre, float)
    return np.zeros(3) if np.linalg.norm(centre) <= tolerance_m else -centre


def translated(seq: DepthSequence, offset: np.ndarray, depths: np.ndarray | None = None) -> DepthSequence:
    """The same sequence with its world moved by offset [3] metres (camera pose and gt meshes);
    `depths` [T,H,W] replaces the depth frames (e.g. masked to the subject)."""
    pose = seq.camera.pose.copy()
    pose[:3, 3] += offset
    cam = replace(seq.camera, world_from_camera=pose.tolist())
    gt = None if seq.gt_vertices is None else (seq.gt_vertices + np.asarray(offset, np.float32)).astype(np.float32)
    return replace(seq, camera=cam, depths=seq.depths if depths is None else depths, gt_vertices=gt)


@dataclass
class Prepared:
    sequence: DepthSequence  # subject-only depth, world moved by offset_m
    segments: list  # [T] FrameSegmentation
    centre_m: np.ndarray  # [3] the subject's centre in the original world, metres
    offset_m: np.ndarray  # [3] added to the original world (0 when already centred)

    @property
    def removed(self) -> int:
        """Pixels with depth that segmentation dropped, over all frames."""
        return sum(s.valid - s.kept for s in self.segments)

    def summary(self) -> dict:
        """What preparing did, for a fit's metadata: pixels kept and removed, centre and offset (metres)."""
        return {
            "kept": int(sum(s.kept for s in self.segments)),
            "removed": int(self.removed),
            "sources": sorted({s.source for s in self.segments}),
            "centre_m": np.round(self.centre_m, 4).tolist(),
            "offset_m": np.round(self.offset_m, 4).tolist(),
        }

    def save(self, directory) -> None:
        """Write the kept masks (save_segments) and segmentation/centre.json into a sequence directory."""
        save_segments(directory, self.segments)
        path = layout.sequence_centre_path(directory)
        try:
            write_text_atomic(
                path,
                json.dumps(
                    {"centre_m": np.round(self.centre_m, 4).tolist(), "offset_m": np.round(self.offset_m, 4).tolist()}
                ),
            )
        except OSError as e:
            warnings.warn(f"{path}: not saved ({e})", stacklevel=2)


def prepare(seq: DepthSequence, cfg: SegmentConfig | None = None, box=None, save: bool = True) -> Prepared:
    """Segment every frame and centre the subject: depth outside the subject becomes 0 (no
    measurement) and the world moves by the centring offset. A fit of `.sequence` finds translations
    in the moved world: minus space.metres_to_model(offset_m), they are the original world's."""
    segs = segment_sequence(seq, cfg, box, save=False)
    masks = np.stack([s.mask for s in segs])
    depths = np.where(masks, seq.depths, 0.0).astype(np.float32)
    cfg = cfg or SegmentConfig()
    centre = subject_centre(seq.camera, depths, masks, behind_m=cfg.behind_m)
    offset = centring_offset(centre, cfg.centre_tolerance_m)
    prep = Prepared(translated(seq, offset, depths), segs, centre, offset)
    if save:
        prep.save(seq.path)
    return prep
