"""The 3D studio: anny's parametric body, posed and dressed in garment shells, rendered with moderngl/EGL.

    body.py     anny (cached build), phenotype and pose, per-vertex parts and skin labels, COCO keypoints
    garment.py  garments as shells cut by scalar fields; the product shot whose pixels are the UVs
    gl.py       the rasteriser: colour, LIP label, depth and garment UV/validity in one pass
    scene.py    camera, lights, hair, background, photo finish; `render_pair` -> Scene3D (with flow)

Garment parameters, textures, seed streams and the export are shared with the 2D studio.
"""

from sievenet.synthetic.studio3d.scene import Scene3D, render_pair

__all__ = ["Scene3D", "render_pair"]
