"""SDF samples of canonical meshes (the shape stage's training data), and exact signed
distance / inside tests against triangle meshes (also used by metrics).

Signs come from the generalised winding number (NVIDIA warp's BVH queries), robust even
for the nested components of an Anny body (eyes inside the head); no O(N*F) loops here.
"""

from __future__ import annotations

import functools

import numpy as np


@functools.lru_cache(maxsize=1)
def _warp():
    import warp as wp

    wp.config.quiet = True
    wp.init()

    @wp.kernel
    def signed_distance_kernel(
        mesh: wp.uint64,
        points: wp.array(dtype=wp.vec3),
        out_dist: wp.array(dtype=float),
        out_closest: wp.array(dtype=wp.vec3),
        out_face: wp.array(dtype=int),
    ):
        tid = wp.tid()
        p = points[tid]
        q = wp.mesh_query_point_sign_winding_number(mesh, p, 1.0e6, 2.0, 0.5)
        if q.result:
            c = wp.mesh_eval_position(mesh, q.face, q.u, q.v)
            out_dist[tid] = q.sign * wp.length(p - c)
            out_closest[tid] = c
            out_face[tid] = q.face
        else:
            out_dist[tid] = 1.0e6
            out_closest[tid] = p
            out_face[tid] = -1

    @wp.kernel
    def escape_kernel(
        mesh: wp.uint64,
        origins: wp.array(dtype=wp.vec3),
        normals: wp.array(dtype=wp.vec3),
        dirs: wp.array(dtype=wp.vec3),
        out: wp.array(dtype=int),
    ):
        i, k = wp.tid()
        d = dirs[k]
        n = normals[i]
        if wp.dot(d, n) > 0.05:
            q = wp.mesh_query_ray(mesh, origins[i] + n * 1.0e-4, d, 1.0e6)
            if not q.result:
                wp.atomic_add(out, i, 1)

    return wp, signed_distance_kernel, escape_kernel


def warp_mesh(vertices: np.ndarray, faces: np.ndarray):
    """A warp BVH mesh (with winding-number support) of vertices [V,3], faces [F,3]."""
    wp = _warp()[0]
    return wp.Mesh(
        points=wp.array(np.ascontiguousarray(vertices, dtype=np.float32), dtype=wp.vec3),
        indices=wp.array(np.ascontiguousarray(faces, dtype=np.int32).reshape(-1), dtype=wp.int32),
        support_winding_number=True,
    )


def signed_distance(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray, mesh=None):
    """Signed distance of points [N,3] to the mesh (negative inside), in the mesh's units.

    Returns (sdf [N] float32, closest points [N,3], closest face [N])."""
    wp, kernel, _ = _warp()
    mesh = mesh if mesh is not None else warp_mesh(vertices, faces)
    pts = wp.array(np.ascontiguousarray(points, dtype=np.float32), dtype=wp.vec3)
    n = len(points)
    dist = wp.zeros(n, dtype=float)
    closest = wp.zeros(n, dtype=wp.vec3)
    face = wp.zeros(n, dtype=int)
    wp.launch(kernel, dim=n, inputs=[mesh.id, pts, dist, closest, face])
    return dist.numpy(), closest.numpy(), face.numpy()


def inside(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Boolean inside test of points [N,3] (winding number >= 0.5)."""
    return signed_distance(vertices, faces, points)[0] < 0


def escaping_rays(vertices: np.ndarray, faces: np.ndarray, directions: int = 256) -> np.ndarray:
    """How many of `directions` rays (a Fibonacci sphere, those leaving each face's front side) from
    each face's centre reach infinity without hitting the mesh: 0 for a face hidden in a cavity
    (a mouth interior), about half of them for a face on a convex part. Returns int [F]."""
    wp, _, kernel = _warp()
    tri = np.asarray(vertices, np.float64)[faces]
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.maximum(np.linalg.norm(normal, axis=1, keepdims=True), 1e-20)
    i = np.arange(directions) + 0.5
    polar, azimuth = np.arccos(1 - 2 * i / directions), np.pi * (1 + 5**0.5) * i
    dirs = np.stack([np.cos(azimuth) * np.sin(polar), np.sin(azimuth) * np.sin(polar), np.cos(polar)], 1)
    out = wp.zeros(len(faces), dtype=int)
    vec = lambda a: wp.array(np.ascontiguousarray(a, dtype=np.float32), dtype=wp.vec3)  # noqa: E731
    mesh = warp_mesh(vertices, faces)
    wp.launch(kernel, dim=(len(faces), directions), inputs=[mesh.id, vec(tri.mean(1)), vec(normal), vec(dirs), out])
    return out.numpy()


def sample_surface(vertices: np.ndarray, faces: np.ndarray, count: int, rng: np.random.Generator):
    """Area-weighted surface samples: (face index [N], barycentrics [N,3], points [N,3], normals [N,3])."""
    tri = vertices[faces]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    face = rng.choice(len(faces), size=count, p=area / area.sum())
    r1, r2 = np.sqrt(rng.random(count)), rng.random(count)
    bary = np.stack([1 - r1, r1 * (1 - r2), r1 * r2], 1)
    points = (tri[face] * bary[..., None]).sum(1)
    normals = cross[face] / np.maximum(area[face, None], 1e-20)
    return face, bary.astype(np.float32), points.astype(np.float32), normals.astype(np.float32)


def sdf_samples(
    vertices: np.ndarray,
    faces: np.ndarray,
    count: int,
    near_fraction: float = 0.7,
    near_max_offset: float = 0.05,
    bound: float = 0.5,
    seed: int = 0,
):
    """SDF training samples of one canonical mesh (model units), as NPMs / GAPS msh2pts.

    Near-surface: surface point +- t * normal, t = near_max_offset * U^2 (small offsets
    dominate); uniform: in the cube [-bound, bound]^3. The SDF is the exact signed distance to
    the mesh at the sample (not t), so samples near other parts of the body stay correct.
    Returns (points [count, 3] float32, sdf [count] float32, n_near) - near samples first."""
    rng = np.random.default_rng(seed)
    n_near = int(round(count * near_fraction))
    _, _, p, n = sample_surface(vertices, faces, n_near, rng)
    t = near_max_offset * rng.random(n_near) ** 2 * rng.choice([-1.0, 1.0], n_near)
    near = p + t[:, None].astype(np.float32) * n
    uniform = rng.uniform(-bound, bound, size=(count - n_near, 3)).astype(np.float32)
    points = np.concatenate([near, uniform])
    sdf = signed_distance(vertices, faces, points)[0]
    return points, sdf.astype(np.float32), n_near
