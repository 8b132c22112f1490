"""The 3D studio: pose statistics, determinism, labels, keypoints, exact flow, unpaired truth, export, EGL errors.

Rendering tests need anny's model data: the first build on a machine writes ~0.85 GB to
~/.cache/sievenet/anny (or $SIEVENET_ANNY_CACHE) and takes minutes; later runs load it in seconds. They share
one small module-scoped dataset (64x48 and 128x96) so the body model loads once.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sievenet.data import VitonHD, collate
from sievenet.errors import DataError
from sievenet.labels import Label
from sievenet.synthetic import SyntheticTryOn
from sievenet.synthetic.params import POSES_3D, SKIN_TONES, draw_person3d

SIZE = (128, 96)
KEYS_2D = {"person", "cloth", "cloth_mask", "priors", "tt_priors", "parse", "worn_mask", "target_warp", "truth",
           "keypoints", "meta"}  # fmt: skip

anny = pytest.importorskip("anny", reason="the 3D studio needs `pip install anny==0.6.2`")
moderngl = pytest.importorskip("moderngl", reason="the 3D studio needs `pip install moderngl==5.13.0`")


def _egl_works() -> bool:
    from sievenet.synthetic.studio3d import gl

    try:
        gl.renderer()
    except DataError:
        return False
    return True


needs_gl = pytest.mark.skipif(
    not _egl_works(), reason="no EGL: apt-get install libegl1 libegl-mesa0 libgl1-mesa-dri"
)


@pytest.fixture(scope="module")
def unpaired() -> SyntheticTryOn:
    return SyntheticTryOn("test", "unpaired", seed=0, size=SIZE, n=12, studio="3d")


@pytest.fixture(scope="module")
def samples(unpaired) -> list[dict]:
    return [unpaired[i] for i in range(8)]


def test_pose_and_body_statistics_from_parameters_alone():
    people = [draw_person3d("train", 0, i) for i in range(3000)]
    share = {pose: sum(p.pose == pose for p in people) / len(people) for pose in POSES_3D}
    assert share["down"] + share["out"] >= 0.5  # the photos people take
    for hard in ("raised", "akimbo", "crossed", "front"):
        assert 0.02 <= share[hard] <= 0.12, hard  # present, each a clear minority
    assert max(abs(p.yaw_deg) for p in people) <= 25
    assert len({p.skin_tone for p in people}) == len(SKIN_TONES) >= 8
    assert 0.4 < sum(p.female for p in people) / len(people) < 0.6
    assert sum(p.hair_over_garment for p in people) / len(people) >= 0.1
    assert {p.framing for p in people} == {"full", "knee", "waist", "selfie"}
    assert {p.background for p in people} == {"studio", "photo", "pattern"}
    train = {repr(draw_person3d("train", 0, i).phenotype) for i in range(300)}
    test = {repr(draw_person3d("test", 0, i).phenotype) for i in range(300)}
    assert len(train) == 300 and not train & test  # disjoint person streams


def test_bad_studio_name_says_what_was_wrong():
    with pytest.raises(ValueError, match="studio"):
        SyntheticTryOn("train", studio="4d")


@pytest.mark.slow
@needs_gl
def test_sample_has_the_2d_keys_dtypes_plus_flow(samples):
    s = samples[0]
    h, w = SIZE
    assert set(s) == KEYS_2D | {"flow"}
    assert s["flow"].shape == (3, h, w) and s["flow"].dtype == torch.float32
    assert s["parse"].dtype == torch.int64 and s["keypoints"].shape == (18, 3)
    for key in ("person", "cloth", "truth", "target_warp"):
        assert s[key].dtype == torch.float32 and s[key].min() >= -1 and s[key].max() <= 1, key
    assert s["meta"]["studio"] == "3d" and s["meta"]["has_truth"]
    outside = s["cloth"][:, s["cloth_mask"][0] == 0]
    assert torch.equal(outside, torch.ones_like(outside))  # product photo on white
    batch = collate(samples[:3])
    assert batch["flow"].shape == (3, 3, h, w)


@pytest.mark.slow
@needs_gl
def test_same_key_gives_the_same_bytes(unpaired, samples):
    again = SyntheticTryOn("test", "unpaired", seed=0, size=SIZE, n=12, studio="3d")[3]
    for key in KEYS_2D - {"meta"} | {"flow"}:
        assert torch.equal(again[key], samples[3][key]), key
    other = SyntheticTryOn("train", "unpaired", seed=0, size=SIZE, n=12, studio="3d")[3]
    assert not torch.equal(other["person"], samples[3]["person"])


def _digest(sample: dict) -> str:
    import hashlib

    h = hashlib.sha256()
    for key in sorted(set(sample) - {"meta"}):
        h.update(key.encode() + sample[key].numpy().tobytes())
    return h.hexdigest()


@pytest.mark.slow
@needs_gl
def test_same_key_gives_the_same_bytes_in_another_process_with_other_thread_counts(samples):
    # DataLoader workers run torch on 1 thread, the main process on several: a sample must not depend on it.
    threads = 1 if torch.get_num_threads() > 1 else 2
    code = (
        "import sys, torch\n"
        f"torch.set_num_threads({threads})\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_studio3d import _digest\n"
        "from sievenet.synthetic import SyntheticTryOn\n"
        f"ds = SyntheticTryOn('test', 'unpaired', seed=0, size={SIZE}, n=12, studio='3d')\n"
        "print(_digest(ds[2]), _digest(ds[5]))\n"
    )
    root = Path(__file__).parents[1]
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=root)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-2:] == [_digest(samples[2]), _digest(samples[5])]


@pytest.mark.slow
@needs_gl
def test_every_class_is_present_where_expected(samples):
    seen = set()
    for s in samples:
        labels = set(s["parse"].unique().tolist())
        assert {Label.BACKGROUND, Label.FACE, Label.UPPER} <= labels
        if s["meta"]["framing"] in ("full", "knee"):
            assert Label.LOWER in labels
        assert Label.HAIR in labels  # the head is always in frame
        seen |= labels
    assert seen == set(Label)


@pytest.mark.slow
@needs_gl
def test_keypoints_lie_inside_the_body(samples):
    hits = total = 0
    for s in samples:
        body = cv2.dilate((s["parse"] > 0).numpy().astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
        kp = s["keypoints"].numpy()
        assert kp[1, 2] > 0, "the neck is always in frame"
        for k in (1, 2, 3, 5, 6, 8, 11):  # neck, shoulders, elbows, hips: inside the silhouette when in frame
            if kp[k, 2] > 0:
                x, y = np.round(kp[k, :2]).astype(int)
                hits += bool(body[y, x])
                total += 1
        missing = kp[:, 2] == 0
        assert (kp[missing] == 0).all()
    assert total >= 20 and hits / total >= 0.95


def _warp_by_flow(cloth: torch.Tensor, flow: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    h, w = flow.shape[1:]
    grid = torch.stack([(flow[0] + shift) / w * 2 - 1, flow[1] / h * 2 - 1], -1)[None]
    return F.grid_sample(cloth[None], grid, align_corners=False)[0]


def _correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    return torch.corrcoef(torch.stack([a.flatten(), b.flatten()]))[0, 1].item()


@pytest.mark.slow
@needs_gl
def test_warping_the_cloth_by_the_flow_reproduces_the_worn_garment(samples):
    exact, shifted = [], []
    for s in samples:
        valid = s["flow"][2] > 0
        assert valid.sum() > 50
        # Valid pixels are garment pixels of the truth, and point inside the product photo's garment.
        assert (s["worn_mask"][0][valid] == 1).all()
        mask = _warp_by_flow(s["cloth_mask"], s["flow"])[0]
        assert (mask[valid] > 0.5).float().mean() > 0.98
        if s["meta"]["texture"] == "solid":
            continue  # nothing to line up on a plain fabric
        truth = s["truth"][:, valid]
        exact.append(_correlation(_warp_by_flow(s["cloth"], s["flow"])[:, valid], truth))
        shifted.append(_correlation(_warp_by_flow(s["cloth"], s["flow"], 7.0)[:, valid], truth))
    assert len(exact) >= 4
    assert np.mean(exact) > 0.7  # shading differs, the fabric lines up
    assert np.mean(shifted) < 0.6 and np.mean(shifted) < np.mean(exact) - 0.2  # a 7 px error shows


@pytest.mark.slow
@needs_gl
def test_unpaired_truth_differs_from_the_person_only_around_the_two_garments(unpaired):
    paired = SyntheticTryOn("test", "paired", seed=0, size=SIZE, n=12, studio="3d")
    assert not all(_jpeg(paired, i) for i in range(6))  # at least one scene is checked at the pixel level
    for i in range(6):
        a, b = paired[i], unpaired[i]
        for key in ("person", "priors", "tt_priors", "parse", "keypoints"):
            assert torch.equal(a[key], b[key]), key  # the model sees the same person either way
        # Both garments, plus the skin a changed sleeve or neckline may cover or uncover.
        region = (b["worn_mask"][0] == 1) | torch.isin(
            a["parse"], torch.tensor([Label.UPPER, Label.LEFT_ARM, Label.RIGHT_ARM, Label.NECK])
        )
        # Photo finishing spreads a change a little: blur (< 1 px) and, with JPEG, to the 16x16 block.
        reach = 31 if _jpeg(paired, i) else 5
        near = cv2.dilate(region.numpy().astype(np.uint8), np.ones((reach, reach), np.uint8)) > 0
        # Labels are point samples, colours are 2x2 supersampled: a sub-pixel sliver of garment may tint an
        # edge pixel labelled otherwise by a few levels.
        changed = ((a["truth"] - b["truth"]).abs().amax(0) > 4 / 127.5).numpy()
        assert changed.any()
        assert not (changed & ~near).any(), i


def _jpeg(ds: SyntheticTryOn, index: int) -> bool:
    return ds.spec(index).person.jpeg > 0


@pytest.mark.slow
@needs_gl
def test_export_reads_back_through_vitonhd_with_the_flow(tmp_path):
    from sievenet.synthetic.export import export

    export(tmp_path, "test", 3, seed=0, size=SIZE, studio="3d")
    assert len(list((tmp_path / "test" / "flow").glob("*.png"))) == 6  # 3 paired + 3 unpaired
    memory = SyntheticTryOn("test", "unpaired", seed=0, size=SIZE, n=3, studio="3d")
    disk = VitonHD(tmp_path, "test", pairs="unpaired", size=SIZE)
    for i in range(3):
        m, d = memory[i], disk[i]
        assert torch.equal(m["person"], d["person"]) and torch.equal(m["truth"], d["truth"])
        assert torch.equal(m["flow"][2], d["flow"][2])
        valid = m["flow"][2] > 0
        assert (m["flow"][:2, valid] - d["flow"][:2, valid]).abs().max() <= 1 / 64  # 1/32 px steps
    small = VitonHD(tmp_path, "test", pairs="paired", size=(64, 48))[0]
    assert small["flow"].shape == (3, 64, 48) and small["flow"][0].max() <= 48
    # Two processes write the same bytes as one.
    export(tmp_path / "two", "test", 3, seed=0, size=SIZE, studio="3d", workers=2)
    files = sorted(p.relative_to(tmp_path) for p in (tmp_path / "test").rglob("*") if p.is_file())
    assert len(files) >= 20
    for rel in files:
        assert (tmp_path / "two" / rel).read_bytes() == (tmp_path / rel).read_bytes(), rel
    assert (tmp_path / "two" / "test_pairs_unpaired.txt").read_text() == (
        tmp_path / "test_pairs_unpaired.txt"
    ).read_text()


@pytest.mark.slow
@needs_gl
def test_mix_draws_both_studios_and_collates():
    mix = SyntheticTryOn("train", "paired", seed=0, size=(64, 48), n=16, studio="mix")
    studios = [mix.studio_of(i) for i in range(16)]
    assert set(studios) == {"2d", "3d"}
    first_2d, first_3d = studios.index("2d"), studios.index("3d")
    batch = collate([mix[first_2d], mix[first_3d]])
    assert batch["flow"].shape == (2, 3, 64, 48)
    assert batch["flow"][0].abs().sum() == 0  # 2D scenes have no correspondence: all invalid
    assert batch["flow"][1, 2].sum() > 0


def test_without_egl_the_error_names_what_to_install(monkeypatch):
    from sievenet.synthetic.studio3d import gl

    def no_display(*args, **kwargs):
        raise Exception("eglGetDisplay failed")

    monkeypatch.setattr(moderngl, "create_standalone_context", no_display)
    with pytest.raises(gl.RendererUnavailable, match="libegl1 libegl-mesa0 libgl1-mesa-dri") as err:
        gl.Renderer()
    assert "eglGetDisplay failed" in str(err.value) and "studio='2d'" in str(err.value)
    assert isinstance(err.value, DataError)


def test_without_moderngl_the_dataset_says_what_to_install():
    code = (
        "import sys; sys.modules['moderngl'] = None\n"
        "from sievenet.synthetic import SyntheticTryOn\n"
        "from sievenet.errors import DataError\n"
        "try:\n    SyntheticTryOn('test', size=(64, 48), n=2, studio='3d')[0]\n"
        "except DataError as err:\n    print(err)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "pip install moderngl" in out.stdout, out.stderr[-2000:]


@pytest.mark.slow
@needs_gl
def test_warp_oracle_reports_the_exact_flow_bound(samples):
    from sievenet.metrics import l1
    from sievenet.warp_oracle import flow_warp

    batch = collate(samples[:4])
    bound = l1(flow_warp(batch["cloth"], batch["flow"]), batch["target_warp"]).mean()
    identity = l1(batch["cloth"], batch["target_warp"]).mean()
    assert bound < 0.6 * identity  # the true correspondence explains most of the worn garment


@pytest.mark.slow
@needs_gl
@pytest.mark.parametrize("sleeve", ["sleeveless", "short", "long"])
def test_every_garment_type_is_one_piece_covering_the_chest(sleeve):
    import dataclasses

    from sievenet.synthetic.params import draw_garment
    from sievenet.synthetic.studio3d import render_pair

    person = dataclasses.replace(draw_person3d("test", 0, 3), framing="knee", yaw_deg=0.0)
    for neckline in ("round", "v"):
        g = dataclasses.replace(
            draw_garment("test", 0, 4), sleeve=sleeve, neckline=neckline, garment_id=sleeve + neckline
        )
        scene, _ = render_pair(person, g, None, *SIZE)
        count, parts, stats, _ = cv2.connectedComponentsWithStats(scene.cloth_mask)
        assert stats[1:, cv2.CC_STAT_AREA].max() >= 0.97 * scene.cloth_mask.sum(), (sleeve, neckline)
        ys, xs = np.nonzero(scene.cloth_mask)
        # The centre column runs from the neckline to the hem: the chest is there (a sleeveless top is not
        # two shoulder flaps above a skirt).
        column = np.nonzero(scene.cloth_mask[:, int(np.median(xs))])[0]
        assert len(column) >= 0.6 * (ys.max() - ys.min() + 1), (sleeve, neckline)


def _frontal(start: int):
    """A test-split person facing the camera, arms down or slightly out, waist-up, short hair."""
    import dataclasses

    j = next(j for j in range(start, start + 500) if draw_person3d("test", 0, j).pose in ("down", "out"))
    return dataclasses.replace(draw_person3d("test", 0, j), framing="waist", yaw_deg=0.0, hair="short")


def _arm_above_shoulder(lip: np.ndarray, kp: np.ndarray) -> int:
    """Arm-labelled pixels above a shoulder keypoint and nearer the neck than it: the top of the shoulder."""
    from sievenet.labels import LIP

    count = 0
    for k, label in ((2, LIP.RIGHT_ARM), (5, LIP.LEFT_ARM)):
        ys, xs = np.nonzero(lip == label)
        count += int(((ys < kp[k, 1]) & (np.abs(xs - kp[1, 0]) < abs(kp[k, 0] - kp[1, 0]))).sum())
    return count


@pytest.mark.slow
@needs_gl
def test_shoulders_are_covered_by_sleeves_and_bare_shoulder_skin_is_not_arm():
    import dataclasses

    from sievenet.labels import LIP
    from sievenet.synthetic.params import draw_garment
    from sievenet.synthetic.studio3d import render_pair

    for start in (0, 74):
        person = _frontal(start)
        for sleeve in ("short", "long", "sleeveless"):
            for neckline in ("round", "v"):
                g = dataclasses.replace(draw_garment("test", 0, 7), sleeve=sleeve, neckline=neckline,
                                        garment_id=f"s{sleeve}{neckline}")  # fmt: skip
                scene, _ = render_pair(person, g, None, 256, 192)
                arm = np.isin(scene.lip, (LIP.LEFT_ARM, LIP.RIGHT_ARM)).astype(np.uint8)
                top = _arm_above_shoulder(scene.lip, scene.keypoints)
                if sleeve == "sleeveless":  # bare shoulders: torso skin up to where the arm begins
                    assert top <= 0.01 * arm.sum(), (start, neckline, top)
                    # Straps are whole: no specks of fabric around them.
                    upper = (scene.lip == LIP.UPPER_CLOTHES).astype(np.uint8)
                    _, _, stats, _ = cv2.connectedComponentsWithStats(upper, connectivity=8)
                    assert stats[1:, cv2.CC_STAT_AREA].min() >= 6, (start, neckline)
                    continue
                # A sleeve covers the shoulder: arm skin shows only below the sleeve, never beside the neck.
                neck = (scene.lip == LIP.TORSO_SKIN).astype(np.uint8)
                touching = cv2.dilate(arm, np.ones((3, 3), np.uint8)) & neck
                assert touching.sum() == 0 and top == 0, (start, sleeve, neckline, int(touching.sum()), top)


@pytest.mark.slow
@needs_gl
def test_the_chin_line_between_face_and_neck_is_smooth():
    from sievenet.labels import LIP
    from sievenet.synthetic.params import draw_garment
    from sievenet.synthetic.studio3d import render_pair

    bends = []
    for start in (0, 74, 150):
        scene, _ = render_pair(_frontal(start), draw_garment("test", 0, 7), None, 256, 192)
        face, neck = scene.lip == LIP.FACE, scene.lip == LIP.TORSO_SKIN
        chin = []  # per column, the lowest face pixel where neck skin lies right below it
        for x in range(scene.lip.shape[1]):
            rows = np.nonzero(face[:, x])[0]
            chin.append(rows.max() if len(rows) and neck[min(rows.max() + 1, face.shape[0] - 1), x] else None)
        bends += [
            abs(a - 2 * b + c)
            for a, b, c in zip(chin, chin[1:], chin[2:], strict=False)
            if None not in (a, b, c)
        ]
    # Whole triangles of face and neck made a sawtooth (bends of 4 to 7 px); the jaw is a smooth curve.
    assert len(bends) >= 40 and max(bends) <= 3 and np.mean(bends) < 1.0, (max(bends), np.mean(bends))


@pytest.mark.slow
@needs_gl
def test_training_on_the_3d_studio_with_a_loader_worker_matches_training_without(tmp_path, unpaired):
    """A loader worker forked from a process that has rendered hung on its first sample: it is spawned."""
    from sievenet.data.processes import needs_spawn
    from sievenet.train.config import CONFIG_DIR, load_config
    from sievenet.train.loop import fit
    from sievenet.train.stages import SieveNetStage, build_dataset
    from tests.train_helpers import tiny_overrides

    unpaired[0]  # this process has rendered, as the loop's own preview batch does before the workers start
    losses = []
    for workers in (0, 1):
        overrides = [*tiny_overrides(), "studio=3d", f"num_workers={workers}", f"run_dir={tmp_path / str(workers)}",
                     "steps=2", "batch_size=2", "log_every=1", "progress=false", "pgm=false"]  # fmt: skip
        config = load_config(CONFIG_DIR / "sievenet-s-warp.yaml", overrides)
        stage = SieveNetStage(config)
        dataset, collate_fn = build_dataset(config)
        assert needs_spawn(dataset)
        torch.manual_seed(0)
        result = fit(stage, dataset, config, collate_fn=collate_fn, command=["test"])
        assert result["step"] == 2
        losses.append({k: v for k, v in result["logs"].items() if k.startswith("l_")})
    assert losses[0] and losses[0] == losses[1]  # the same samples either way


def test_a_top_bridges_the_hollow_between_bumps_and_falls_from_them_no_faster_than_its_drape():
    from sievenet.synthetic.studio3d.garment import DRAPE, _drape

    # A front surface (the body faces -y) on a 5 mm grid: two bumps 3 cm proud at x = +-5 cm, z = 0, with a
    # hollow between them and the surface receding 3 cm below them.
    x, z = np.meshgrid(np.arange(-0.12, 0.121, 0.005), np.arange(-0.15, 0.101, 0.005))
    bumps = sum(np.exp(-(((x - c) / 0.03) ** 2 + (z / 0.04) ** 2)) for c in (-0.05, 0.05))
    y = -0.03 * bumps
    pts = np.stack([x.ravel(), y.ravel(), z.ravel()], 1)
    normals = np.tile([0.0, -1.0, 0.0], (len(pts), 1))
    torso = np.ones(len(pts), bool)
    for fit, slope in DRAPE.items():
        out = _drape(pts, normals, torso, slope).reshape(*x.shape, 3)[..., 1]
        assert (out <= y + 1e-9).all(), fit  # fabric only ever stands off the body
        apex = y.min()
        row, col = np.abs(z[:, 0]).argmin(), np.abs(x[0]).argmin()
        assert y[row, col] > apex + 0.01  # the body has a hollow between the bumps...
        assert out[row, col] < apex + 0.004, fit  # ...the fabric spans it at the bumps' height
        row, col = np.abs(z[:, 0] + 0.1).argmin(), np.abs(x[0] - 0.05).argmin()
        assert y[row, col] > apex + 0.025  # 10 cm below a bump the body has receded by 3 cm...
        fall = out[row, col] - apex  # ...the fabric by its slope, not more
        assert fall <= slope * 0.1 + 0.004, fit
