"""The rasteriser: one moderngl draw per mesh writes colour, LIP label, depth and garment UV in one pass.

Headless OpenGL through EGL (Mesa's llvmpipe on a CPU). Every mesh is an interleaved float32 array with the
layout of `VERTEX` below; the shader lights it (key, fill, hemispheric ambient), samples the garment texture
through its UVs and writes, per pixel, (label, u, v, valid) into a float target beside the colour. `valid` is
1 where the surface point is the one the product image shows at (u, v) (a shadow-map test against the
product's depth), so the UV target is an exact correspondence, not an approximation.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import numpy as np

from sievenet.errors import DataError
from sievenet.labels import LIP
from sievenet.synthetic.studio3d.body import ARM_SKIN, FACE_SKIN

# Per-vertex attributes: position (3), normal (3), albedo rgb (3), LIP label, u, v, product depth, field.
VERTEX = "3f 3f 3f 1f 2f 1f 1f"
ATTRIBUTES = ("in_pos", "in_nrm", "in_rgb", "in_label", "in_uv", "in_pz", "in_field")
STRIDE = 14

_VERTEX_SHADER = """
#version 330
uniform mat4 mvp;
in vec3 in_pos; in vec3 in_nrm; in vec3 in_rgb; in float in_label; in vec2 in_uv; in float in_pz;
in float in_field;
out vec3 v_pos; out vec3 v_nrm; out vec3 v_rgb; flat out float v_label; out vec2 v_uv; out float v_pz;
out float v_field;
void main() {
    gl_Position = mvp * vec4(in_pos, 1.0);
    v_pos = in_pos; v_nrm = in_nrm; v_rgb = in_rgb; v_label = in_label; v_uv = in_uv; v_pz = in_pz;
    v_field = in_field;
}
"""

_FRAGMENT_SHADER = """
#version 330
%s
uniform vec3 eye; uniform vec3 view_dir;
uniform vec3 key_dir; uniform vec3 key_rgb; uniform vec3 fill_dir; uniform vec3 fill_rgb;
uniform vec3 sky_rgb; uniform vec3 ground_rgb;
uniform int textured;          // 1: albedo from the garment texture at v_uv
uniform float folds;           // fold shading amplitude (garments)
uniform vec4 fold_wave;        // direction (xyz) and phase of the fold pattern
uniform float shine;           // specular strength (skin is slightly glossy, cloth is not)
uniform sampler2D tex;         // garment texture == product image layout
uniform sampler2D product_depth;
uniform float depth_eps;
uniform int skin_split;        // 1: face/torso/arm skin split per pixel by head weight (v_pz), arm weight (v_uv.x)
uniform vec4 skin_ids;         // LIP ids (torso skin, left arm, right arm) and the arm-weight threshold
uniform vec2 face_id;          // LIP face id and the head-weight threshold
in vec3 v_pos; in vec3 v_nrm; in vec3 v_rgb; flat in float v_label; in vec2 v_uv; in float v_pz;
in float v_field;
layout(location = 0) out vec4 out_rgb;
layout(location = 1) out vec4 out_aux;   // (label + 32 valid, u, v, depth along the view axis)
void main() {
#ifdef CUT
    if (v_field < 0.0) discard;            // clean hems, necklines and cuffs
#endif
    vec3 n = normalize(v_nrm);
    float inside = 0.0;
    if (!gl_FrontFacing) { n = -n; inside = 1.0; }   // the inside of a garment, seen through an opening
    vec3 albedo = v_rgb;
    float valid = 0.0;
    if (textured == 1) {
        albedo = texture(tex, v_uv).rgb;
        float pd = texture(product_depth, v_uv).r;
        valid = (inside < 0.5 && abs(pd - v_pz) < depth_eps) ? 1.0 : 0.0;
    }
    vec3 view = normalize(eye - v_pos);
    float hemi = 0.5 + 0.5 * n.z;
    vec3 light = mix(ground_rgb, sky_rgb, hemi);
    light += key_rgb * max(dot(n, key_dir), 0.0) + fill_rgb * max(dot(n, fill_dir), 0.0);
    // Light bounces inside a garment: an inside facing the floor (a back collar over the shoulder) is in
    // shadow, not black (it read as a hole at both ends of every neckline).
    if (inside > 0.5) light = max(light, 0.8 * mix(ground_rgb, sky_rgb, 0.5) + 0.3 * key_rgb);
    // Folds: a low-frequency sine ridge pattern along the garment, strongest at grazing angles.
    float ridge = sin(dot(v_pos, fold_wave.xyz) + fold_wave.w + 2.0 * sin(dot(v_pos.zx, vec2(23.0, 17.0))));
    float shade = 1.0 + folds * ridge * (0.5 + 0.5 * (1.0 - abs(dot(n, view))));
    vec3 h = normalize(key_dir + view);
    float spec = shine * pow(max(dot(n, h), 0.0), 24.0);
    vec3 rgb = albedo * light * shade * (1.0 - 0.3 * inside) + spec * key_rgb;
    out_rgb = vec4(clamp(rgb, 0.0, 1.0), 1.0);
    float label = v_label;
    if (skin_split == 1 && (label == skin_ids.x || label == skin_ids.y || label == skin_ids.z || label == face_id.x)) {
        // v_uv = (arm weight, side), v_pz = head weight: interpolated, so the borders are smooth lines, not
        // the zigzag of whole triangles
        label = v_uv.x < skin_ids.w ? skin_ids.x : (v_uv.y >= 0.0 ? skin_ids.y : skin_ids.z);
        if (v_pz >= face_id.y) label = face_id.x;
    }
    out_aux = vec4(label + 32.0 * valid, v_uv, dot(v_pos - eye, view_dir));
}
"""


class RendererUnavailable(DataError):
    """No usable headless OpenGL (EGL) context: the 3D studio cannot render on this machine."""


EGL_HELP = (
    "the 3D studio renders with moderngl on a headless EGL context and none could be created "
    "({reason}). Install the Python packages with `pip install moderngl==5.13.0` and the system "
    "libraries with `apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri` (Debian/Ubuntu), or use "
    "studio='2d', which needs no OpenGL."
)


@dataclass
class Lights:
    """Scene lights in world space: key and fill directions (unit, towards the light) and colours."""

    key_dir: np.ndarray
    key_rgb: np.ndarray
    fill_dir: np.ndarray
    fill_rgb: np.ndarray
    sky_rgb: np.ndarray
    ground_rgb: np.ndarray


@dataclass
class Mesh:
    """One drawable: interleaved vertices (N, STRIDE) float32, triangles (M, 3) uint32 and its material."""

    vertices: np.ndarray
    triangles: np.ndarray
    textured: bool = False
    folds: float = 0.0
    fold_wave: tuple[float, float, float, float] = (0.0, 0.0, 40.0, 0.0)
    shine: float = 0.0
    skin_split: bool = False  # the bare body: uv = (arm weight, side), pz = head weight -> skin labels
    cull: bool = False  # skip back faces (a closed surface: they are always behind its front faces)
    cut: bool = True  # discard fragments where the interpolated field is negative (False: never, and no cost)


@dataclass
class Frame:
    """What one render returns, at the supersampled resolution."""

    rgba: np.ndarray  # (H, W, 4) uint8 colour premultiplied by coverage (cleared to 0)
    aux: np.ndarray  # (H, W, 4) float32 (LIP label + 32 * valid, u, v, view depth; 0 where nothing drawn)


def pack(
    pos: np.ndarray,
    nrm: np.ndarray,
    rgb: np.ndarray,
    label: np.ndarray | float,
    uv: np.ndarray | None = None,
    pz: np.ndarray | None = None,
    field: np.ndarray | None = None,
) -> np.ndarray:
    """Interleave per-vertex arrays into the (N, STRIDE) float32 layout the shader reads."""
    n = len(pos)
    out = np.zeros((n, STRIDE), np.float32)
    out[:, 0:3] = pos
    out[:, 3:6] = nrm
    out[:, 6:9] = rgb
    out[:, 9] = label
    if uv is not None:
        out[:, 10:12] = uv
    if pz is not None:
        out[:, 12] = pz
    out[:, 13] = 1.0 if field is None else field
    return out


class Renderer:
    """A moderngl context with one program; `draw` renders meshes into fresh targets of any size."""

    def __init__(self) -> None:
        os.environ.setdefault("LP_NUM_THREADS", "1")  # one llvmpipe thread per process: loaders are processes
        try:  # triton (pulled in by torch extensions such as roma) bundles an LLVM that segfaults when it
            import triton  # noqa: F401  loads after Mesa's llvmpipe LLVM; loaded first, both coexist
        except ImportError:
            pass
        try:
            import moderngl
        except ImportError as err:
            raise RendererUnavailable(EGL_HELP.format(reason=f"moderngl is not installed: {err}")) from None
        try:
            self.ctx = moderngl.create_standalone_context(backend="egl")
        except Exception as err:  # glcontext raises plain Exception subclasses with the EGL error text
            raise RendererUnavailable(
                EGL_HELP.format(reason=str(err).strip() or type(err).__name__)
            ) from None
        self.moderngl = moderngl
        # Two programs: one cuts fragments by the garment field (shells), one never discards (the bare body), so
        # the body, drawn last, is depth-tested before it is shaded where a garment already covers it.
        self.programs = {
            cut: self.ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER % define)
            for cut, define in ((True, "#define CUT"), (False, ""))
        }
        for prog in self.programs.values():
            prog["tex"].value = 0
            prog["product_depth"].value = 1
        self._targets: dict[tuple[int, int], tuple] = {}

    def _fbo(self, height: int, width: int):
        if (height, width) not in self._targets:
            rgb = self.ctx.texture((width, height), 4, dtype="f1")
            aux = self.ctx.texture((width, height), 4, dtype="f4")
            depth = self.ctx.depth_renderbuffer((width, height))
            fbo = self.ctx.framebuffer(color_attachments=[rgb, aux], depth_attachment=depth)
            self._targets[(height, width)] = (fbo, rgb, aux)
        return self._targets[(height, width)]

    def texture(self, image: np.ndarray):
        """Upload an (H, W, C) image (row 0 = top) as a linear-filtered texture: uint8 (colour, read as 0..1)
        or float32 (data, read as is)."""
        h, w, c = image.shape
        colour = image.dtype == np.uint8
        flipped = np.ascontiguousarray(
            image[::-1], dtype=image.dtype if colour else np.float32
        )  # GL: rows up
        tex = self.ctx.texture((w, h), c, flipped.tobytes(), dtype="f1" if colour else "f4")
        tex.repeat_x = tex.repeat_y = False
        if colour:  # minified on a small garment: mipmaps keep prints and stripes from aliasing
            tex.build_mipmaps()
            tex.filter = (self.moderngl.LINEAR_MIPMAP_LINEAR, self.moderngl.LINEAR)
        return tex

    def draw(
        self,
        meshes: list[Mesh],
        mvp: np.ndarray,
        eye: np.ndarray,
        view_dir: np.ndarray,
        lights: Lights,
        height: int,
        width: int,
        texture=None,
        product_depth=None,
        depth_eps: float = 0.01,
    ) -> Frame:
        """Render `meshes` with the 4x4 `mvp` (world -> clip) into (height, width) targets."""
        fbo, rgb_t, aux_t = self._fbo(height, width)
        fbo.use()
        fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx = self.ctx
        ctx.enable(self.moderngl.DEPTH_TEST)
        for p in self.programs.values():
            p["mvp"].write(np.ascontiguousarray(mvp.T, dtype=np.float32).tobytes())  # GL is column-major
            for name, value in (("eye", eye), ("view_dir", view_dir), ("key_dir", lights.key_dir), ("key_rgb", lights.key_rgb),
                                ("fill_dir", lights.fill_dir), ("fill_rgb", lights.fill_rgb),
                                ("sky_rgb", lights.sky_rgb), ("ground_rgb", lights.ground_rgb)):  # fmt: skip
                p[name].value = tuple(float(v) for v in value)
            p["depth_eps"].value = float(depth_eps)
            p["skin_ids"].value = (float(LIP.TORSO_SKIN), float(LIP.LEFT_ARM), float(LIP.RIGHT_ARM), ARM_SKIN)
            p["face_id"].value = (float(LIP.FACE), FACE_SKIN)
        if texture is not None:
            texture.use(0)
        if product_depth is not None:
            product_depth.use(1)
        for mesh in meshes:
            if len(mesh.triangles) == 0:
                continue
            vbo = ctx.buffer(np.ascontiguousarray(mesh.vertices, dtype=np.float32).tobytes())
            ibo = ctx.buffer(np.ascontiguousarray(mesh.triangles, dtype=np.uint32).tobytes())
            p = self.programs[mesh.cut]  # the uncut program has no in_field: skip it, not a misspelt name
            vao = ctx.vertex_array(p, [(vbo, VERTEX, *ATTRIBUTES)], index_buffer=ibo, index_element_size=4,
                                   skip_errors=not mesh.cut)  # fmt: skip
            p["textured"].value = int(mesh.textured and texture is not None)
            p["folds"].value = float(mesh.folds)
            p["fold_wave"].value = tuple(float(v) for v in mesh.fold_wave)
            p["shine"].value = float(mesh.shine)
            p["skin_split"].value = int(mesh.skin_split)
            if mesh.cull:
                ctx.enable(self.moderngl.CULL_FACE)
            else:
                ctx.disable(self.moderngl.CULL_FACE)
            vao.render(self.moderngl.TRIANGLES)
            vao.release()
            vbo.release()
            ibo.release()
        rgba = np.frombuffer(rgb_t.read(), np.uint8).reshape(height, width, 4)[::-1]
        aux = np.frombuffer(aux_t.read(), np.float32).reshape(height, width, 4)[::-1]
        return Frame(rgba=rgba, aux=aux)


@functools.cache
def renderer() -> Renderer:
    """The process's renderer, created on first use (each DataLoader worker builds its own)."""
    return Renderer()
