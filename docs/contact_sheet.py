"""Contact sheet of the training bodies: random identities in random poses (top two rows),
then frames of every motion (one row each, left to right). Writes docs/bodies.png.

    python docs/contact_sheet.py [--out docs/bodies.png]
"""

import argparse

import numpy as np

from npm_core import bodies, space
from npm_viewer.render import render_grid

COLS = 10


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/bodies.png")
    args = ap.parse_args()
    ids = bodies.sample_identities(2 * COLS, seed=11)
    meshes = list(bodies.body_meshes(bodies.phenotype_array(ids), bodies.sample_poses(2 * COLS, seed=5)))
    avg = bodies.phenotype_array(bodies.sample_identities(len(bodies.MOTIONS), seed=12))
    for k, name in enumerate(bodies.MOTIONS):
        m = bodies.motion(name)
        f = np.linspace(0, m.num_frames - 1, COLS).round().astype(int)
        v = bodies.body_meshes(avg[k : k + 1], m.angles[f], root_yaw_deg=m.root_yaw[f])
        v = v + space.metres_to_model(m.translation[f, None, :] * [0, 1, 0])  # show the vertical motion
        meshes += list(v)
    yaw = np.deg2rad(35)  # three-quarter view, so leg swings and twists show
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    render_grid([(v @ rot.T, bodies.faces()) for v in meshes], COLS, args.out, spacing=(0.6, 0.95), size=(1300, 1700))
    print("rows: 2 x random identity + random pose; then", ", ".join(bodies.MOTIONS))


if __name__ == "__main__":
    main()
